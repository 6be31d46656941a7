"""DiffPure's SDE purifier (§6): the Euler–Maruyama formula, a float64 loop oracle, per-sample t, gradients."""

from __future__ import annotations

import math

import pytest
import torch

import ssni_kernels
from ssni import SDEPurifier
from ssni.purify.base import noise_word
from ssni.schedules import ddpm_alphas_cumprod, vp_beta, vp_sigma
from ssni_kernels.reference import STREAM_NOISE_INJECT, STREAM_VP_SDE_STEP, normal_noise


def test_step_matches_formula():
    g = torch.Generator().manual_seed(0)
    x, eps, z = (torch.randn(3, 1, 4, 4, generator=g, dtype=torch.float64) for _ in range(3))
    t = torch.tensor([0.1, 0.05, 0.001], dtype=torch.float64)
    dt = 1e-3
    out = ssni_kernels.vp_sde_step(x, eps, t, dt, noise=z)
    for b, tb in enumerate(t.tolist()):
        beta, sigma = vp_beta(tb), vp_sigma(tb)
        ref = x[b] + (0.5 * beta * x[b] + beta * (-eps[b] / sigma)) * dt + math.sqrt(beta * dt) * z[b]
        torch.testing.assert_close(out[b], ref, rtol=1e-10, atol=1e-10)


def _oracle(model, x, t, seed, sample_id, label="continuous"):
    ids = torch.tensor([sample_id])
    ac = ddpm_alphas_cumprod()
    xs = (2 * x.to(torch.float64) - 1)[None]
    z = normal_noise(x.shape, seed, ids, noise_word(0), STREAM_NOISE_INJECT).to(torch.float64)
    a = ac[max(t, 1) - 1]
    cur = a.sqrt() * xs + (1 - a).sqrt() * z
    n = max(t, 1)
    for k in range(n):
        tau = n / 1000 - k * 1e-3
        delta = min(1e-3, tau - 1e-5)
        lab = 999 * tau if label == "continuous" else round(1000 * tau)  # the index the grid stands on
        with torch.no_grad():
            eps = model(cur.float(), torch.tensor([lab], dtype=torch.float32)).to(torch.float64)
        beta, sigma = vp_beta(tau), vp_sigma(tau)
        zk = normal_noise(x.shape, seed, ids, noise_word(n - 1 - k), STREAM_VP_SDE_STEP).to(torch.float64)
        cur = cur + (0.5 * beta * cur - beta * eps / sigma) * delta + math.sqrt(beta * delta) * zk
    return ((cur + 1) / 2)[0]


@pytest.mark.parametrize("label", ["continuous", "discrete"])
def test_matches_oracle_with_per_sample_t(tiny_eps, images, label):
    model, x = tiny_eps(), images(batch=3)
    t = torch.tensor([7, 1, 4])
    ids = torch.tensor([3, 8, 1])
    pur = SDEPurifier(model, t_star=7, label=label)
    out = pur.purify(x, t, seed=5, sample_ids=ids)
    assert pur.samples_evaluated == 12 and pur.network_calls == 7
    for b in range(3):
        torch.testing.assert_close(
            out[b].to(torch.float64), _oracle(model, x[b], int(t[b]), 5, int(ids[b]), label), rtol=1e-4, atol=1e-4
        )


def test_batch_invariance_and_gradients(tiny_eps, images):
    model, x = tiny_eps(), images(batch=3)
    t = torch.tensor([5, 2, 6])
    pur = SDEPurifier(model, t_star=6, grad_num_steps=2)
    batch = pur.purify(x, t, seed=1)
    alone = torch.cat([pur.purify(x[i : i + 1], t[i : i + 1], seed=1, sample_ids=torch.tensor([i])) for i in range(3)])
    torch.testing.assert_close(batch, alone, rtol=1e-5, atol=1e-5)
    pur.reset()
    xg = x.clone().requires_grad_(True)
    pur.purify_grad(xg, t, seed=1).sum().backward()
    assert pur.samples_evaluated == 6 and torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0


def test_time_grid_and_bad_inputs(tiny_eps):
    pur = SDEPurifier(tiny_eps(), t_star=100)
    times, steps, lengths = pur.time_grid(torch.tensor([100]), None)
    assert lengths.item() == 100
    assert times[0, -1].item() == pytest.approx(0.1) and times[0, 0].item() == pytest.approx(1e-3)
    assert steps[0, 1:].eq(1e-3).all() and steps[0, 0].item() == pytest.approx(1e-3 - 1e-5)
    times, steps, lengths = pur.time_grid(torch.tensor([100]), 20)
    assert lengths.item() == 20 and steps[0].sum().item() == pytest.approx(0.1 - 1e-5)
    with pytest.raises(ValueError, match="label"):
        SDEPurifier(tiny_eps(), label="other")
    with pytest.raises(ValueError, match="t_star"):
        SDEPurifier(tiny_eps(), t_star=0)
