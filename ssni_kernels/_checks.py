"""Argument validation of the public ops: clear TypeError/ValueError naming the argument, before dispatch.

Two kinds of checks:
- metadata (type, shape, dtype, device): free, always on, also while torch.compile traces;
- values (t in range, finite schedule, σ > 0, ...): declared as `Range`s and checked from each tensor's min and
  max, read back ONCE per call on a GPU (one device synchronisation). They run in eager mode unless
  SSNI_CHECK_VALUES=0, and are skipped while torch.compile traces (the CPU kernels still bounds-check indices
  such as t).
"""

from __future__ import annotations

import math
import numbers
import operator
import os
from dataclasses import dataclass

import torch

CHECK_VALUES = os.environ.get("SSNI_CHECK_VALUES", "1") != "0"
_UINT32 = 2**32
_INT64_MIN, _UINT64_END = -(2**63), 2**64
# kind of a tensor argument → how messages name its dtypes, and the dtype one Python value of it becomes
_KIND_DTYPES = {"float": "floating point", "int": "an integer dtype", "bool": "torch.bool"}
_NUMBER_DTYPES = {"float": torch.float64, "int": torch.int64, "bool": torch.bool}


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
        raise TypeError(f"{op}: {name} must be {_KIND_DTYPES[kind]}, got {value.dtype}")
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
        expected = f"have shape [{length}]" if length is not None else "be a non-empty 1-D tensor"
        raise ValueError(f"{op}: {name} must {expected}, got shape {tuple(value.shape)}")
    if value.device != device:
        raise ValueError(f"{op}: {name} is on {value.device} but x is on {device}")
    return value


def integer(op: str, name: str, value) -> int:
    """A Python integer argument: an int or a NumPy integer (not a bool, not a tensor)."""
    if not isinstance(value, (bool, torch.Tensor)):
        try:
            return operator.index(value)
        except TypeError:
            pass
    raise TypeError(f"{op}: {name} must be a Python int, got {type(value).__name__}")


