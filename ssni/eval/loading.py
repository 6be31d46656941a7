"""From a preset and the user's files to ready objects: device, models, calibration, purifier, data.

Every failure a user can cause (a missing file, a checkpoint of another model, a calibration made for other
settings) becomes one `SSNIUserError` naming the file or flag.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ssni.data.datasets import calibration_images, calibration_overlap, evaluation_subset
from ssni.errors import SSNIUserError
from ssni.eval.presets import Preset, PurifierSpec
from ssni.eval.requests import Sources
from ssni.eval.runner import EvalData

__all__ = [
    "Models",
    "resolve_device",
    "file_identity",
    "for_device",
    "load_models",
    "load_calibration",
    "build_purifier",
    "load_eval_data",
    "load_calibration_images",
    "check_calibration_disjoint",
]


def resolve_device(name: str) -> str:
    """cpu | cuda[:N] | auto (CUDA when present). Under torchrun, plain "cuda" means this rank's LOCAL_RANK GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SSNIUserError(f"--device {name}: CUDA is not available on this machine")
    if name != "cpu" and not name.startswith("cuda"):
        raise SSNIUserError(f"--device must be cpu, cuda, cuda:N or auto, got {name!r}")
    if name == "cuda" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        name = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return name


def file_identity(path: Path) -> str:
    """'<name>:<size>:<sha256 of the first MiB>': cheap for multi-GB checkpoints, tells different files apart."""
    with open(path, "rb") as f:
        head = hashlib.sha256(f.read(1 << 20)).hexdigest()[:16]
    return f"{path.name}:{path.stat().st_size}:{head}"


def _existing(path: Path | None, what: str) -> Path | None:
    if path is not None and not Path(path).exists():
        raise SSNIUserError(f"{what} {path} does not exist")
    return None if path is None else Path(path)


@dataclass
class Models:
    """The loaded networks (eval mode, no parameter gradients) and the identities that name them."""

    diffusion: nn.Module
    classifier: nn.Module | None
    diffusion_id: str
    classifier_id: str | None


def _freeze(model: nn.Module, device: str) -> nn.Module:
    model = for_device(model, device).eval().to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def for_device(model: nn.Module, device: str) -> nn.Module:
    """`model` in the precision its device runs fast: ADM's float16 torso (the reference's mixed precision, made for
    GPUs) goes back to float32 on the CPU, where PyTorch has no fast float16 convolution (about 250× slower than
    float32 at ADM's shapes: hours per purified image). On the CPU the network is then the file's fp32 weights."""
    from ssni.models.adm import ADMUNet

    if device == "cpu" and isinstance(model, ADMUNet) and model.torso_dtype == torch.float16:
        model.convert_to_fp32()
    return model


def _load_model(name: str, path: Path | None, flag: str, preset: Preset) -> tuple[nn.Module, str]:
    """The registry model `name` from `path` (None: its embedded weights) and its identity. A file that cannot be
    read as that model is a user error naming the flag and the file."""
    from ssni.models import load, spec, weights_id

    embedded = spec(name).embedded is not None
    if path is None and not embedded:
        raise SSNIUserError(f"preset {preset.name} needs {flag} (nothing is downloaded)")
    try:
        net = load(name, path)
        # Whole-file hash for the small embedded-format files; name, size and first MiB for multi-GB checkpoints.
        return net, weights_id(name, path) if embedded else f"{name}:{file_identity(path)}"
    except (ValueError, OSError) as e:  # the file is missing, unreadable, or another model's
        source = "the embedded weights (ssni/weights/)" if path is None else str(path)
        raise SSNIUserError(f"{flag} {source}: {e}") from None


