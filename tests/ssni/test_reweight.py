"""§4 reweighting against float64 formulas, with round-half-to-even, multi-stage and bad inputs."""

from __future__ import annotations

import math

import pytest
import torch

from ssni.reweight import linear_t, sigmoid_t


def _round_half_even(v: float) -> int:
    return round(v)  # Python's round is half to even, like torch.round


def test_sigmoid_t_matches_formula():
    e = torch.tensor([0.0, 9.5, 10.0, 10.3, 12.0, 40.0], dtype=torch.float64)
    mu, tau, t_star, b = 10.0, 0.7, 100, 5
    t = sigmoid_t(e, mu, tau, t_star, b)
    assert t.dtype == torch.int64
    expected = [_round_half_even((1 / (1 + math.exp(-(v - mu) / tau))) * (t_star - 1 + b)) for v in e.tolist()]
    assert t.tolist() == expected
    assert t.min() >= 0 and t.max() <= t_star - 1 + b
    assert sigmoid_t(torch.tensor([10.0]), 10.0, 1.0, 100, 5).item() == 52  # 0.5·104


def test_round_half_to_even():
    # sigmoid(0)·(T + b) = 0.5·(T + b): t* = 2, b = 0 → 0.5 → 0; t* = 4, b = 0 → 1.5 → 2.
    assert sigmoid_t(torch.tensor([3.0]), 3.0, 1.0, 2, 0).item() == 0
    assert sigmoid_t(torch.tensor([3.0]), 3.0, 1.0, 4, 0).item() == 2
    # linear: ratio 0.5·T + b with T = 5 → 2.5 + 0 → 2 ; T = 7 → 3.5 → 4
    assert linear_t(torch.tensor([1.0]), 0.0, 2.0, 6, 0).item() == 2
    assert linear_t(torch.tensor([1.0]), 0.0, 2.0, 8, 0).item() == 4


def test_linear_t_matches_formula_and_range():
    e = torch.tensor([1.0, 1.7, 2.2, 5.0], dtype=torch.float32)
    t = linear_t(e, 1.0, 5.0, 100, 5)
    expected = [_round_half_even((v - 1.0) / 4.0 * 99 + 5) for v in e.to(torch.float64).tolist()]
    assert t.tolist() == expected
    assert t[0] == 5 and t[-1] == 104
    assert linear_t(torch.tensor([0.0, 9.0]), 1.0, 5.0, 100, 5).tolist() == [5, 104]  # clamped outside


def test_multi_stage_same_ratio():
    e = torch.tensor([0.3, 1.1, 2.0])
    t = sigmoid_t(e, 1.0, 0.5, (30, 50, 125), 5)
    assert t.shape == (3, 3)
    for j, s in enumerate((30, 50, 125)):
        assert torch.equal(t[:, j], sigmoid_t(e, 1.0, 0.5, s, 5))
    tl = linear_t(e, 0.0, 2.0, [36, 36], 5)
    assert tl.shape == (3, 2) and torch.equal(tl[:, 0], tl[:, 1])


def test_bad_inputs():
    e = torch.tensor([1.0])
    with pytest.raises(ValueError, match="tau"):
        sigmoid_t(e, 0.0, 0.0, 100)
    with pytest.raises(ValueError, match="t_star"):
        sigmoid_t(e, 0.0, 1.0, 0)
    with pytest.raises(ValueError, match="bias"):
        sigmoid_t(e, 0.0, 1.0, 100, bias=-1)
    with pytest.raises(ValueError, match="e_max"):
        linear_t(e, 2.0, 2.0, 100)
    with pytest.raises(ValueError, match="NaN"):
        sigmoid_t(torch.tensor([float("nan")]), 0.0, 1.0, 100)
    with pytest.raises(ValueError, match="e must be"):
        sigmoid_t(torch.ones(2, 2), 0.0, 1.0, 100)