def real(op: str, name: str, value) -> float:
    """A Python real argument: an int, float or NumPy number (not a bool, not a tensor)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {name} must be a Python float, got {type(value).__name__}")
    return float(value)


def scalar(op: str, name: str, value, *, low: float | None = None, low_open: bool = False) -> float:
    """A finite real number, ≥ low (> low when low_open)."""
    value = real(op, name, value)
    bad_low = low is not None and (value <= low if low_open else value < low)
    if not math.isfinite(value) or bad_low:
        bound = "" if low is None else f" and {'>' if low_open else '>='} {low}"
        raise ValueError(f"{op}: {name} must be finite{bound}, got {value}")
    return value


def counter_int(op: str, name: str, value) -> int:
    """A Philox counter word (step): an integer in [0, 2**32)."""
    value = integer(op, name, value)
    if not 0 <= value < _UINT32:
        raise ValueError(f"{op}: {name} must be in [0, 2**32), got {value}")
    return value


def indices(op: str, name: str, value, device: torch.device, length: int | None = None) -> torch.Tensor:
    """A 1-D tensor of any integer dtype on `device`, returned as int64 so that range checks compare exact values
    (a bound such as 1000 or 2**32 would wrap in a narrower dtype; uint64 values ≥ 2**63 become negative, which
    every range check refuses)."""
    vector(op, name, value, device, length, kind="int")
    return value if value.dtype == torch.int64 else value.to(torch.int64)


def per_sample(op: str, name: str, value, x: torch.Tensor, *, kind: str = "float") -> torch.Tensor:
    """A per-sample [B] argument of `kind` ("float", "int" or "bool") on x's device: a [B] tensor, or one value
    for every sample (a Python number, or a 0-dim tensor on x's device or the CPU). Integers come back as int64
    (see `indices`), Python floats as float64."""
    B = x.shape[0]
    if isinstance(value, torch.Tensor) and value.dim() == 0:
        value = tensor(op, name, value, kind=kind)
        value = (value.to(x.device) if value.device.type == "cpu" else value).expand(B).contiguous()
    elif not isinstance(value, torch.Tensor):
        value = torch.full((B,), _number(op, name, value, kind), dtype=_NUMBER_DTYPES[kind], device=x.device)
    if kind == "int":
        return indices(op, name, value, x.device, B)
    return vector(op, name, value, x.device, B, kind=kind)


def _number(op: str, name: str, value, kind: str):
    """One Python value of `kind` for every sample (ints must fit int64)."""
    readers = {"float": real, "int": integer, "bool": _boolean}
    try:
        number = readers[kind](op, name, value)
    except TypeError:
        raise TypeError(
            f"{op}: {name} must be a [B] tensor of {_KIND_DTYPES[kind]} or one Python {kind} for every sample, "
            f"got {type(value).__name__}"
        ) from None
    if kind == "int" and not _INT64_MIN <= number < 2**63:
        raise ValueError(f"{op}: {name} = {number} is outside the int64 range")
    return number


def _boolean(op: str, name: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{op}: {name} must be a Python bool, got {type(value).__name__}")
    return value


def step_words(op: str, value, x: torch.Tensor):
    """`step` of the step ops as (int step, steps tensor or None, value conditions): an integer in [0, 2**32) for
    every sample, or an integer [B] tensor of per-sample words (then step = 0 and the op takes `steps`, int64)."""
    if not isinstance(value, torch.Tensor):
        try:
            return counter_int(op, "step", value), None, []
        except TypeError:
            raise TypeError(
                f"{op}: step must be a Python int or an integer [B] tensor of step words, got {type(value).__name__}"
            ) from None
    words = per_sample(op, "step", value, x, kind="int")
    return 0, words, [Range("step must be in [0, 2**32)", words, 0, _UINT32, high_open=True)]


def seed(op: str, value, needed: bool) -> int:
    """An optional seed= of an op as the schema's int (`seed_word`); None is 0 unless the op draws noise."""
    if value is None:
        if needed:
            raise ValueError(f"{op}: seed is required when noise is None (the op draws its own Philox noise)")
        return 0
    return seed_word(op, value)


def seed_word(op: str, value) -> int:
    """The Philox key as a signed int64 (the schema's int): an integer in [-2**63, 2**64); values in
    [2**63, 2**64) wrap to their bit pattern."""
    value = integer(op, "seed", value)
    if not _INT64_MIN <= value < _UINT64_END:
        raise ValueError(f"{op}: seed must be in [-2**63, 2**64), got {value}")
    return value - _UINT64_END if value >= 2**63 else value


def sample_ids(op: str, value, x: torch.Tensor):
    """None or an integer [B] tensor on x's device, as int64 (ids are taken mod 2**32)."""
    return None if value is None else indices(op, "sample_ids", value, x.device, x.shape[0])


@dataclass(frozen=True)
class Range:
    """A value condition: every element of `value` is finite and in [low, high], the ends excluded where open (an
    integer tensor is always finite). `message` says what must hold."""

    message: str
    value: torch.Tensor
    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    def holds(self, smallest: float, largest: float) -> bool:
        """Whether the condition holds for a tensor whose extremes are `smallest` and `largest` (NaN when it has a
        NaN: every comparison with NaN is false)."""
        above = smallest > self.low if self.low_open else smallest >= self.low
        below = largest < self.high if self.high_open else largest <= self.high
        return math.isfinite(smallest) and math.isfinite(largest) and above and below


def values(op: str, conditions: list[Range]) -> None:
    """Raise ValueError with the message of the first condition that does not hold.

    Costs one min/max reduction per condition, read on the CPU as it is and on other devices in one read-back per
    call (one device synchronisation); nothing at all while torch.compile traces, for meta tensors (no values; the
    shapes are still checked) or with SSNI_CHECK_VALUES=0."""
    if not CHECK_VALUES or torch.compiler.is_compiling():
        return
    conditions = [c for c in conditions if c.value.numel() > 0]
    if not conditions or conditions[0].value.device.type == "meta":
        return
    extremes = [torch.aminmax(c.value) for c in conditions]
    if conditions[0].value.device.type == "cpu":  # nothing to synchronise: read each extreme as it is
        read = [(smallest.item(), largest.item()) for smallest, largest in extremes]
    else:  # one read-back: every extreme in float64 (exact for the float dtypes; integers beyond 2**53 round,
        # which moves no value across the small bounds checked here)
        flat = torch.cat([torch.stack(pair).to(torch.float64) for pair in extremes]).tolist()
        read = list(zip(flat[::2], flat[1::2]))
    for condition, (smallest, largest) in zip(conditions, read):
        if not condition.holds(smallest, largest):
            raise ValueError(f"{op}: {condition.message}")
