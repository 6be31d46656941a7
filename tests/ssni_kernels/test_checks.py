"""Value conditions of the public ops (ssni_kernels._checks.Range / values): ends, NaN, Inf, integer extremes."""

import math

import pytest
import torch

from ssni_kernels import _checks


@pytest.mark.parametrize(
    ("values", "kwargs", "holds"),
    [
        ([0.0, 1.0], dict(low=0.0, high=1.0), True),
        ([0.0, 1.0], dict(low=0.0, high=1.0, low_open=True), False),
        ([0.5, 1.0], dict(low=0.0, high=1.0, high_open=True), False),
        ([0.5, float("nan")], dict(low=0.0, high=1.0), False),
        ([0.5, float("inf")], dict(low=0.0), False),  # "finite and >= 0": Inf is refused even with no upper end
        ([-float("inf"), 0.5], dict(), False),
        ([-3.0, 7.0], dict(), True),
    ],
)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_float_ranges(values, kwargs, holds, dtype):
    condition = _checks.Range("v must hold", torch.tensor(values, dtype=dtype), **kwargs)
    if holds:
        _checks.values("op", [condition])
    else:
        with pytest.raises(ValueError, match="op: v must hold"):
            _checks.values("op", [condition])


def test_integer_extremes_are_exact():
    """2**63 − 1 and 2**32 are read as Python ints on the CPU: no rounding moves them across a bound."""
    ok = _checks.Range("w in [0, 2**32)", torch.tensor([0, 2**32 - 1]), 0, 2**32, high_open=True)
    _checks.values("op", [ok])
    with pytest.raises(ValueError, match="w in"):
        _checks.values("op", [_checks.Range("w in [0, 2**32)", torch.tensor([2**32]), 0, 2**32, high_open=True)])
    big = _checks.Range("t < 2**63 - 1", torch.tensor([2**63 - 1]), 0, 2**63 - 1, high_open=True)
    with pytest.raises(ValueError, match="t < "):
        _checks.values("op", [big])


def test_first_failing_condition_is_reported_and_empty_tensors_pass():
    good = _checks.Range("a ok", torch.tensor([0.5]), 0.0, 1.0)
    bad1 = _checks.Range("b bad", torch.tensor([2.0]), 0.0, 1.0)
    bad2 = _checks.Range("c bad", torch.tensor([math.nan]), 0.0, 1.0)
    with pytest.raises(ValueError, match="op: b bad"):
        _checks.values("op", [good, bad1, bad2])
    _checks.values("op", [_checks.Range("empty", torch.empty(0), 0.0, 1.0)])
