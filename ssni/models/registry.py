"""One registry of the networks ssni runs: `build` (random weights, from a family's original arguments or a named
model) and `load` (a user's checkpoint file, or the embedded weights, with that file's conventions, checked
strictly).

| name | family | kind, label | file (loading convention) |
| --- | --- | --- | --- |
| `cifar10-ddpmpp-deep-continuous` | ncsnpp | ε, 999·t | score_sde `checkpoint_8.pth` (EMA list by position) |
| `imagenet-adm-256-uncond` | adm | ε + learned σ (6 ch), index | guided-diffusion `256x256_diffusion_uncond.pt` |
| `cifar10-ddpm` | ddpm | ε, index | pytorch_diffusion `model-790000.ckpt`, or a diffusers folder |
| `cifar10-edm-uncond-vp` | edm | denoiser D(x; σ), σ | `edm-cifar10-32x32-uncond-vp.pkl`, converted once |
| `cifar10-wrn-28-10` | wrn | classifier | RobustBench `Standard.pt` (`module.`/`model.` stripped) |
| `cifar10-wrn-70-16-dropout` | wrn-diffpure | classifier | DiffPure `wrn-70-16-dropout/weights.pt` (`module.`) |
| `cifar10-resnet-50` | resnet50-cifar | classifier | DiffPure `resnet-50/weights.pt` (`module.` stripped) |
| `imagenet-resnet50` | resnet50 | classifier | torchvision `resnet50-0676ba61.pth` (IMAGENET1K_V1) |
| `mnist-ddpm` | mnist-unet | ε, index | embedded `ssni/weights/mnist_ddpm.safetensors` (config in metadata) |
| `mnist-classifier` | mnist-cnn | classifier | embedded `ssni/weights/mnist_classifier.safetensors` |

Each family has one loader (`Family.load`); `load(name, path)` dispatches to it. score_sde: `weights="ema"`
(default, as DiffPure) or `weights="model"` (`ckpt['model']`, `module.` stripped). RobustBench accepts
`{'state_dict': sd}` or a bare dict. Every name also loads the `.safetensors` file written by
`python -m ssni.models.convert` (a plain state dict with `ssni_model=name` in its metadata). A file of another
model is refused with one line that says which model it holds when that is recognisable.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import torch
from torch import nn

from ssni.data.mnist import file_sha256
from ssni.models import adm, classifiers, ddpm, edm, mnist, ncsnpp
from ssni.models.checkpoint import (
    CheckpointError,
    load_parameters_by_position,
    load_state_dict_checked,
    read_checkpoint,
    read_safetensors_metadata,
    save_safetensors,
    strip_key_prefixes,
)
from ssni.models.formats.diffusers import load_diffusers_folder

__all__ = [
    "EMBEDDED_WEIGHTS_DIR",
    "FAMILIES",
    "PRESETS",
    "Family",
    "ModelSpec",
    "build",
    "load",
    "save_weights",
    "spec",
    "weights_id",
]

#: Where the embedded MNIST weights ship (package data).
EMBEDDED_WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"


@dataclass(frozen=True)
class ModelSpec:
    """What a registry model is and how to call it.

    kind: "eps" (forward(x, label) → ε̂, x in [−1, 1]), "denoiser" (forward(x, σ) → D(x; σ), x in [−1, 1]) or
    "classifier" (forward(x) → logits, x in [0, 1]). label: what the time argument is: "index" (integer step i of
    the 1000-step DDPM schedule), "999t" (continuous VP label 999·t) or "sigma" (noise level); None for
    classifiers. out_channels: ε̂ channels (6 = ε̂ and learned σ for ADM) or number of classes. checkpoint: the
    file users bring. kwargs: the family builder's arguments for this model (`{"config": <config dataclass>}` for
    the families built from one). embedded: the weights file shipped with ssni, loaded when no path is given.
    """

    name: str
    family: str
    kind: Literal["eps", "denoiser", "classifier"]
    label: Literal["index", "999t", "sigma"] | None
    in_channels: int
    out_channels: int
    resolution: int
    checkpoint: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    embedded: Path | None = None


@dataclass(frozen=True)
class Family:
    """How one kind of network is built and read.

    build: the builder taking the original code's constructor arguments. load(spec, path, overrides) → model with
    the file's weights. options: keyword arguments of `load` that select what to read (not constructor overrides).
    prefixes: key prefixes the family's files may carry (stripped on load).
    """

    build: Callable[..., nn.Module]
    load: Callable[[ModelSpec, Path, dict[str, Any]], nn.Module]
    options: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()


def spec(name: str) -> ModelSpec:
    """The ModelSpec of a registry name."""
    if name not in PRESETS:
        raise ValueError(f"name: unknown model {name!r}; known: {sorted(PRESETS)}")
    return PRESETS[name]


def build(name_or_family: str, *args: Any, **kwargs: Any) -> nn.Module:
    """A network with random weights.

    `build(name, **overrides)` builds a registry model (overrides replace its constructor arguments, or the fields
    of its config dataclass for ncsnpp and the MNIST models). `build(family, *args, **kwargs)` passes the original
    code's arguments to the family builder: "ncsnpp" takes score_sde's config, "adm" guided-diffusion's
    `create_model` kwargs, "edm" `EDMPrecond` kwargs, "ddpm" pytorch_diffusion `Model` kwargs, "wrn" /
    "wrn-diffpure" RobustBench's `WideResNet` kwargs, "resnet50" / "resnet50-cifar" `num_classes`, "mnist-unet" /
    "mnist-cnn" an `MNISTDiffusionConfig` / `MNISTClassifierConfig`.
    """
    if name_or_family in PRESETS:
        if args:
            raise TypeError(f"build({name_or_family!r}) takes keyword overrides only, got positional arguments")
        s = PRESETS[name_or_family]
        builder = FAMILIES[s.family].build
        config = s.kwargs.get("config")
        if dataclasses.is_dataclass(config):
            return builder(dataclasses.replace(config, **kwargs))
        return builder(**{**s.kwargs, **kwargs})
    if name_or_family in FAMILIES:
        return FAMILIES[name_or_family].build(*args, **kwargs)
    raise ValueError(
        f"name_or_family: unknown {name_or_family!r}; models: {sorted(PRESETS)}; families: {sorted(FAMILIES)}"
    )


def load(name: str, path: str | Path | None = None, **overrides: Any) -> nn.Module:
    """Build registry model `name` and load `path` (None: the embedded weights) with its file's conventions.

    overrides: constructor overrides as in `build`, plus the family's load options (score_sde: `weights="ema"`,
    the default, reads `ckpt['ema']['shadow_params']` by position as DiffPure does; `weights="model"` reads
    `ckpt['model']` with the `module.` prefix stripped). Raises FileNotFoundError, or CheckpointError (a
    ValueError, one line naming the file) for an unreadable file or one whose tensors do not fit; nothing is
    loaded partially. Returns the model in eval mode. ADM: the model has `use_fp16=True`, so the torso
    convolutions are converted to fp16 after loading, as in the reference (pass `use_fp16=False` to keep fp32).
    """
    s = spec(name)
    family = FAMILIES[s.family]
    misplaced = sorted(set(overrides) & _ALL_OPTIONS - set(family.options))
    if misplaced:
        owners = [n for n, f in FAMILIES.items() if misplaced[0] in f.options]
        raise ValueError(f"{misplaced[0]}= is an option of the {'/'.join(owners)} family only, not of {name!r}")
    if path is None:
        if s.embedded is None:
            raise ValueError(f"path: {name} needs your checkpoint file ({s.checkpoint}); nothing is downloaded")
        path = s.embedded
    return family.load(s, Path(path), dict(overrides)).eval()


def weights_id(name: str, path: str | Path | None = None) -> str:
    """'<name>:<first 16 hex digits of the file's SHA-256>' for `path` (None: the embedded weights).

    This is the `model_id` a calibration records for the model it was made with."""
    s = spec(name)
    path = Path(path) if path is not None else s.embedded
    if path is None:
        raise ValueError(f"path: {name} has no embedded weights; give the checkpoint file")
    if not path.is_file():
        raise FileNotFoundError(f"path: {name} weights file {path} does not exist")
    return f"{name}:{file_sha256(path)[:16]}"


def save_weights(
    name: str, model: nn.Module, path: str | Path, config: Any, extra: Mapping[str, str] | None = None
) -> Path:
    """Write an ssni weights file for registry model `name` (a family built from a config dataclass): the state
    dict as float32 safetensors, metadata `ssni_model=name`, `config` (JSON of `config`) and `extra`. `load(name,
    path)` reads it back, building the model from the stored config."""
    expected = type(spec(name).kwargs.get("config"))
    if not dataclasses.is_dataclass(expected) or not isinstance(config, expected):
        raise TypeError(f"config: {name} files record a {expected.__name__}, got {type(config).__name__}")
    tensors = {k: v.to(torch.float32) if v.is_floating_point() else v for k, v in model.state_dict().items()}
    metadata = {"ssni_model": name, "config": json.dumps(dataclasses.asdict(config), sort_keys=True), **(extra or {})}
    return save_safetensors(tensors, path, metadata)


# ---------------------------------------------------------------------------------------------------------------
# Loaders, one per family
# ---------------------------------------------------------------------------------------------------------------
def _read(s: ModelSpec, path: Path) -> Any:
    """The checkpoint object, after refusing a safetensors file converted for another model or EDM class."""
    if path.suffix == ".safetensors" and path.is_file():
        metadata = read_safetensors_metadata(path)
        recorded = metadata.get("ssni_model")
        if recorded is not None and recorded != s.name:
            raise CheckpointError(f"checkpoint {path} was written for {recorded!r}, not {s.name!r}")
        edm_class = metadata.get("edm_class")
        if edm_class is not None and edm_class != "EDMPrecond":
            raise CheckpointError(
                f"checkpoint {path} holds an EDM {edm_class} network; only EDMPrecond is supported (the state-dict "
                "keys of the other preconditionings are identical but they compute a different function)"
            )
    return read_checkpoint(path)


def _flat_state_dict(s: ModelSpec, obj: Any, path: Path) -> Mapping[str, Any]:
    """The flat state dict inside a checkpoint object, with the family's key prefixes removed."""
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]  # RobustBench (and many trainers) wrap the state dict
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint {path}: expected a state dict, got {type(obj).__name__}")
    return strip_key_prefixes(obj, FAMILIES[s.family].prefixes)


