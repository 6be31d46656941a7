"""Triton kernels of the reverse-step family: the generalised DDIM/DDPM step and the reverse VP-SDE
Euler–Maruyama step, with per-sample schedule values. Math: `reference.reverse_step`, `reference.vp_sde_step`.

Grid: (tiles along a sample row, samples). A program whose sample passes through unchanged (active=False, or
a == a_next for the DDIM/DDPM step) copies x and draws no noise.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ssni_kernels.reference import STREAM_REVERSE_STEP, STREAM_VP_SDE_STEP, compute_dtype, vp_beta, vp_sigma
from ssni_kernels.triton import _launch
from ssni_kernels.triton.philox import normal_block, split_seed


@triton.jit
def _step_noise(
    noise_ptr, ids_ptr, steps_ptr, row, offs, mask, b, step, seed_lo, seed_hi, STREAM, HAS_NOISE, HAS_IDS, HAS_STEPS,
    CDT, BLOCK,
):  # fmt: skip
    """This tile's z in CDT: loaded from `noise`, or drawn from the Philox stream of sample id ids[b] (or b) at
    step word steps[b] (or the scalar step)."""
    if HAS_NOISE:
        z = tl.load(noise_ptr + row + offs, mask=mask, other=0.0).to(CDT)
    else:
        if HAS_IDS:
            sid = tl.load(ids_ptr + b)
        else:
            sid = b
        if HAS_STEPS:
            word = tl.load(steps_ptr + b)
        else:
            word = step
        z = normal_block(tl.program_id(0) * BLOCK, word, sid, STREAM, seed_lo, seed_hi, BLOCK)
        z = z.to(noise_ptr.dtype.element_ty).to(CDT)  # z in x's dtype (noise_ptr is x when none is given)
    return z


@triton.jit
def _inactive(active_ptr, b, HAS_ACTIVE: tl.constexpr):
    """Whether sample b has active=False (a runtime scalar; always false without an active mask)."""
    if HAS_ACTIVE:
        inactive = tl.load(active_ptr + b) == 0
    else:
        inactive = b < 0
    return inactive


@triton.jit(do_not_specialize=["seed_lo", "seed_hi", "step"])
def _reverse_step_kernel(
    x_ptr,
    eps_ptr,
    a_ptr,
    a_next_ptr,
    noise_ptr,
    ids_ptr,
    steps_ptr,
    active_ptr,
    out_ptr,
    row_numel,
    eta,
    seed_lo,
    seed_hi,
    step,
    STREAM: tl.constexpr,
    HAS_Z: tl.constexpr,
    HAS_NOISE: tl.constexpr,
    HAS_IDS: tl.constexpr,
    HAS_STEPS: tl.constexpr,
    HAS_ACTIVE: tl.constexpr,
    CDT: tl.constexpr,
    BLOCK: tl.constexpr,
):
    tile, b = tl.program_id(0), tl.program_id(1)
    offs = tile * BLOCK + tl.arange(0, BLOCK)
    mask = offs < row_numel
    row = b.to(tl.int64) * row_numel
    a_raw = tl.load(a_ptr + b)
    a_next_raw = tl.load(a_next_ptr + b)
    x = tl.load(x_ptr + row + offs, mask=mask, other=0.0)
    # The comparison is on the stored values, as the reference's `a == a_next`.
    if (a_raw == a_next_raw) | _inactive(active_ptr, b, HAS_ACTIVE):
        tl.store(out_ptr + row + offs, x, mask=mask)
    else:
        a = a_raw.to(CDT)
        an = a_next_raw.to(CDT)
        xc = x.to(CDT)
        e = tl.load(eps_ptr + row + offs, mask=mask, other=0.0).to(CDT)
        x0 = (xc - tl.sqrt(1.0 - a) * e) / tl.sqrt(a)
        c1 = tl.full([], eta, CDT) * tl.sqrt(tl.maximum((1.0 - a / an) * (1.0 - an) / (1.0 - a), 0.0))
        c2 = tl.sqrt(tl.maximum(1.0 - an - c1 * c1, 0.0))
        out = tl.sqrt(an) * x0 + c2 * e
        if HAS_Z:
            z = _step_noise(
                noise_ptr, ids_ptr, steps_ptr, row, offs, mask, b, step, seed_lo, seed_hi, STREAM, HAS_NOISE, HAS_IDS,
                HAS_STEPS, CDT, BLOCK,
            )  # fmt: skip
            out = out + c1 * z
        tl.store(out_ptr + row + offs, out.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit(do_not_specialize=["seed_lo", "seed_hi", "step"])
def _vp_sde_step_kernel(
    x_ptr,
    eps_ptr,
    coef_ptr,
    noise_ptr,
    ids_ptr,
    steps_ptr,
    active_ptr,
    out_ptr,
    batch,
    row_numel,
    seed_lo,
    seed_hi,
    step,
    STREAM: tl.constexpr,
    HAS_NOISE: tl.constexpr,
    HAS_IDS: tl.constexpr,
    HAS_STEPS: tl.constexpr,
    HAS_ACTIVE: tl.constexpr,
    CDT: tl.constexpr,
    BLOCK: tl.constexpr,
):
    tile, b = tl.program_id(0), tl.program_id(1)
    offs = tile * BLOCK + tl.arange(0, BLOCK)
    mask = offs < row_numel
    row = b.to(tl.int64) * row_numel
    x = tl.load(x_ptr + row + offs, mask=mask, other=0.0)
    if _inactive(active_ptr, b, HAS_ACTIVE):
        tl.store(out_ptr + row + offs, x, mask=mask)
    else:
        # coef rows: ½β(t)dt, β(t)dt/σ(t), sqrt(β(t)dt), computed in float64 by the launcher.
        c_x = tl.load(coef_ptr + b).to(CDT)
        c_eps = tl.load(coef_ptr + batch + b).to(CDT)
        c_z = tl.load(coef_ptr + 2 * batch + b).to(CDT)
        xc = x.to(CDT)
        e = tl.load(eps_ptr + row + offs, mask=mask, other=0.0).to(CDT)
        z = _step_noise(
            noise_ptr, ids_ptr, steps_ptr, row, offs, mask, b, step, seed_lo, seed_hi, STREAM, HAS_NOISE, HAS_IDS,
            HAS_STEPS, CDT, BLOCK,
        )  # fmt: skip
        out = xc + (c_x * xc - c_eps * e) + c_z * z
        tl.store(out_ptr + row + offs, out.to(out_ptr.dtype.element_ty), mask=mask)


def _optional_int64(values, fallback):
    """sample_ids / steps as contiguous int64, or a placeholder pointer when absent."""
    return fallback if values is None else values.to(torch.int64).contiguous()


def _optional_active(active, fallback):
    return fallback if active is None else active.to(torch.uint8).contiguous()


def reverse_step(
    x, eps_hat, a, a_next, *, eta, noise=None, seed=None, sample_ids=None, step=0, active=None, steps=None, out=None
):
    """Generalised DDIM/DDPM step with per-sample (a, a_next) (see `reference.reverse_step`); validated inputs.

    x, eps_hat: [B, ...]; a, a_next: [B] float; active: [B] bool or None; steps: [B] int step words or None
    (then `step` for every sample); out: optional preallocated result.
    """
    has_z = eta != 0
    if has_z:
        _launch.require_noise_source(noise, seed)
    batch = x.shape[0]
    x2 = _launch.rows(x)
    row_numel = x2.shape[1]
    result = _launch.output_like(x, batch, out)
    block = _launch.block_size(row_numel)
    seed_lo, seed_hi = split_seed(seed) if has_z and noise is None else (0, 0)
    _reverse_step_kernel[(triton.cdiv(row_numel, block), batch)](
        x2,
        _launch.rows(eps_hat),
        a.contiguous(),
        a_next.contiguous(),
        x2 if noise is None else _launch.rows(noise),
        _optional_int64(sample_ids, a),
        _optional_int64(steps, a),
        _optional_active(active, a),
        result,
        row_numel,
        float(eta),
        seed_lo,
        seed_hi,
        step,
        STREAM=STREAM_REVERSE_STEP,
        HAS_Z=has_z,
        HAS_NOISE=noise is not None,
        HAS_IDS=sample_ids is not None,
        HAS_STEPS=steps is not None,
        HAS_ACTIVE=active is not None,
        CDT=_launch.compute_dtype(x.dtype),
        BLOCK=block,
        num_warps=_launch.num_warps(),
    )
    return result


def vp_sde_coefficients(t, dt: float, beta_min: float, beta_max: float, dtype: torch.dtype) -> torch.Tensor:
    """[3, B] per-sample (½β(t)dt, β(t)dt/σ(t), sqrt(β(t)dt)) in float64, rounded to dtype (reference formulas)."""
    t64 = t.to(torch.float64)
    beta_dt = vp_beta(t64, beta_min, beta_max) * dt
    return torch.stack([0.5 * beta_dt, beta_dt / vp_sigma(t64, beta_min, beta_max), beta_dt.sqrt()]).to(dtype)


def vp_sde_step(
    x,
    eps_hat,
    t,
    dt,
    *,
    noise=None,
    seed=None,
    sample_ids=None,
    step=0,
    active=None,
    beta_min=0.1,
    beta_max=20.0,
    steps=None,
    out=None,
):
    """One reverse VP-SDE Euler–Maruyama step t → t − dt per sample (see `reference.vp_sde_step`); validated.
    steps: [B] int step words or None (then `step` for every sample)."""
    _launch.require_noise_source(noise, seed)
    batch = x.shape[0]
    x2 = _launch.rows(x)
    row_numel = x2.shape[1]
    result = _launch.output_like(x, batch, out)
    block = _launch.block_size(row_numel)
    coef = vp_sde_coefficients(t, dt, beta_min, beta_max, compute_dtype(x.dtype)).contiguous()
    seed_lo, seed_hi = split_seed(seed) if noise is None else (0, 0)
    _vp_sde_step_kernel[(triton.cdiv(row_numel, block), batch)](
        x2,
        _launch.rows(eps_hat),
        coef,
        x2 if noise is None else _launch.rows(noise),
        _optional_int64(sample_ids, coef),
        _optional_int64(steps, coef),
        _optional_active(active, coef),
        result,
        batch,
        row_numel,
        seed_lo,
        seed_hi,
        step,
        STREAM=STREAM_VP_SDE_STEP,
        HAS_NOISE=noise is not None,
        HAS_IDS=sample_ids is not None,
        HAS_STEPS=steps is not None,
        HAS_ACTIVE=active is not None,
        CDT=_launch.compute_dtype(x.dtype),
        BLOCK=block,
        num_warps=_launch.num_warps(),
    )
    return result
