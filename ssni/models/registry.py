"""One registry of the public DBP networks: `build` (random weights, from a family's original arguments or a named
preset) and `load` (a user's checkpoint file with that checkpoint's conventions, checked strictly).

| name | family | kind, label | file the user brings (loading convention) |
| --- | --- | --- | --- |
| `cifar10-ddpmpp-deep-continuous` | ncsnpp | ε, 999·t | score_sde `checkpoint_8.pth` (EMA list by position) |
| `imagenet-adm-256-uncond` | adm | ε + learned σ (6 ch), index | guided-diffusion `256x256_diffusion_uncond.pt` |
| `cifar10-ddpm` | ddpm | ε, index | pytorch_diffusion `model-790000.ckpt`, or a diffusers folder |
| `cifar10-edm-uncond-vp` | edm | denoiser D(x; σ), σ | `convert_edm_pickle(edm-cifar10-32x32-uncond-vp.pkl)` |
| `cifar10-wrn-28-10` | wrn | classifier | RobustBench `Standard.pt` (`module.`/`model.` stripped) |
| `cifar10-wrn-70-16-dropout` | wrn-diffpure | classifier | DiffPure `wrn-70-16-dropout/weights.pt` (`module.`) |
| `cifar10-resnet-50` | resnet50-cifar | classifier | DiffPure `resnet-50/weights.pt` (`module.` stripped) |
| `imagenet-resnet50` | resnet50 | classifier | torchvision `resnet50-0676ba61.pth` (IMAGENET1K_V1) |

score_sde: `weights="ema"` (default, as DiffPure) or `weights="model"` (`ckpt['model']`, `module.` stripped).
RobustBench accepts `{'state_dict': sd}` or a bare dict.

Every name also loads the `.safetensors` file written by `ssni.models.convert.convert_to_safetensors` (a plain
state dict of the built model). Loaded models are in eval mode; their `ModelSpec` is `spec(name)`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from torch import nn

from ssni.models import adm, classifiers, ddpm, edm, ncsnpp
from ssni.models.convert import (
    CheckpointError,
    load_parameters_by_position,
    load_state_dict_checked,
    read_checkpoint,
    read_safetensors_metadata,
    strip_key_prefixes,
)

__all__ = ["FAMILIES", "PRESETS", "ModelSpec", "build", "load", "spec"]


#: family → builder taking the original code's constructor arguments.
FAMILIES: Mapping[str, Callable[..., nn.Module]] = MappingProxyType(
    {
        "adm": adm.build_adm,
        "ncsnpp": ncsnpp.build_ncsnpp,
        "edm": edm.build_edm,
        "ddpm": ddpm.build_ddpm,
        "wrn": classifiers.build_wrn,
        "wrn-diffpure": classifiers.build_wrn_diffpure,
        "resnet50-cifar": classifiers.build_cifar_resnet50,
        "resnet50": classifiers.build_resnet50,
    }
)


@dataclass(frozen=True)
class ModelSpec:
    """What a registry model is and how to call it.

    kind: "eps" (forward(x, label) → ε̂, x in [−1, 1]), "denoiser" (forward(x, σ) → D(x; σ), x in [−1, 1]) or
    "classifier" (forward(x) → logits, x in [0, 1]). label: what the time argument is: "index" (integer step i of
    the 1000-step DDPM schedule), "999t" (continuous VP label 999·t) or "sigma" (noise level); None for
    classifiers. out_channels: ε̂ channels (6 = ε̂ and learned σ for ADM) or number of classes. kwargs: the
    family builder's arguments for this preset (for ncsnpp: `{"config": NCSNppConfig}`).
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
        )
    }
)  # fmt: skip


def spec(name: str) -> ModelSpec:
    """The ModelSpec of a registry name."""
    if name not in PRESETS:
        raise ValueError(f"name: unknown model {name!r}; known: {sorted(PRESETS)}")
    return PRESETS[name]


def build(name_or_family: str, *args: Any, **kwargs: Any) -> nn.Module:
    """A network with random weights.

    `build(preset_name, **overrides)` builds a registry preset (overrides replace its constructor arguments;
    for ncsnpp they replace fields of the `NCSNppConfig`). `build(family, *args, **kwargs)` passes the original
    code's arguments to the family builder: "ncsnpp" takes score_sde's config, "adm" guided-diffusion's
    `create_model` kwargs, "edm" `EDMPrecond` kwargs, "ddpm" pytorch_diffusion `Model` kwargs, "wrn" /
    "wrn-diffpure" RobustBench's `WideResNet` kwargs, "resnet50" / "resnet50-cifar" `num_classes`.
    """
    if name_or_family in PRESETS:
        if args:
            raise TypeError(f"build({name_or_family!r}) takes keyword overrides only, got positional arguments")
        s = PRESETS[name_or_family]
        if s.family == "ncsnpp":
            return ncsnpp.build_ncsnpp(dataclasses.replace(s.kwargs["config"], **kwargs))
        return FAMILIES[s.family](**{**s.kwargs, **kwargs})
    if name_or_family in FAMILIES:
        return FAMILIES[name_or_family](*args, **kwargs)
    raise ValueError(
        f"name_or_family: unknown {name_or_family!r}; presets: {sorted(PRESETS)}; families: {sorted(FAMILIES)}"
    )