def _load_into(s: ModelSpec, model: nn.Module, state_dict: Mapping[str, Any], path: Path, obj: Any) -> None:
    """Strict load; a mismatch names the registry model the file does hold, when one fits it exactly."""
    try:
        load_state_dict_checked(model, state_dict, source=f"checkpoint {path}")
    except CheckpointError:
        holds = [n for n in _identify(obj) if n != s.name]
        if not holds:
            raise
        raise CheckpointError(
            f"checkpoint {path} holds the {' or '.join(holds)} network, not {s.name} (expected: {s.checkpoint})"
        ) from None


def _load_flat(s: ModelSpec, path: Path, overrides: dict[str, Any]) -> nn.Module:
    obj = _read(s, path)
    model = build(s.name, **overrides)
    _load_into(s, model, _flat_state_dict(s, obj, path), path, obj)
    return model


def _load_adm(s: ModelSpec, path: Path, overrides: dict[str, Any]) -> nn.Module:
    model = _load_flat(s, path, overrides)
    if model.config.use_fp16:
        model.convert_to_fp16()  # guided-diffusion converts after loading the fp32 file when use_fp16
    return model


def _load_ddpm(s: ModelSpec, path: Path, overrides: dict[str, Any]) -> nn.Module:
    if not path.is_dir():
        return _load_flat(s, path, overrides)
    if overrides:
        raise ValueError(f"path: the diffusers folder {path} defines its own config; overrides are not accepted")
    return load_diffusers_folder(path)


