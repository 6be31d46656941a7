"""Triton score_norm (two-pass deterministic reduction) and its backward against the reference and autograd."""

from __future__ import annotations

import pytest
import torch
from triton_device import DEVICE, DTYPE_CASES, use_small_tiles  # (sets up the interpreter first)

from ssni_kernels import reference
from ssni_kernels.triton import score_norm as sn

pytestmark = pytest.mark.triton


def _inputs(n_levels, batch, dtype, shape=(3, 5, 7)):
    g = torch.Generator().manual_seed(n_levels)
    eps_hat = torch.randn(n_levels * batch, *shape, generator=g, dtype=torch.float64)
    sigma = torch.rand(n_levels, generator=g, dtype=torch.float64) + 0.05
    return eps_hat.to(dtype).to(DEVICE), sigma.to(DEVICE)


@pytest.mark.parametrize(("dtype", "small_tiles"), DTYPE_CASES)
@pytest.mark.parametrize("n_levels", [1, 4])
def test_score_norm_matches_reference(dtype, small_tiles, n_levels, monkeypatch):
    if small_tiles:
        use_small_tiles(monkeypatch)
    eps_hat, sigma = _inputs(n_levels, 3, dtype)
    out = sn.score_norm(eps_hat, sigma)
    expected = reference.score_norm(eps_hat, sigma)
    assert out.shape == (3,) and out.dtype == expected.dtype
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(out, expected, atol=0, rtol=tol)


def test_score_norm_is_deterministic_and_batch_invariant():
    eps_hat, sigma = _inputs(3, 4, torch.float32, shape=(2, 50))
    out = sn.score_norm(eps_hat, sigma)
    torch.testing.assert_close(sn.score_norm(eps_hat, sigma), out, atol=0, rtol=0)
    # Sample 1 on its own: rows 1, 5, 9 of the level-major layout.
    torch.testing.assert_close(sn.score_norm(eps_hat[1::4], sigma)[0], out[1], atol=0, rtol=1e-6)


def test_score_norm_backward_matches_autograd(monkeypatch):
    use_small_tiles(monkeypatch)
    eps_hat, sigma = _inputs(3, 4, torch.float64)
    eps_hat[[2, 6, 10]] = 0.0  # sample 2 has a zero score: zero gradient, as vector_norm's
    leaf = eps_hat.clone().requires_grad_()
    grad = torch.tensor([0.5, -1.0, 2.0, 1.5], dtype=torch.float64, device=DEVICE)
    (expected,) = torch.autograd.grad(reference.score_norm(leaf, sigma), leaf, grad)
    grad_eps = sn.score_norm_backward(grad, eps_hat, sigma, sn.score_norm(eps_hat, sigma))
    torch.testing.assert_close(grad_eps, expected, atol=1e-12, rtol=1e-10)
    assert torch.all(grad_eps[[2, 6, 10]] == 0)


def test_score_norm_backward_half_precision_gradient():
    eps_hat, sigma = _inputs(2, 2, torch.float16)
    grad_eps = sn.score_norm_backward(torch.ones(2, device=DEVICE), eps_hat, sigma, sn.score_norm(eps_hat, sigma))
    leaf = eps_hat.float().requires_grad_()
    (expected,) = torch.autograd.grad(reference.score_norm(leaf, sigma).sum(), leaf)
    assert grad_eps.dtype == torch.float16 and grad_eps.shape == eps_hat.shape
    torch.testing.assert_close(grad_eps.float(), expected, atol=1e-4, rtol=2e-3)
