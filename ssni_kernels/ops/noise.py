"""Noise family: noise_inject, noise_inject_levels and the philox_bits debug op (kernels: triton/noise.py,
triton/philox.py, csrc/cpu/noise.cpp).

Each op reads top to bottom: public wrapper (validation, then ``torch.ops.ssni.<op>``), fake kernel, autograd,
reference adapter (the fallback of a device without a kernel). The schemas are in ``ssni_kernels._library``.
"""

from __future__ import annotations

import torch

from ssni_kernels import _checks, _library, reference
from ssni_kernels.ops._grad import float64, require_constant, scale_rows
from ssni_kernels.reference import compute_dtype

_UINT32 = 2**32


# ---------------------------------------------------------------------------------------------------------
# noise_inject
# ---------------------------------------------------------------------------------------------------------
def noise_inject(x, t, alphas_cumprod, *, noise=None, seed=None, sample_ids=None, step=0):
    """Forward diffusion with a timestep per sample: sqrt(ᾱ[t_b])·x_b + sqrt(1 − ᾱ[t_b])·ε_b.

    x: [B, ...] float16/bfloat16/float32/float64; t: [B] integer indices into alphas_cumprod ([T] float), any
    integer dtype, or one int for every sample; noise: like x, or None to draw ε from the Philox stream (seed,
    sample_ids, step). Returns x's dtype. Differentiable w.r.t. x and noise.
    """
    op = "noise_inject"
    _checks.batch(op, "x", x)
    t = _checks.per_sample(op, "t", t, x, kind="int")
    _checks.vector(op, "alphas_cumprod", alphas_cumprod, x.device)
    if noise is not None:
        _checks.like(op, "noise", noise, x)
    seed = _checks.seed(op, seed, needed=noise is None)
    sample_ids = _checks.sample_ids(op, sample_ids, x)
    _checks.counter_int(op, "step", step)
    T = alphas_cumprod.shape[0]
    _checks.values(
        op,
        [
            _checks.Range(f"t must be in [0, {T}) (T = len(alphas_cumprod))", t, 0, T, high_open=True),
            _checks.Range("alphas_cumprod must be finite and in [0, 1]", alphas_cumprod, 0.0, 1.0),
        ],
    )
    return torch.ops.ssni.noise_inject(x, t, alphas_cumprod, noise, seed, sample_ids, step)


@torch.library.register_fake("ssni::noise_inject")
def _(x, t, alphas_cumprod, noise=None, seed=0, sample_ids=None, step=0):
    return x.new_empty(x.shape)


def _noise_inject_setup(ctx, inputs, output):
    x, t, alphas_cumprod, noise = inputs[:4]
    require_constant("noise_inject", alphas_cumprod=alphas_cumprod)
    a = float64(alphas_cumprod[t])
    ctx.coef_x, ctx.coef_noise = a.sqrt(), (1 - a).sqrt()
    ctx.noise_given = noise is not None


def _noise_inject_backward(ctx, grad):
    grad_noise = scale_rows(grad, ctx.coef_noise) if ctx.noise_given else None
    return scale_rows(grad, ctx.coef_x), None, None, grad_noise, None, None, None


torch.library.register_autograd("ssni::noise_inject", _noise_inject_backward, setup_context=_noise_inject_setup)


@_library.fallback("noise_inject")
def _noise_inject_reference(x, t, alphas_cumprod, noise=None, seed=0, sample_ids=None, step=0):
    # Outputs fresh and contiguous, like the real kernels, so that fake and real layouts agree.
    out = reference.noise_inject(x, t, alphas_cumprod, noise=noise, seed=seed, sample_ids=sample_ids, step=step)
    return out.contiguous()