def load(name: str, path: str | Path, **overrides: Any) -> nn.Module:
    """Build registry model `name` and load the user's checkpoint `path` with that checkpoint's conventions.

    overrides: constructor overrides as in `build`, plus for
    `cifar10-ddpmpp-deep-continuous` the option `weights="ema"` (default: `ckpt['ema']['shadow_params']` by
    position, as DiffPure) or `weights="model"` (`ckpt['model']`, `module.` prefix stripped).
    Raises FileNotFoundError / CheckpointError (a ValueError) listing missing/unexpected keys and shape
    mismatches; nothing is loaded partially. Returns the model in eval mode. ADM: the preset has `use_fp16=True`,
    so the torso convolutions are converted to fp16 after loading, as in the reference (pass `use_fp16=False` to
    keep fp32, e.g. on CPU).
    """
    s = spec(name)
    weights = overrides.pop("weights", "ema")
    if weights not in ("ema", "model"):
        raise ValueError(f"weights must be 'ema' or 'model', got {weights!r}")
    if weights != "ema" and s.family != "ncsnpp":
        raise ValueError(f"weights={weights!r} applies to score_sde checkpoints only, not {name!r}")
    path = Path(path)
    if s.family == "ddpm" and path.is_dir():
        if overrides:
            raise ValueError("a diffusers folder defines its own config; overrides are not accepted")
        return ddpm.load_diffusers_folder(path)
    if s.family == "ncsnpp" and "use_fp16" in overrides:
        raise TypeError("use_fp16 is not an NCSN++ option")
    _check_metadata(name, path)
    obj = read_checkpoint(path)  # before building: a bad file fails fast
    model = build(name, **overrides)
    source = f"checkpoint {path}"
    if s.family == "ncsnpp" and isinstance(obj, Mapping) and ("ema" in obj or "model" in obj):
        _load_score_sde(model, obj, weights, source)
    else:
        load_state_dict_checked(model, _state_dict_for(s, obj, source), source=source)
    if s.family == "adm" and model.config.use_fp16:
        model.convert_to_fp16()  # guided-diffusion converts after loading the fp32 file when use_fp16
    return model.eval()


def _check_metadata(name: str, path: Path) -> None:
    """A converted file must have been converted for this name (and, for EDM, from an EDMPrecond network)."""
    if path.suffix != ".safetensors" or not path.is_file():
        return
    metadata = read_safetensors_metadata(path)
    recorded = metadata.get("ssni_model")
    if recorded is not None and recorded != name:
        raise CheckpointError(f"checkpoint {path} was converted for {recorded!r}, not {name!r}")
    edm_class = metadata.get("edm_class")
    if edm_class is not None and edm_class != "EDMPrecond":
        raise CheckpointError(
            f"checkpoint {path} holds an EDM {edm_class} network; only EDMPrecond is supported (the state-dict keys "
            "of the other preconditionings are identical but they compute a different function)"
        )


def _load_score_sde(model: nn.Module, ckpt: Mapping[str, Any], weights: str, source: str) -> None:
    """score_sde `save_checkpoint` dict: {'model': DataParallel state dict, 'ema': {..., 'shadow_params'}, ...}."""
    if weights == "ema":
        ema = ckpt.get("ema")
        if not isinstance(ema, Mapping) or "shadow_params" not in ema:
            raise CheckpointError(f"{source} has no ['ema']['shadow_params'] list (pass weights='model'?)")
        load_parameters_by_position(model, ema["shadow_params"], source=f"{source} ['ema']['shadow_params']")
    else:
        if "model" not in ckpt:
            raise CheckpointError(f"{source} has no 'model' entry")
        state_dict = strip_key_prefixes(ckpt["model"], ("module.",))
        load_state_dict_checked(model, state_dict, source=f"{source} ['model']")


def _state_dict_for(s: ModelSpec, obj: Any, source: str) -> Mapping[str, Any]:
    """The flat state dict inside a checkpoint object, with the family's key prefixes removed."""
    if s.family == "wrn" and isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]  # RobustBench accepts {'state_dict': sd}
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{source}: expected a state dict, got {type(obj).__name__}")
    if s.family == "wrn":
        return strip_key_prefixes(obj, ("module.", "model."))
    if s.family in ("wrn-diffpure", "resnet50-cifar"):
        return strip_key_prefixes(obj, ("module.",))  # DiffPure: update_state_dict(..., idx_start=7)
    return obj
