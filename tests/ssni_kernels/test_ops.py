"""Each public op against the PyTorch reference: all dtypes, given and generated noise, masks, layouts."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from op_cases import DTYPES, assert_close_dtype, batch, ddpm_alphas_cumprod

import ssni_kernels
from ssni_kernels import ops, reference

B, SHAPE = 5, (3, 6, 7)
SEED = 2**35 + 17
IDS = torch.tensor([3, 1, 4, 1_000_000, 2**32 + 9])


def _schedule(dtype=torch.float64):
    ac = ddpm_alphas_cumprod()
    t = torch.tensor([0, 999, 500, 17, 250])
    a, a_next = ac[t], ac[(t - 1).clamp_min(0)]
    a_next[0] = 1.0  # the last step (ᾱ_{-1} = 1)
    a_next[3] = a[3]  # a repeated index: a no-op
    return ac.to(dtype), t, a.to(dtype), a_next.to(dtype)


def _noise_kwargs(given: bool, like: torch.Tensor) -> dict:
    if given:
        return {"noise": batch(like.shape, like.dtype, seed=5)}
    return {"seed": SEED, "sample_ids": IDS[: like.shape[0]]}


def test_compiled_cpu_kernels_are_used():
    if os.environ.get("SSNI_NO_EXTENSION") == "1":
        pytest.skip("SSNI_NO_EXTENSION=1 selects the reference path")
    assert ops.cpu_kernels_compiled(), f"ssni_kernels._C not loaded: {ops.CPU_LIBRARY.reason}"


@pytest.mark.parametrize("given", [True, False], ids=["given", "generated"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_noise_inject(dtype, given):
    ac, t, _, _ = _schedule()
    x = batch((B, *SHAPE), dtype)
    kwargs = _noise_kwargs(given, x)
    out = ssni_kernels.noise_inject(x, t, ac, step=4, **kwargs)
    assert out.dtype == dtype and out.shape == x.shape
    assert_close_dtype(out, reference.noise_inject(x, t, ac, step=4, **kwargs), generated_noise=not given)


@pytest.mark.parametrize("given", [True, False], ids=["given", "generated"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_noise_inject_levels(dtype, given):
    K = 3
    mean_coef = torch.tensor([0.99, 0.9, 0.5], dtype=torch.float64)
    std = (1 - mean_coef**2).sqrt()
    x = batch((B, *SHAPE), dtype)
    kwargs = _noise_kwargs(given, batch((K * B, *SHAPE), dtype))
    if not given:
        kwargs.pop("sample_ids")
        kwargs["sample_ids"] = IDS
    out = ssni_kernels.noise_inject_levels(x, mean_coef, std, **kwargs)
    assert out.shape == (K * B, *SHAPE)
    assert_close_dtype(out, reference.noise_inject_levels(x, mean_coef, std, **kwargs), generated_noise=not given)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_score_norm(dtype):
    K = 4
    sigma = torch.tensor([0.0105, 0.05, 0.2, 0.9], dtype=torch.float64)
    eps_hat = batch((K * B, *SHAPE), dtype)
    out = ssni_kernels.score_norm(eps_hat, sigma)
    expected = reference.score_norm(eps_hat, sigma)
    assert out.dtype == expected.dtype == reference.compute_dtype(dtype) and out.shape == (B,)
    assert_close_dtype(out, expected)


def test_score_norm_long_rows():
    """Rows longer than one 4096-element chunk are reduced across chunks."""
    sigma = torch.tensor([0.1, 0.3])
    eps_hat = batch((2 * 2, 3, 50, 50))
    assert_close_dtype(ssni_kernels.score_norm(eps_hat, sigma), reference.score_norm(eps_hat, sigma))


@pytest.mark.parametrize("eta", [0.0, 1.0, 0.5])
@pytest.mark.parametrize("given", [True, False], ids=["given", "generated"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_reverse_step(dtype, given, eta):
    _, _, a, a_next = _schedule()
    x, eps_hat = batch((B, *SHAPE), dtype, seed=1), batch((B, *SHAPE), dtype, seed=2)
    active = torch.tensor([True, True, False, True, True])
    kwargs = {**_noise_kwargs(given, x), "step": 6, "active": active}
    out = ssni_kernels.reverse_step(x, eps_hat, a, a_next, eta=eta, **kwargs)
    expected = reference.reverse_step(x, eps_hat, a, a_next, eta=eta, **kwargs)
    assert_close_dtype(out, expected, generated_noise=not given)
    assert torch.equal(out[2], x[2]) and torch.equal(out[3], x[3])  # inactive; a == a_next


@pytest.mark.parametrize("given", [True, False], ids=["given", "generated"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_vp_sde_step(dtype, given):
    x, eps_hat = batch((B, *SHAPE), dtype, seed=1), batch((B, *SHAPE), dtype, seed=2)
    t = torch.tensor([0.1, 0.05, 0.001, 1.0, 0.3])
    active = torch.tensor([True, False, True, True, True])
    kwargs = {**_noise_kwargs(given, x), "step": 2, "active": active}
    out = ssni_kernels.vp_sde_step(x, eps_hat, t, 1e-3, **kwargs)
    assert_close_dtype(out, reference.vp_sde_step(x, eps_hat, t, 1e-3, **kwargs), generated_noise=not given)
    assert torch.equal(out[1], x[1])


@pytest.mark.parametrize("op", ["reverse_step", "vp_sde_step"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_step_word_per_sample_equals_one_call_per_sample(op, dtype):
    """step as an int64 [B] tensor: row b draws exactly the noise of a call with step = step[b]."""
    _, _, a, a_next = _schedule()
    x, eps_hat = batch((B, *SHAPE), dtype, seed=1), batch((B, *SHAPE), dtype, seed=2)
    words = torch.tensor([6, 0, 2**32 - 1, 6, 1025])
    if op == "reverse_step":
        a_next = a_next.clone()
        a_next[3] = 0.9999  # every sample moves
        fn, args, extra = ssni_kernels.reverse_step, (x, eps_hat, a, a_next), {"eta": 1.0}
        ref = reference.reverse_step
    else:
        t = torch.tensor([0.1, 0.05, 0.01, 1.0, 0.3])
        fn, args, extra, ref = ssni_kernels.vp_sde_step, (x, eps_hat, t, 1e-3), {}, reference.vp_sde_step
    kwargs = {"seed": SEED, "sample_ids": IDS, **extra}
    out = fn(*args, step=words, **kwargs)
    rows = [fn(*args, step=int(w), **kwargs)[b] for b, w in enumerate(words.tolist())]
    assert torch.equal(out, torch.stack(rows))  # the same kernel, so bit for bit
    assert_close_dtype(out, ref(*args, step=words, **kwargs), generated_noise=True)
    assert not torch.equal(out, fn(*args, step=6, **kwargs))  # the words matter


def test_non_contiguous_inputs():
    ac, t, a, a_next = _schedule(torch.float32)
    base = batch((2 * B, 7, 6, 3))
    x = base[::2].permute(0, 3, 2, 1)  # [B, 3, 6, 7], strided
    eps_hat = batch((B, 3, 7, 6)).transpose(2, 3)
    noise = batch((B, 3, 7, 6), seed=3).transpose(2, 3)
    ids = torch.arange(2 * B)[::2]
    assert not (x.is_contiguous() or eps_hat.is_contiguous() or noise.is_contiguous() or ids.is_contiguous())
    t2, a2, an2 = (torch.stack([v, v], 1)[:, 0] for v in (t, a, a_next))
    cases = [
        (ssni_kernels.noise_inject, reference.noise_inject, (x, t2, ac), {"noise": noise}),
        (ssni_kernels.noise_inject, reference.noise_inject, (x, t2, ac), {"seed": 1, "sample_ids": ids}),
        (ssni_kernels.noise_inject_levels, reference.noise_inject_levels, (x, a[:2], a_next[:2]), {"seed": 1}),
        (ssni_kernels.reverse_step, reference.reverse_step, (x, eps_hat, a2, an2), {"eta": 1.0, "noise": noise}),
        (ssni_kernels.vp_sde_step, reference.vp_sde_step, (x, eps_hat, a2, 1e-3), {"noise": noise}),
        (ssni_kernels.score_norm, reference.score_norm, (eps_hat, a2[:1]), {}),
    ]
    for op, ref, args, kwargs in cases:
        out = op(*args, **kwargs)
        assert out.is_contiguous()
        assert_close_dtype(out, ref(*args, **kwargs), generated_noise="seed" in kwargs)


def test_reference_fallback_without_extension():
    """SSNI_NO_EXTENSION=1: one clear warning at import, then every op still runs (the reference)."""
    script = textwrap.dedent(
        """
        import warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import ssni_kernels
            from ssni_kernels import ops, reference
        import torch
        messages = [str(w.message) for w in caught if "ssni_kernels" in str(w.message)]
        assert len(messages) == 1 and "reference" in messages[0] and "SSNI_NO_EXTENSION" in messages[0], messages
        assert not ops.cpu_kernels_compiled()
        x, ac, t = torch.randn(2, 3, 4), torch.linspace(0.99, 0.1, 10), torch.tensor([0, 9])
        torch.testing.assert_close(
            ssni_kernels.noise_inject(x, t, ac, seed=3), reference.noise_inject(x, t, ac, seed=3), rtol=0, atol=0
        )
        e = torch.randn(4, 3, 4, requires_grad=True)
        ssni_kernels.score_norm(e, torch.tensor([0.1, 0.2])).sum().backward()
        assert e.grad is not None and e.grad.abs().sum() > 0
        assert torch.ops.ssni.philox_bits(torch.zeros(1, 4, dtype=torch.int64), 0)[0, 0].item() == 0x6627E8D5
        print("ok")
        """
    )
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "SSNI_NO_EXTENSION": "1", "PYTHONPATH": str(repo)}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]