def _load_score_sde(s: ModelSpec, path: Path, overrides: dict[str, Any]) -> nn.Module:
    """score_sde `save_checkpoint` dict {'optimizer', 'model' (DataParallel keys), 'ema': {'decay', 'num_updates',
    'shadow_params': [tensor, ...]}, 'step'}, or a flat state dict (e.g. a converted file)."""
    weights = overrides.pop("weights", "ema")
    if weights not in ("ema", "model"):
        raise ValueError(f"weights must be 'ema' or 'model', got {weights!r}")
    obj = _read(s, path)
    model = build(s.name, **overrides)
    if not (isinstance(obj, Mapping) and ("ema" in obj or "model" in obj)):
        _load_into(s, model, _flat_state_dict(s, obj, path), path, obj)
    elif weights == "ema":
        ema = obj.get("ema")
        if not isinstance(ema, Mapping) or "shadow_params" not in ema:
            raise CheckpointError(f"checkpoint {path} has no ['ema']['shadow_params'] list (pass weights='model'?)")
        load_parameters_by_position(model, ema["shadow_params"], source=f"checkpoint {path} ['ema']['shadow_params']")
    else:
        if not isinstance(obj.get("model"), Mapping):
            raise CheckpointError(f"checkpoint {path} has no 'model' state dict")
        state_dict = strip_key_prefixes(obj["model"], FAMILIES[s.family].prefixes)
        _load_into(s, model, state_dict, path, obj)
    return model


