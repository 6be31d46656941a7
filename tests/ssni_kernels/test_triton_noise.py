"""Triton noise_inject / noise_inject_levels against the reference (`ssni_kernels.reference`)."""

from __future__ import annotations

import pytest
import torch
from triton_device import DEVICE, DTYPE_CASES, DTYPES, use_small_tiles  # (sets up the interpreter first)

from ssni_kernels import reference
from ssni_kernels.triton import noise

pytestmark = pytest.mark.triton

# Generated noise is float32 Box-Muller here and float64-then-rounded in the reference: a few float32 ulps.
TOL = {
    torch.float32: dict(atol=3e-6, rtol=1e-5),
    torch.float64: dict(atol=3e-6, rtol=1e-5),
    torch.float16: dict(atol=2e-3, rtol=2e-3),
    # The interpreter rounds float32 → bfloat16 by truncation, a GPU to nearest: allow one bfloat16 ulp.
    torch.bfloat16: dict(atol=1.6e-2, rtol=1.6e-2),
}


def _inputs(dtype, batch=4, shape=(3, 5, 7)):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *shape, generator=g, dtype=torch.float64).to(dtype).to(DEVICE)
    alphas_cumprod = torch.linspace(0.9999, 0.005, 1000, dtype=torch.float64).cumprod(0).clamp_min(1e-4)
    return x, torch.tensor([0, 999, 500, 3], device=DEVICE)[:batch], alphas_cumprod.float().to(DEVICE)


@pytest.mark.parametrize(("dtype", "small_tiles"), DTYPE_CASES)
def test_noise_inject_generated_noise_matches_reference(dtype, small_tiles, monkeypatch):
    if small_tiles:
        use_small_tiles(monkeypatch)
    x, t, acp = _inputs(dtype)
    ids = torch.tensor([7, 0, 2**40 + 1, -3], device=DEVICE)
    out = noise.noise_inject(x, t, acp, seed=2**33 + 5, sample_ids=ids, step=9)
    expected = reference.noise_inject(x, t, acp, seed=2**33 + 5, sample_ids=ids, step=9)
    assert out.dtype == dtype and out.shape == x.shape
    torch.testing.assert_close(out, expected, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_noise_inject_given_noise_matches_reference(dtype):
    x, t, acp = _inputs(dtype)
    eps = torch.randn_like(x.double()).to(dtype)
    out = noise.noise_inject(x, t, acp, noise=eps)
    torch.testing.assert_close(out, reference.noise_inject(x, t, acp, noise=eps), **TOL[dtype])


def test_noise_inject_default_ids_are_batch_rows_and_batch_invariant():
    x, t, acp = _inputs(torch.float32)
    full = noise.noise_inject(x, t, acp, seed=1)
    torch.testing.assert_close(full, noise.noise_inject(x, t, acp, seed=1, sample_ids=torch.arange(4, device=DEVICE)))
    # Sample 2 alone, with its id, gets exactly the noise it got in the batch.
    alone = noise.noise_inject(x[2:3], t[2:3], acp, seed=1, sample_ids=torch.tensor([2], device=DEVICE))
    torch.testing.assert_close(alone[0], full[2], atol=0, rtol=0)


def test_noise_inject_non_contiguous_input_and_out_buffer():
    x, t, acp = _inputs(torch.float32, shape=(5, 7, 3))
    x_nc = x.permute(0, 3, 1, 2)  # [B, 3, 5, 7], channels-last strides
    buffer = torch.full(x_nc.shape, float("nan"), device=DEVICE)
    out = noise.noise_inject(x_nc, t, acp, seed=4, out=buffer)
    assert out.data_ptr() == buffer.data_ptr()
    torch.testing.assert_close(out, reference.noise_inject(x_nc.contiguous(), t, acp, seed=4), **TOL[torch.float32])
    with pytest.raises(ValueError, match="out must be"):
        noise.noise_inject(x, t, acp, seed=4, out=buffer[:2])


def test_noise_inject_needs_noise_or_seed():
    x, t, acp = _inputs(torch.float32)
    with pytest.raises(ValueError, match="noise or seed"):
        noise.noise_inject(x, t, acp)


@pytest.mark.parametrize(("dtype", "small_tiles"), DTYPE_CASES)
def test_noise_inject_levels_matches_reference(dtype, small_tiles, monkeypatch):
    if small_tiles:
        use_small_tiles(monkeypatch)
    x, _, _ = _inputs(dtype, batch=3)
    mean_coef = torch.tensor([0.99, 0.7, 0.2], device=DEVICE)
    std = (1 - mean_coef**2).sqrt()
    ids = torch.tensor([11, 12, 13], device=DEVICE)
    out = noise.noise_inject_levels(x, mean_coef, std, seed=77, sample_ids=ids)
    expected = reference.noise_inject_levels(x, mean_coef, std, seed=77, sample_ids=ids)
    assert out.shape == (9, *x.shape[1:]) and out.dtype == dtype
    torch.testing.assert_close(out, expected, **TOL[dtype])
    eps = torch.randn(9, *x.shape[1:], dtype=torch.float64, device=DEVICE).to(dtype)
    torch.testing.assert_close(
        noise.noise_inject_levels(x, mean_coef, std, noise=eps),
        reference.noise_inject_levels(x, mean_coef, std, noise=eps),
        **TOL[dtype],
    )