# ---------------------------------------------------------------------------------------------------------
# noise_inject_levels
# ---------------------------------------------------------------------------------------------------------
def noise_inject_levels(x, mean_coef, std, *, noise=None, seed=None, sample_ids=None):
    """K noise levels of one batch, level-major: out[k·B + b] = mean_coef[k]·x_b + std[k]·ε_{k,b}.

    x: [B, ...]; mean_coef, std: [K]; noise: [K·B, ...] or None (level k draws with step = k). Returns
    [K·B, ...] in x's dtype without materialising K copies of x. Differentiable w.r.t. x and noise.
    """
    op = "noise_inject_levels"
    _checks.batch(op, "x", x)
    _checks.vector(op, "mean_coef", mean_coef, x.device)
    K = mean_coef.shape[0]
    _checks.vector(op, "std", std, x.device, K)
    if noise is not None:
        _checks.like(op, "noise", noise, x, shape=(K * x.shape[0], *x.shape[1:]))
    seed = _checks.seed(op, seed, needed=noise is None)
    sample_ids = _checks.sample_ids(op, sample_ids, x)
    _checks.values(
        op,
        [
            _checks.Range("mean_coef must be finite", mean_coef),
            _checks.Range("std must be finite and >= 0", std, 0.0),
        ],
    )
    return torch.ops.ssni.noise_inject_levels(x, mean_coef, std, noise, seed, sample_ids)


@torch.library.register_fake("ssni::noise_inject_levels")
def _(x, mean_coef, std, noise=None, seed=0, sample_ids=None):
    return x.new_empty((mean_coef.shape[0] * x.shape[0], *x.shape[1:]))


def _noise_inject_levels_setup(ctx, inputs, output):
    x, mean_coef, std, noise = inputs[:4]
    require_constant("noise_inject_levels", mean_coef=mean_coef, std=std)
    ctx.mean_coef, ctx.std = float64(mean_coef), float64(std)
    ctx.noise_given = noise is not None


def _noise_inject_levels_backward(ctx, grad):
    K = ctx.mean_coef.shape[0]
    B = grad.shape[0] // K
    per_level = grad.reshape(K, B, *grad.shape[1:])
    grad_x = scale_rows(per_level, ctx.mean_coef).to(compute_dtype(grad.dtype)).sum(0).to(grad.dtype)
    grad_noise = scale_rows(per_level, ctx.std).reshape(grad.shape) if ctx.noise_given else None
    return grad_x, None, None, grad_noise, None, None


torch.library.register_autograd(
    "ssni::noise_inject_levels", _noise_inject_levels_backward, setup_context=_noise_inject_levels_setup
)


@_library.fallback("noise_inject_levels")
def _noise_inject_levels_reference(x, mean_coef, std, noise=None, seed=0, sample_ids=None):
    return reference.noise_inject_levels(x, mean_coef, std, noise=noise, seed=seed, sample_ids=sample_ids).contiguous()


# ---------------------------------------------------------------------------------------------------------
# philox_bits (debug/test op: the raw words behind every op's generated noise)
# ---------------------------------------------------------------------------------------------------------
def philox_bits(counters, seed):
    """Raw Philox4x32-10 words: out[n] = philox4x32_10(counters[n], key = (seed lo, seed hi)) (`philox.py`).

    counters: [N, 4] tensor of any integer dtype holding uint32 words; seed: an integer in [-2**63, 2**64).
    Returns [N, 4] int64 holding the uint32 output words.
    """
    op = "philox_bits"
    _checks.tensor(op, "counters", counters, kind="int")
    if counters.dim() != 2 or counters.shape[1] != 4:
        raise ValueError(f"{op}: counters must have shape [N, 4], got {tuple(counters.shape)}")
    counters = counters.to(torch.int64)
    seed = _checks.seed_word(op, seed)
    _checks.values(
        op, [_checks.Range("counters must hold uint32 words in [0, 2**32)", counters, 0, _UINT32, high_open=True)]
    )
    return torch.ops.ssni.philox_bits(counters, seed)


@torch.library.register_fake("ssni::philox_bits")
def _(counters, seed):
    return counters.new_empty(counters.shape)


@_library.fallback("philox_bits")
def _philox_bits_reference(counters, seed):
    mask = 0xFFFFFFFF
    words = reference.philox4x32_10(*counters.unbind(1), seed & mask, (seed >> 32) & mask)
    return torch.stack(words, dim=1)