#: Config fields added after weights files were written, with the value those files were trained with.
_STORED_CONFIG_BEFORE_FIELD = {"norm_groups": 32}


def _load_with_stored_config(s: ModelSpec, path: Path, overrides: dict[str, Any]) -> nn.Module:
    """An ssni weights file: safetensors whose metadata records `ssni_model` (= the name) and `config` (JSON)."""
    if overrides:
        raise ValueError(f"{s.name}: the weights file records its own config; overrides are not accepted")
    if not path.is_file():
        raise FileNotFoundError(f"path: {s.name} weights file {path} does not exist")
    metadata = read_safetensors_metadata(path)
    if metadata.get("ssni_model") != s.name or "config" not in metadata:
        raise CheckpointError(
            f"weights file {path} holds {metadata.get('ssni_model') or 'no ssni model'}, not {s.name} with its config"
        )
    config_cls = type(s.kwargs["config"])
    try:
        fields = {f.name for f in dataclasses.fields(config_cls)}
        legacy = {k: v for k, v in _STORED_CONFIG_BEFORE_FIELD.items() if k in fields}
        values = {**legacy, **json.loads(metadata["config"])}
        config = config_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"weights file {path}: its config does not fit {config_cls.__name__} ({err})") from None
    model = FAMILIES[s.family].build(config)
    obj = read_checkpoint(path)
    _load_into(s, model, obj, path, obj)
    return model


FAMILIES: Mapping[str, Family] = MappingProxyType(
    {
        "adm": Family(adm.build_adm, _load_adm),
        "ncsnpp": Family(ncsnpp.build_ncsnpp, _load_score_sde, options=("weights",), prefixes=("module.",)),
        "edm": Family(edm.build_edm, _load_flat),
        "ddpm": Family(ddpm.build_ddpm, _load_ddpm),
        "wrn": Family(classifiers.build_wrn, _load_flat, prefixes=("module.", "model.")),
        "wrn-diffpure": Family(classifiers.build_wrn_diffpure, _load_flat, prefixes=("module.",)),
        "resnet50-cifar": Family(classifiers.build_cifar_resnet50, _load_flat, prefixes=("module.",)),
        "resnet50": Family(classifiers.build_resnet50, _load_flat),
        "mnist-unet": Family(mnist.build_mnist_diffusion, _load_with_stored_config),
        "mnist-cnn": Family(mnist.MNISTClassifier, _load_with_stored_config),
    }
)
_ALL_OPTIONS = {option for family in FAMILIES.values() for option in family.options}

