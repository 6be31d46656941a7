"""Argument validation of the public ops: clear TypeError/ValueError naming the argument, before dispatch.

Two kinds of checks:
- metadata (type, shape, dtype, device): free, always on, also while torch.compile traces;
- values (t in range, finite schedule, σ > 0, ...): gathered into ONE boolean tensor read back once per call,
  which is a device synchronisation on a GPU. They run in eager mode unless SSNI_CHECK_VALUES=0, and are
  skipped while torch.compile traces (the CPU kernels still bounds-check indices such as t).
"""

from __future__ import annotations

import math
import os

import torch

CHECK_VALUES = os.environ.get("SSNI_CHECK_VALUES", "1") != "0"
_UINT32 = 2**32
_INT64_MIN, _UINT64_END = -(2**63), 2**64


def tensor(op: str, name: str, value, *, kind: str = "float") -> torch.Tensor:
    """`value` must be a tensor of `kind`: "float" (floating point), "int" (integer) or "bool"."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(value).__name__}")
    ok = {
        "float": value.is_floating_point(),
        "int": not value.is_floating_point() and not value.is_complex() and value.dtype != torch.bool,
        "bool": value.dtype == torch.bool,
    }[kind]
    if not ok:
        expected = {"float": "floating point", "int": "an integer dtype", "bool": "torch.bool"}[kind]
        raise TypeError(f"{op}: {name} must be {expected}, got {value.dtype}")
    return value


def batch(op: str, name: str, x) -> torch.Tensor:
    """A floating [B, ...] tensor with B > 0."""
    tensor(op, name, x)
    if x.dim() == 0 or x.shape[0] == 0:
        raise ValueError(f"{op}: {name} must be [B, ...] with a non-empty batch, got shape {tuple(x.shape)}")
    return x


def like(op: str, name: str, value, x: torch.Tensor, shape=None) -> torch.Tensor:
    """Same dtype and device as x, and shape `shape` (default: x's shape)."""
    tensor(op, name, value)
    shape = tuple(x.shape) if shape is None else tuple(shape)
    if tuple(value.shape) != shape:
        raise ValueError(f"{op}: {name} must have shape {shape}, got {tuple(value.shape)}")
    if value.dtype != x.dtype:
        raise TypeError(f"{op}: {name} must have the dtype of x ({x.dtype}), got {value.dtype}; cast it first")
    if value.device != x.device:
        raise ValueError(f"{op}: {name} is on {value.device} but x is on {x.device}")
    return value


def vector(op: str, name: str, value, device: torch.device, length: int | None = None, *, kind="float"):
    """A 1-D tensor of `kind` on `device`, of `length` elements (any non-zero length when None)."""
    tensor(op, name, value, kind=kind)
    if value.dim() != 1 or (length is not None and value.shape[0] != length) or value.shape[0] == 0:
        expected = f"[{length}]" if length is not None else "a non-empty 1-D shape"
        raise ValueError(f"{op}: {name} must have shape {expected}, got {tuple(value.shape)}")
    if value.device != device:
        raise ValueError(f"{op}: {name} is on {value.device} but x is on {device}")
    return value


def scalar(op: str, name: str, value, *, low: float | None = None, low_open: bool = False) -> float:
    """A finite Python number, ≥ low (> low when low_open)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{op}: {name} must be a Python float, got {type(value).__name__}")
    value = float(value)
    bad_low = low is not None and (value <= low if low_open else value < low)
    if not math.isfinite(value) or bad_low:
        bound = "" if low is None else f" and {'>' if low_open else '>='} {low}"
        raise ValueError(f"{op}: {name} must be finite{bound}, got {value}")
    return value


def counter_int(op: str, name: str, value) -> int:
    """A Philox counter word (step): a Python int in [0, 2**32)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{op}: {name} must be a Python int, got {type(value).__name__}")
    if not 0 <= value < _UINT32:
        raise ValueError(f"{op}: {name} must be in [0, 2**32), got {value}")
    return value


def step_words(op: str, value, x: torch.Tensor):
    """`step` of the step ops as (int step, steps tensor or None, value conditions): an int in [0, 2**32) for
    every sample, or an integer [B] tensor of per-sample words (then step = 0 and the op takes `steps`)."""
    if not isinstance(value, torch.Tensor):
        return counter_int(op, "step", value), None, []
    vector(op, "step", value, x.device, x.shape[0], kind="int")
    return 0, value, [("step must be in [0, 2**32)", (value >= 0) & (value < _UINT32))]


def seed(op: str, value, needed: bool) -> int:
    """The Philox key as a signed int64 (the schema's int); values in [2**63, 2**64) wrap to their bit pattern."""
    if value is None:
        if needed:
            raise ValueError(f"{op}: seed is required when noise is None (the op draws its own Philox noise)")
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{op}: seed must be a Python int, got {type(value).__name__}")
    if not _INT64_MIN <= value < _UINT64_END:
        raise ValueError(f"{op}: seed must be in [-2**63, 2**64), got {value}")
    return value - _UINT64_END if value >= 2**63 else value


def sample_ids(op: str, value, x: torch.Tensor):
    """None or an integer [B] tensor on x's device (ids are taken mod 2**32)."""
    return None if value is None else vector(op, "sample_ids", value, x.device, x.shape[0], kind="int")


def values(op: str, conditions: list[tuple[str, torch.Tensor]]) -> None:
    """Raise ValueError with the message of the first condition that is not all true. One read-back per call."""
    if not CHECK_VALUES or torch.compiler.is_compiling():
        return
    flags = torch.stack([cond.all() for _, cond in conditions]).tolist()
    for (message, _), ok in zip(conditions, flags):
        if not ok:
            raise ValueError(f"{op}: {message}")


def finite_in(value: torch.Tensor, low: float, high: float, *, low_open: bool = False) -> torch.Tensor:
    """Element-wise: finite and in [low, high] ((low, high] when low_open)."""
    above = value > low if low_open else value >= low
    return torch.isfinite(value) & above & (value <= high)
