"""Triton reverse_step and vp_sde_step against the reference (`ssni_kernels.reference`)."""

from __future__ import annotations

import pytest
import torch
from triton_device import DEVICE, DTYPE_CASES, use_small_tiles  # (sets up the interpreter first)

from ssni_kernels import reference
from ssni_kernels.triton import steps

pytestmark = pytest.mark.triton

TOL = {
    torch.float32: dict(atol=3e-6, rtol=1e-5),
    torch.float64: dict(atol=3e-6, rtol=1e-5),
    torch.float16: dict(atol=2e-3, rtol=2e-3),
    torch.bfloat16: dict(atol=1.6e-2, rtol=1.6e-2),  # interpreter truncates to bfloat16, a GPU rounds
}


def _inputs(dtype, batch=5, shape=(3, 5, 7)):
    g = torch.Generator().manual_seed(1)
    x, eps_hat, z = (torch.randn(batch, *shape, generator=g, dtype=torch.float64).to(dtype).to(DEVICE) for _ in "xez")
    return x, eps_hat, z


# (a, a_next) per sample: an ordinary step, the last step (a_next = 1), a repeated index, and two more.
A = torch.tensor([0.5, 0.9, 0.3, 0.02, 0.2])
A_NEXT = torch.tensor([0.6, 1.0, 0.3, 0.05, 0.4])
ACTIVE = torch.tensor([True, True, True, True, False])


@pytest.mark.parametrize(("dtype", "small_tiles"), DTYPE_CASES)
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(eta=1.0, seed=11, sample_ids=torch.tensor([3, 1, 4, 1, 5]), step=4, active=ACTIVE),
        dict(eta=0.0),
        dict(eta=0.5, noise="z"),
        dict(eta=1.0, seed=2**40 + 3, step=7),
    ],
    ids=["ddpm-ids-active", "ddim", "given-noise", "ddpm-default-ids"],
)
def test_reverse_step_matches_reference(dtype, small_tiles, kwargs, monkeypatch):
    if small_tiles:
        use_small_tiles(monkeypatch)
    x, eps_hat, z = _inputs(dtype)
    kwargs = {k: (z if v == "z" else v.to(DEVICE) if isinstance(v, torch.Tensor) else v) for k, v in kwargs.items()}
    a, a_next = A.to(DEVICE), A_NEXT.to(DEVICE)
    out = steps.reverse_step(x, eps_hat, a, a_next, **kwargs)
    expected = reference.reverse_step(x, eps_hat, a, a_next, **kwargs)
    assert out.dtype == dtype
    torch.testing.assert_close(out, expected, **TOL[dtype])
    # Repeated index (sample 2) and inactive samples pass through bit-exactly.
    torch.testing.assert_close(out[2], x[2], atol=0, rtol=0)
    if "active" in kwargs:
        torch.testing.assert_close(out[4], x[4], atol=0, rtol=0)


@pytest.mark.parametrize(("dtype", "small_tiles"), DTYPE_CASES)
@pytest.mark.parametrize("given_noise", [False, True])
def test_vp_sde_step_matches_reference(dtype, small_tiles, given_noise, monkeypatch):
    if small_tiles:
        use_small_tiles(monkeypatch)
    x, eps_hat, z = _inputs(dtype)
    t = torch.tensor([0.5, 0.01, 1.0, 0.3, 0.7], device=DEVICE)
    kwargs = dict(noise=z) if given_noise else dict(seed=5, sample_ids=torch.tensor([9, 8, 7, 6, 5], device=DEVICE))
    out = steps.vp_sde_step(x, eps_hat, t, 1e-3, active=ACTIVE.to(DEVICE), step=3, **kwargs)
    expected = reference.vp_sde_step(x, eps_hat, t, 1e-3, active=ACTIVE.to(DEVICE), step=3, **kwargs)
    torch.testing.assert_close(out, expected, **TOL[dtype])
    torch.testing.assert_close(out[4], x[4], atol=0, rtol=0)


def test_vp_sde_step_custom_schedule_and_out_buffer():
    x, eps_hat, _ = _inputs(torch.float32)
    t = torch.full((5,), 0.25, device=DEVICE)
    buffer = torch.empty_like(x)
    out = steps.vp_sde_step(x, eps_hat, t, 0.02, seed=1, beta_min=0.05, beta_max=10.0, out=buffer)
    assert out.data_ptr() == buffer.data_ptr()
    expected = reference.vp_sde_step(x, eps_hat, t, 0.02, seed=1, beta_min=0.05, beta_max=10.0)
    torch.testing.assert_close(out, expected, **TOL[torch.float32])


def test_steps_need_noise_or_seed_unless_deterministic():
    x, eps_hat, _ = _inputs(torch.float32)
    a, a_next = A.to(DEVICE), A_NEXT.to(DEVICE)
    with pytest.raises(ValueError, match="noise or seed"):
        steps.reverse_step(x, eps_hat, a, a_next, eta=1.0)
    with pytest.raises(ValueError, match="noise or seed"):
        steps.vp_sde_step(x, eps_hat, a, 0.1)
    steps.reverse_step(x, eps_hat, a, a_next, eta=0.0)  # DDIM draws nothing


@pytest.mark.parametrize("op", ["reverse_step", "vp_sde_step"])
def test_step_word_per_sample(op):
    """steps [B]: row b draws the noise of a launch with step = steps[b] (the streaming engine's one call)."""
    x, eps_hat, _ = _inputs(torch.float32)
    words = torch.tensor([4, 0, 2**32 - 1, 4, 77], device=DEVICE)
    ids = torch.tensor([3, 1, 4, 1, 5], device=DEVICE)
    if op == "reverse_step":
        fn, args, extra = (
            steps.reverse_step,
            (x, eps_hat, A.to(DEVICE), torch.full((5,), 0.95, device=DEVICE)),
            {"eta": 1.0},
        )
        ref = reference.reverse_step
    else:
        t = torch.tensor([0.5, 0.01, 1.0, 0.3, 0.7], device=DEVICE)
        fn, args, extra, ref = steps.vp_sde_step, (x, eps_hat, t, 1e-3), {}, reference.vp_sde_step
    out = fn(*args, seed=9, sample_ids=ids, steps=words, **extra)
    rows = torch.stack(
        [fn(*args, seed=9, sample_ids=ids, step=int(w), **extra)[b] for b, w in enumerate(words.tolist())]
    )
    torch.testing.assert_close(out, rows, atol=0, rtol=0)
    torch.testing.assert_close(out, ref(*args, seed=9, sample_ids=ids, step=words, **extra), **TOL[torch.float32])
