"""Schedules against float64 formulas; step_sequence and effective_indices edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ssni.schedules import (
    alphas_cumprod_padded,
    ddpm_alphas_cumprod,
    effective_indices,
    eps_levels,
    posterior_variance,
    step_sequence,
    vp_log_mean_coef,
    vp_mean_coef,
    vp_sigma,
)


def test_ddpm_alphas_cumprod_matches_numpy_float64():
    betas = np.linspace(1e-4, 2e-2, 1000, dtype=np.float64)
    expected = np.cumprod(1 - betas)
    ac = ddpm_alphas_cumprod()
    assert ac.dtype == torch.float64 and ac.shape == (1000,)
    np.testing.assert_allclose(ac.numpy(), expected, rtol=1e-13)
    padded = alphas_cumprod_padded(ac)
    assert padded[0] == 1.0 and torch.equal(padded[1:], ac)


def test_vp_sde_formulas_and_eps_levels():
    for t in (1e-3, 0.02, 0.1, 0.5, 1.0):
        log_m = -0.25 * t**2 * (20 - 0.1) - 0.5 * t * 0.1
        assert vp_mean_coef(t) == pytest.approx(math.exp(log_m), rel=1e-14)
        assert vp_sigma(t) == pytest.approx(math.sqrt(1 - math.exp(2 * log_m)), rel=1e-12)
    t, m, s = eps_levels(20)
    assert torch.allclose(t, torch.arange(1, 21, dtype=torch.float64) / 1000)
    assert s[0].item() == pytest.approx(0.0105, abs=1e-4)  # the spec's σ(0.001) ≈ 0.0105
    assert torch.allclose(m**2 + s**2, torch.ones(20, dtype=torch.float64))
    with pytest.raises(ValueError, match="num_levels"):
        eps_levels(0)


def test_posterior_variance_is_beta_tilde():
    ac = ddpm_alphas_cumprod()
    betas = torch.linspace(1e-4, 2e-2, 1000, dtype=torch.float64)
    i = torch.tensor([1, 50, 999])
    expected = betas[i] * (1 - ac[i - 1]) / (1 - ac[i])
    assert torch.allclose(posterior_variance(ac[i], ac[i - 1], 1.0), expected, rtol=1e-10)
    assert torch.equal(posterior_variance(ac[i], ac[i - 1], 0.0), torch.zeros(3, dtype=torch.float64))


def _spec_sequence(t: int, n: int) -> list[int]:
    return [max(math.ceil(k * t / n) - 1, 0) for k in range(1, n + 1)]


@pytest.mark.parametrize(
    ("t", "n"), [(0, 1), (0, 5), (1, 1), (1, 7), (7, 1), (5, 5), (5, 9), (100, 20), (104, 105), (37, 3)]
)
def test_step_sequence_matches_spec(t, n):
    seq = step_sequence(t, n)
    assert seq == _spec_sequence(t, n)
    assert len(seq) == n and seq[-1] == max(t - 1, 0)
    assert seq == sorted(seq)
    tensor = step_sequence(torch.tensor([t, t + 3]), n)
    assert tensor.tolist() == [_spec_sequence(t, n), _spec_sequence(t + 3, n)]


def test_step_sequence_edge_cases():
    assert step_sequence(0, 4) == step_sequence(1, 4) == [0, 0, 0, 0]
    assert step_sequence(3, 1) == [2]
    assert step_sequence(3, 6) == [0, 0, 1, 1, 2, 2]  # n > t: repeats (no-op steps)
    assert step_sequence(100, 100) == list(range(100))
    with pytest.raises(ValueError, match="n"):
        step_sequence(5, 0)
    with pytest.raises(ValueError, match="t"):
        step_sequence(-1, 3)
    with pytest.raises(TypeError, match="int64"):
        step_sequence(torch.tensor([1.0]), 3)


@pytest.mark.parametrize("n", [None, 1, 3, 8, 200])
def test_effective_indices_are_the_distinct_steps(n):
    t = torch.tensor([0, 1, 2, 5, 8, 13, 100])
    idx, lengths = effective_indices(t, n)
    for b, tb in enumerate(t.tolist()):
        seq = _spec_sequence(tb, n if n is not None else max(tb, 1))
        distinct = sorted(set(seq))
        assert lengths[b] == len(distinct) == min(n or 10**9, max(tb, 1))
        assert idx[b, : lengths[b]].tolist() == distinct


def test_numeric_conventions_stay_within_the_documented_distance_of_the_reference():
    """ssni keeps float64 ᾱ and σ(t) = sqrt(−expm1(2·log m)) (docs/fidelity.md, F14); the reference computes
    ᾱ as a float32 cumprod (robust_eval_model.py) and σ as float32 sqrt(1 − exp(2·log m)) (score_sde's VPSDE):
    2.7e-7 and 1.2e-4 relative at most."""
    betas32 = torch.from_numpy(np.linspace(1e-4, 2e-2, 1000, dtype=np.float64)).float()
    ours = ddpm_alphas_cumprod()
    reference = (1 - betas32).cumprod(0).double()
    assert float(((reference - ours) / ours).abs().max()) < 3e-7
    t, _, sigma = eps_levels(50)
    log_m = vp_log_mean_coef(t.float())
    reference_sigma = torch.sqrt(1.0 - torch.exp(2.0 * log_m)).double()
    rel = ((reference_sigma - sigma) / sigma).abs()
    assert 5e-5 < float(rel[0]) < 2e-4 and float(rel.max()) == float(rel[0])  # worst at the smallest level
    exact = torch.sqrt(-torch.expm1(2 * vp_log_mean_coef(t)))
    torch.testing.assert_close(sigma, exact, rtol=1e-15, atol=0)