def load_models(preset: Preset, sources: Sources, device: str, classifier: bool = True) -> Models:
    """The preset's diffusion model and (if `classifier`) classifier from the user's files or the embedded ones."""
    d_path = _existing(sources.diffusion_checkpoint, "diffusion checkpoint")
    d_net, d_id = _load_model(preset.diffusion, d_path, "--diffusion-checkpoint", preset)
    c_net, c_id = None, None
    if classifier:
        c_path = _existing(sources.classifier_checkpoint, "classifier checkpoint")
        c_net, c_id = _load_model(preset.classifier, c_path, "--classifier-checkpoint", preset)
        c_net = _freeze(c_net, device)
    return Models(_freeze(d_net, device), c_net, d_id, c_id)


def load_calibration(preset: Preset, path: Path | None, models: Models, num_levels: int):
    """The calibration file at `path` (None: the one shipped with embedded weights) for these models; refused when
    made for another model, T' or size."""
    from ssni import Calibration

    if path is None:
        from ssni.zoo import embedded_calibration

        path = embedded_calibration(preset.diffusion)
        if path is None:
            raise SSNIUserError(f"preset {preset.name} needs --calibration (make one with `ssni calibrate`)")
    path = _existing(Path(path), "calibration file")
    size = (preset.image_size, preset.image_size)
    # a file that is not a calibration, or one made for other settings: user errors naming the file
    return Calibration.load(path, model_id=models.diffusion_id, num_levels=num_levels, resolution=size)


def build_purifier(spec: PurifierSpec, model: nn.Module) -> nn.Module:
    """The host purifier of a preset (defence schedule and surrogate schedule), at the model's resolution."""
    from ssni import DDPMPurifier, GDMPPurifier, GNSPurifier, SDEPurifier

    stars = tuple(t for t, _ in spec.stages)
    steps = tuple(n for _, n in spec.stages)
    grad_steps = tuple(n for _, n in spec.surrogate_stages)
    common = dict(resolution=spec.resolution)
    if spec.host == "ddpm":
        return DDPMPurifier(
            model, t_star=stars[0], num_steps=steps[0], eta=spec.eta, grad_num_steps=grad_steps[0], **common
        )
    if spec.host == "sde":
        return SDEPurifier(model, t_star=stars[0], grad_num_steps=grad_steps[0], **common)
    if spec.host == "gns":
        grad_stars = tuple(t for t, _ in spec.surrogate_stages)
        return GNSPurifier(
            model, t_star=stars, num_steps=steps, grad_t_star=grad_stars, grad_num_steps=grad_steps, eta=spec.eta,
            **common,
        )  # fmt: skip
    if spec.host == "gdmp":
        sampler = {} if spec.sampler is None else {"sampler": spec.sampler}
        return GDMPPurifier(
            model, t_star=stars, guidance=spec.guidance, grad_num_steps=grad_steps[0], **sampler, **common
        )
    raise SSNIUserError(f"unknown purifier host {spec.host!r}")


def load_eval_data(preset: Preset, data: Path | None, data_seed: int = 0) -> EvalData:
    """The protocol subset of spec §8 (first `num_samples` of it), with dataset indices as sample ids."""
    images, labels, index = evaluation_subset(
        preset.dataset, preset.num_samples, data, image_size=preset.image_size, data_seed=data_seed
    )
    return EvalData(images, labels, index)


def load_calibration_images(preset: Preset, data: Path | None, num_samples: int) -> tuple[torch.Tensor, dict]:
    """Clean TRAINING images of spec §3 for the preset's dataset, and where they came from."""
    return calibration_images(preset.dataset, num_samples, data, image_size=preset.image_size)


def check_calibration_disjoint(calibration, preset: Preset, data: Path | None, sample_ids: torch.Tensor) -> None:
    """Refuse a calibration whose clean images include evaluated ones (both drawn from the same folder)."""
    shared = calibration_overlap(calibration.source, preset.dataset, data, sample_ids.tolist())
    if shared:
        raise SSNIUserError(
            f"--calibration was made from {shared} of the {sample_ids.numel()} images evaluated here (both drawn "
            f"from --data {data}); calibrate on the training images (ssni calibrate --data <ILSVRC train folder>)"
        )