PRESETS: Mapping[str, ModelSpec] = MappingProxyType(
    {
        s.name: s
        for s in (
            ModelSpec(
                "cifar10-ddpmpp-deep-continuous", "ncsnpp", "eps", "999t", 3, 3, 32, "score_sde checkpoint_8.pth",
                {"config": ncsnpp.DDPMPP_DEEP_CONTINUOUS_CIFAR10},
            ),
            ModelSpec(
                "imagenet-adm-256-uncond", "adm", "eps", "index", 3, 6, 256, "256x256_diffusion_uncond.pt",
                adm.ADM_IMAGENET_256_UNCOND,
            ),
            ModelSpec("cifar10-ddpm", "ddpm", "eps", "index", 3, 3, 32, "model-790000.ckpt", ddpm.DDPM_CIFAR10),
            ModelSpec(
                "cifar10-edm-uncond-vp", "edm", "denoiser", "sigma", 3, 3, 32,
                "edm-cifar10-32x32-uncond-vp.pkl converted to safetensors", edm.EDM_CIFAR10_UNCOND_VP,
            ),
            ModelSpec("cifar10-wrn-28-10", "wrn", "classifier", None, 3, 10, 32, "RobustBench Standard.pt",
                      {"depth": 28, "widen_factor": 10}),
            ModelSpec("cifar10-wrn-70-16-dropout", "wrn-diffpure", "classifier", None, 3, 10, 32,
                      "DiffPure wrn-70-16-dropout/weights.pt", {"depth": 70, "widen_factor": 16, "dropRate": 0.3}),
            ModelSpec("cifar10-resnet-50", "resnet50-cifar", "classifier", None, 3, 10, 32,
                      "DiffPure resnet-50/weights.pt"),
            ModelSpec("imagenet-resnet50", "resnet50", "classifier", None, 3, 1000, 224,
                      "torchvision resnet50-0676ba61.pth"),
            ModelSpec("mnist-ddpm", "mnist-unet", "eps", "index", 1, 1, 28, "the embedded mnist_ddpm.safetensors",
                      {"config": mnist.MNISTDiffusionConfig()}, EMBEDDED_WEIGHTS_DIR / "mnist_ddpm.safetensors"),
            ModelSpec("mnist-classifier", "mnist-cnn", "classifier", None, 1, 10, 28,
                      "the embedded mnist_classifier.safetensors", {"config": mnist.MNISTClassifierConfig()},
                      EMBEDDED_WEIGHTS_DIR / "mnist_classifier.safetensors"),
        )
    }
)  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# Which model does a file hold? (for the error message only)
# ---------------------------------------------------------------------------------------------------------------
@functools.cache
def _signature(name: str) -> frozenset[tuple[str, tuple[int, ...]]]:
    """(key, shape) of every state-dict entry of registry model `name` at its real size (built on the meta device)."""
    with torch.device("meta"):
        model = build(name)
    return frozenset((k, tuple(v.shape)) for k, v in model.state_dict().items())


def _identify(obj: Any) -> list[str]:
    """Registry names whose full-size state dict the checkpoint object holds exactly (after their family's
    prefixes are stripped); a score_sde training checkpoint is judged by its 'model' entry."""
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping) and "ema" in obj:
        obj = obj["model"]
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        return []
    found = []
    for name, s in PRESETS.items():
        stripped = strip_key_prefixes(obj, FAMILIES[s.family].prefixes)
        if frozenset((k, tuple(v.shape)) for k, v in stripped.items()) == _signature(name):
            found.append(name)
    return found
