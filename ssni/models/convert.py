"""Checkpoint files: safe reading, strict loading with a readable error, and conversion to safetensors.

Reading never runs pickled code: `.safetensors` files are read with safetensors, everything else with
`torch.load(..., weights_only=True)`. The one exception is `convert_edm_pickle`, an explicit one-time conversion
of NVlabs/edm's `.pkl` (a pickle with embedded class source) that needs the user's NVlabs/edm checkout on
`sys.path` for the duration of the call only.

CLI: `python -m ssni.models.convert NAME SRC DST` converts any registry model's checkpoint (loaded with that
model's conventions and checked strictly) to safetensors; `--edm-repo PATH` converts an EDM `.pkl`.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "CheckpointError",
    "convert_edm_pickle",
    "convert_to_safetensors",
    "load_parameters_by_position",
    "load_state_dict_checked",
    "read_checkpoint",
    "read_safetensors_metadata",
    "strip_key_prefixes",
]

_MAX_LISTED = 20


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read, or whose tensors do not match the model."""


def read_checkpoint(path: str | Path) -> Any:
    """The object stored in `path`: a `{name: tensor}` dict for `.safetensors`, else what
    `torch.load(path, map_location="cpu", weights_only=True)` returns.

    Raises FileNotFoundError for a missing file and CheckpointError for an unreadable one (truncated, corrupt, or
    a pickle that holds code, which weights_only refuses)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"path: checkpoint file {path} does not exist")
    if not path.is_file():
        raise CheckpointError(f"path: {path} is not a file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        # Zip-format files are memory-mapped, so a 2 GB checkpoint is not held twice while it is copied in.
        return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        after = [lines[i + 1] for i, line in enumerate(lines[:-1]) if "WeightsUnpickler error" in line]
        reason = after[0] if after else lines[0] if lines else type(err).__name__
        raise CheckpointError(
            f"path: {path} is not a tensor-only checkpoint (torch.load(weights_only=True) refused it: {reason}). "
            "Either the file is corrupt, or it is a pickle that runs code: an NVlabs/edm .pkl must be converted "
            "once with ssni.models.convert.convert_edm_pickle; other files: re-save the state dict where you trust it."
        ) from err
    except Exception as err:  # truncated / corrupt archives surface as assorted parser errors: name the file
        raise CheckpointError(
            f"path: cannot read checkpoint {path} ({type(err).__name__}: {err}); is the file truncated or corrupt?"
        ) from err


def read_safetensors_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a safetensors file ({} when it has none)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as err:
        raise CheckpointError(f"path: cannot read safetensors header of {path} ({type(err).__name__}: {err})") from err


def strip_key_prefixes(state_dict: Mapping[str, Any], prefixes: Sequence[str]) -> dict[str, Any]:
    """Remove any of `prefixes` from the start of each key, repeatedly (e.g. `module.model.conv1.weight`)."""
    out = {}
    for key, value in state_dict.items():
        stripped = True
        while stripped:
            stripped = False
            for prefix in prefixes:
                if key.startswith(prefix):
                    key, stripped = key[len(prefix) :], True
        out[key] = value
    return out


def _listing(title: str, items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    more = f" … (+{len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else ""
    return f"\n  {title} ({len(items)}): {shown}{more}"


def load_state_dict_checked(model: nn.Module, state_dict: Mapping[str, Any], *, source: str = "checkpoint") -> None:
    """`model.load_state_dict(state_dict, strict=True)` after checking names, shapes and kinds of every entry.

    Raises CheckpointError listing the missing keys, unexpected keys, shape mismatches and dtype-kind mismatches
    (integer vs floating); floating tensors of another precision are cast, as load_state_dict does."""
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(f"{source}: expected a state dict (mapping of names to tensors), got {type(state_dict)}")
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes, kinds = [], []
    for key, want in expected.items():
        got = state_dict.get(key)
        if got is None:
            continue
        if not isinstance(got, torch.Tensor):
            kinds.append(f"{key}: {type(got).__name__} instead of a tensor")
        elif got.shape != want.shape:
            shapes.append(f"{key}: checkpoint {list(got.shape)} vs model {list(want.shape)}")
        elif got.is_floating_point() != want.is_floating_point():
            kinds.append(f"{key}: checkpoint {got.dtype} vs model {want.dtype}")
    if missing or unexpected or shapes or kinds:
        message = f"{source} does not match {type(model).__name__}:"
        for title, items in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", shapes),
            ("dtype mismatches", kinds),
        ):
            if items:
                message += _listing(title, items)
        raise CheckpointError(message)
    model.load_state_dict(state_dict, strict=True)


def load_parameters_by_position(
    model: nn.Module, tensors: Sequence[torch.Tensor], *, source: str = "parameter list"
) -> None:
    """Copy an unnamed tensor list into `[p for p in model.parameters() if p.requires_grad]`, in order.

    This is how score_sde's `ExponentialMovingAverage.copy_to` applies `ckpt['ema']['shadow_params']`. The
    lengths and every shape must agree (CheckpointError names the parameter of each mismatch)."""
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    params = [p for p in model.parameters() if p.requires_grad]
    if not isinstance(tensors, (list, tuple)) or not all(isinstance(t, torch.Tensor) for t in tensors):
        raise CheckpointError(f"{source}: expected a list of tensors, got {type(tensors).__name__}")
    problems = []
    if len(tensors) != len(params):
        problems.append(f"{len(tensors)} tensors for {len(params)} trainable parameters")
    problems += [
        f"#{i} {name}: checkpoint {list(t.shape)} vs model {list(p.shape)}"
        for i, (name, p, t) in enumerate(zip(names, params, tensors))
        if t.shape != p.shape
    ]
    if problems:
        raise CheckpointError(f"{source} does not match {type(model).__name__} by position:" + _listing("", problems))
    with torch.no_grad():
        for p, t in zip(params, tensors):
            p.copy_(t)


def convert_to_safetensors(name: str, src: str | Path, dst: str | Path, **load_options) -> Path:
    """Load `src` as registry model `name` (its conventions, strict checks) and write its state dict to `dst`.

    The file records `ssni_model=name` in its metadata; `ssni.models.load(name, dst)` reads it back. Returns dst."""
    from safetensors.torch import save_file

    from ssni.models.registry import load, spec

    if spec(name).family == "adm":
        load_options.setdefault("use_fp16", False)  # keep the file fp32 like the original; load() converts again
    model = load(name, src, **load_options)
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(dst), metadata={"ssni_model": name, "source": Path(src).name})
    return dst


def convert_edm_pickle(
    src: str | Path, dst: str | Path, *, edm_repo: str | Path, key: str = "ema", name: str = "cifar10-edm-uncond-vp"
) -> Path:
    """One-time conversion of an NVlabs/edm network pickle (e.g. `edm-cifar10-32x32-uncond-vp.pkl`) to safetensors.

    THIS UNPICKLES `src`, which executes code embedded in the file: run it only on files you trust. `edm_repo` is
    your NVlabs/edm checkout; it is on `sys.path` only during the call (unpickling needs its `dnnlib` and
    `torch_utils`). Writes `pickle[key].state_dict()` (floating tensors as fp32) with metadata `ssni_model=name`,
    `edm_class` (the preconditioning class: only EDMPrecond loads, since VPPrecond/VEPrecond have the same keys
    but compute another function) and `edm_init_kwargs` (JSON of the constructor arguments, when available).
    """
    from safetensors.torch import save_file

    src, dst, edm_repo = Path(src), Path(dst), Path(edm_repo)
    if not src.is_file():
        raise FileNotFoundError(f"src: {src} does not exist")
    if not (edm_repo / "torch_utils").is_dir() or not (edm_repo / "dnnlib").is_dir():
        raise ValueError(f"edm_repo: {edm_repo} is not an NVlabs/edm checkout (needs dnnlib/ and torch_utils/)")
    sys.path.insert(0, str(edm_repo))
    try:
        with open(src, "rb") as f:
            data = pickle.load(f)  # noqa: S301 - explicit, documented opt-in
    finally:
        sys.path.remove(str(edm_repo))
    if not isinstance(data, Mapping) or key not in data:
        found = list(data) if isinstance(data, Mapping) else type(data).__name__
        raise CheckpointError(f"src: {src} has no {key!r} entry (found {found})")
    net = data[key]
    tensors = {k: v.detach().float().contiguous() if v.is_floating_point() else v for k, v in net.state_dict().items()}
    metadata = {"ssni_model": name, "source": src.name, "edm_key": key, "edm_class": type(net).__name__}
    init_kwargs = getattr(net, "init_kwargs", None)
    if init_kwargs is not None:
        try:
            metadata["edm_init_kwargs"] = json.dumps(dict(init_kwargs))
        except TypeError:
            pass  # non-JSON kwargs: the strict load still checks the structure
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(dst), metadata=metadata)
    return dst


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ssni.models.convert", description=__doc__.splitlines()[0])
    parser.add_argument("name", help="registry name, e.g. cifar10-ddpmpp-deep-continuous")
    parser.add_argument("src", help="original checkpoint file (or diffusers folder)")
    parser.add_argument("dst", help="output .safetensors file")
    parser.add_argument("--edm-repo", help="NVlabs/edm checkout: convert an EDM .pkl (UNPICKLES the file)")
    args = parser.parse_args(argv)
    if args.edm_repo:
        out = convert_edm_pickle(args.src, args.dst, edm_repo=args.edm_repo)
    else:
        out = convert_to_safetensors(args.name, args.src, args.dst)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
