"""Checkpoint files, low level: safe reading, strict loading with a one-line error, safetensors writing.

Reading never runs pickled code: `.safetensors` files are read with safetensors, everything else with
`torch.load(..., weights_only=True)`. Every failure is a `CheckpointError` (a ValueError) whose message is one
line that names the file and says what is wrong with it. This module knows no model family (the registry does).
"""

from __future__ import annotations

import pickle
import pickletools
import re
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ssni.errors import SSNIUserError, one_line

__all__ = [
    "CheckpointError",
    "load_parameters_by_position",
    "load_state_dict_checked",
    "read_checkpoint",
    "read_safetensors_metadata",
    "save_safetensors",
    "state_dict_mismatches",
    "strip_key_prefixes",
]

_MAX_LISTED = 5
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


class CheckpointError(SSNIUserError, ValueError):
    """A checkpoint file that cannot be read, or whose tensors do not match the model. The message is one line."""


def read_checkpoint(path: str | Path) -> Any:
    """The object stored in `path`: a `{name: tensor}` dict for `.safetensors`, else what
    `torch.load(path, map_location="cpu", weights_only=True)` returns.

    Raises FileNotFoundError for a missing file and CheckpointError for an unreadable one (truncated, corrupt, or
    a pickle that holds code or Python objects, which weights_only refuses without running them)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"path: checkpoint file {path} does not exist")
    if not path.is_file():
        raise CheckpointError(f"path: {path} is not a file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        # Zip-format files are memory-mapped, so a 2 GB checkpoint is not held twice while it is copied in.
        return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as err:
        names = _GLOBAL.findall(str(err)) or _pickled_globals(path)
        if names:
            raise CheckpointError(_refused_pickle_message(path, names)) from None
        raise CheckpointError(
            f"cannot read checkpoint {path}: not a PyTorch or safetensors checkpoint, or truncated or corrupt "
            f"({one_line(err).rsplit('error:', 1)[-1].split('Check the documentation')[0].strip()[:120]})"
        ) from None
    except Exception as err:  # truncated / corrupt archives surface as assorted parser errors: name the file
        raise CheckpointError(
            f"cannot read checkpoint {path}: is the file truncated or corrupt? ({type(err).__name__}: "
            f"{one_line(err).split('. ')[0][:160]})"
        ) from None


def _pickled_globals(path: Path, max_bytes: int = 1 << 26) -> list[str]:
    """module.name of every global the (first) pickle in `path` would import, read from its opcodes without running
    anything; [] when the bytes are not a readable pickle. For zip checkpoints the pickle is `*/data.pkl`."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                member = next(n for n in archive.namelist() if n.endswith("data.pkl"))
                data = archive.read(member)
        else:
            with open(path, "rb") as f:
                data = f.read(max_bytes)
        names, strings = [], []
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name in ("GLOBAL", "INST"):
                names.append(str(arg).replace(" ", "."))
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                names.append(f"{strings[-2]}.{strings[-1]}")
            elif isinstance(arg, str):
                strings.append(arg)
        return names
    except Exception:  # not a pickle at all (or cut short): the caller reports a corrupt file
        return []


def _refused_pickle_message(path: Path, names: list[str]) -> str:
    # The globals a tensor checkpoint itself uses (torch's rebuild functions, OrderedDict) say nothing: skip them.
    foreign = [n for n in names if not n.startswith(("torch.", "collections.", "_codecs."))] or names
    shown = ", ".join(list(dict.fromkeys(foreign))[:3])
    hint = (
        "an NVlabs/edm .pkl must be converted once with `python -m ssni.models.convert --edm-repo`"
        if path.suffix == ".pkl"
        else "re-save the state dict where you trust the file"
    )
    return (
        f"checkpoint {path} is refused: its pickle holds Python objects or code ({one_line(shown)}), and ssni only "
        f"reads tensors (torch.load weights_only=True; nothing in the file was run); {hint}"
    )


def read_safetensors_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a safetensors file ({} when it has none)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as err:
        raise CheckpointError(
            f"cannot read the safetensors header of {path} ({type(err).__name__}: {one_line(err)[:200]})"
        ) from None


def save_safetensors(state_dict: Mapping[str, torch.Tensor], path: str | Path, metadata: Mapping[str, str]) -> Path:
    """Write `state_dict` (detached, contiguous; dtypes kept) to `path` with string `metadata`. Returns the path."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in state_dict.items()}, str(path), metadata=dict(metadata))
    return path


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
    more = f", … (+{len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else ""
    return f"{title} ({len(items)}): {shown}{more}"


def state_dict_mismatches(model: nn.Module, state_dict: Mapping[str, Any]) -> dict[str, list[str]]:
    """{"missing keys", "unexpected keys", "shape mismatches", "dtype mismatches"} → entries (empty lists: none)."""
    expected = model.state_dict()
    problems: dict[str, list[str]] = {
        "missing keys": [k for k in expected if k not in state_dict],
        "unexpected keys": [k for k in state_dict if k not in expected],
        "shape mismatches": [],
        "dtype mismatches": [],
    }
    for key, want in expected.items():
        got = state_dict.get(key)
        if got is None:
            continue
        if not isinstance(got, torch.Tensor):
            problems["dtype mismatches"].append(f"{key}: {type(got).__name__} instead of a tensor")
        elif got.shape != want.shape:
            problems["shape mismatches"].append(f"{key}: checkpoint {list(got.shape)} vs model {list(want.shape)}")
        elif got.is_floating_point() != want.is_floating_point():
            problems["dtype mismatches"].append(f"{key}: checkpoint {got.dtype} vs model {want.dtype}")
    return problems


def load_state_dict_checked(model: nn.Module, state_dict: Mapping[str, Any], *, source: str = "checkpoint") -> None:
    """`model.load_state_dict(state_dict, strict=True)` after checking names, shapes and kinds of every entry.

    Raises CheckpointError (one line: counts and the first entries of each kind of problem) for missing keys,
    unexpected keys, shape mismatches and dtype-kind mismatches (integer vs floating); floating tensors of another
    precision are cast, as load_state_dict does."""
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(f"{source}: expected a state dict (names → tensors), got {type(state_dict).__name__}")
    problems = {title: items for title, items in state_dict_mismatches(model, state_dict).items() if items}
    if problems:
        found = "; ".join(_listing(title, items) for title, items in problems.items())
        raise CheckpointError(f"{source} does not match {type(model).__name__}: {found}")
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
        raise CheckpointError(
            f"{source} does not match {type(model).__name__} by position: " + _listing("problems", problems)
        )
    with torch.no_grad():
        for p, t in zip(params, tensors):
            p.copy_(t)
