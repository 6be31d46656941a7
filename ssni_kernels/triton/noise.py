"""Triton kernels of the noise family: forward diffusion with a timestep per sample, the K-level form, and the
bare Philox normal stream. Math: `reference.noise_inject`, `reference.noise_inject_levels`,
`reference.normal_noise`; stream definition: `ssni_kernels/philox.py`.

Grid: (tiles along a sample row, samples). Each program reads its sample's scalars once (ᾱ[t_b] gathered in the
kernel, the sample id), and draws its tile's noise in registers, so ε never touches memory.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ssni_kernels.reference import STREAM_NOISE_INJECT, STREAM_NOISE_LEVELS
from ssni_kernels.triton import _launch
from ssni_kernels.triton.philox import normal_block, split_seed


@triton.jit
def _sample_id(ids_ptr, b, HAS_IDS: tl.constexpr):
    if HAS_IDS:
        sid = tl.load(ids_ptr + b)
    else:
        sid = b
    return sid


@triton.jit(do_not_specialize=["seed_lo", "seed_hi", "step"])
def _noise_inject_kernel(
    x_ptr,
    t_ptr,
    acp_ptr,
    noise_ptr,
    ids_ptr,
    out_ptr,
    row_numel,
    seed_lo,
    seed_hi,
    step,
    STREAM: tl.constexpr,
    HAS_NOISE: tl.constexpr,
    HAS_IDS: tl.constexpr,
    CDT: tl.constexpr,
    BLOCK: tl.constexpr,
):
    tile, b = tl.program_id(0), tl.program_id(1)
    offs = tile * BLOCK + tl.arange(0, BLOCK)
    mask = offs < row_numel
    row = b.to(tl.int64) * row_numel
    # ᾱ in float64 as the reference does; only the two coefficients are rounded to the compute dtype.
    a = tl.load(acp_ptr + tl.load(t_ptr + b)).to(tl.float64)
    coef_x = tl.sqrt(a).to(CDT)
    coef_eps = tl.sqrt(1.0 - a).to(CDT)
    x = tl.load(x_ptr + row + offs, mask=mask, other=0.0).to(CDT)
    if HAS_NOISE:
        eps = tl.load(noise_ptr + row + offs, mask=mask, other=0.0).to(CDT)
    else:
        sid = _sample_id(ids_ptr, b, HAS_IDS)
        # Rounded to x's dtype first, as the reference draws ε in x's dtype.
        eps = normal_block(tile * BLOCK, step, sid, STREAM, seed_lo, seed_hi, BLOCK).to(x_ptr.dtype.element_ty).to(CDT)
    tl.store(out_ptr + row + offs, (coef_x * x + coef_eps * eps).to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit(do_not_specialize=["seed_lo", "seed_hi"])
def _noise_inject_levels_kernel(
    x_ptr,
    mean_ptr,
    std_ptr,
    noise_ptr,
    ids_ptr,
    out_ptr,
    n_levels,
    batch,
    row_numel,
    seed_lo,
    seed_hi,
    STREAM: tl.constexpr,
    HAS_NOISE: tl.constexpr,
    HAS_IDS: tl.constexpr,
    CDT: tl.constexpr,
    BLOCK: tl.constexpr,
):
    # One program reads its x tile once and writes it at all K levels (no K copies of x in memory).
    tile, b = tl.program_id(0), tl.program_id(1)
    offs = tile * BLOCK + tl.arange(0, BLOCK)
    mask = offs < row_numel
    x = tl.load(x_ptr + b.to(tl.int64) * row_numel + offs, mask=mask, other=0.0).to(CDT)
    sid = _sample_id(ids_ptr, b, HAS_IDS)
    for k in range(n_levels):
        row = (k * batch + b).to(tl.int64) * row_numel
        if HAS_NOISE:
            eps = tl.load(noise_ptr + row + offs, mask=mask, other=0.0).to(CDT)
        else:
            eps = normal_block(tile * BLOCK, k, sid, STREAM, seed_lo, seed_hi, BLOCK)
            eps = eps.to(x_ptr.dtype.element_ty).to(CDT)  # ε in x's dtype, as the reference
        m = tl.load(mean_ptr + k).to(CDT)
        s = tl.load(std_ptr + k).to(CDT)
        tl.store(out_ptr + row + offs, (m * x + s * eps).to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit(do_not_specialize=["seed_lo", "seed_hi", "step", "stream"])
def _normal_kernel(ids_ptr, out_ptr, row_numel, seed_lo, seed_hi, step, stream, BLOCK: tl.constexpr):
    tile, b = tl.program_id(0), tl.program_id(1)
    offs = tile * BLOCK + tl.arange(0, BLOCK)
    z = normal_block(tile * BLOCK, step, tl.load(ids_ptr + b), stream, seed_lo, seed_hi, BLOCK)
    tl.store(out_ptr + b.to(tl.int64) * row_numel + offs, z.to(out_ptr.dtype.element_ty), mask=offs < row_numel)


def _grid(row_numel: int, batch: int, block: int) -> tuple[int, int]:
    return (triton.cdiv(row_numel, block), batch)


def noise_inject(x, t, alphas_cumprod, *, noise=None, seed=None, sample_ids=None, step=0, out=None):
    """sqrt(ᾱ[t_b])·x_b + sqrt(1 − ᾱ[t_b])·ε_b (see `reference.noise_inject`); inputs already validated.

    x: [B, ...] fp16/bf16/fp32/fp64; t: [B] int; alphas_cumprod: [T]; noise like x or None (then seed is used);
    out: optional preallocated result (contiguous, like x).
    """
    _launch.require_noise_source(noise, seed)
    batch = x.shape[0]
    x2 = _launch.rows(x)
    row_numel = x2.shape[1]
    result = _launch.output_like(x, batch, out)
    block = _launch.block_size(row_numel)
    seed_lo, seed_hi = split_seed(seed) if noise is None else (0, 0)
    _noise_inject_kernel[_grid(row_numel, batch, block)](
        x2,
        t.contiguous(),
        alphas_cumprod.contiguous(),
        x2 if noise is None else _launch.rows(noise),
        t if sample_ids is None else sample_ids.to(torch.int64).contiguous(),
        result,
        row_numel,
        seed_lo,
        seed_hi,
        step,
        STREAM=STREAM_NOISE_INJECT,
        HAS_NOISE=noise is not None,
        HAS_IDS=sample_ids is not None,
        CDT=_launch.compute_dtype(x.dtype),
        BLOCK=block,
        num_warps=_launch.num_warps(),
    )
    return result


def noise_inject_levels(x, mean_coef, std, *, noise=None, seed=None, sample_ids=None, out=None):
    """out[k·B + b] = mean_coef[k]·x_b + std[k]·ε_{k,b} (see `reference.noise_inject_levels`) → [K·B, ...]."""
    _launch.require_noise_source(noise, seed)
    n_levels, batch = mean_coef.shape[0], x.shape[0]
    x2 = _launch.rows(x)
    row_numel = x2.shape[1]
    result = _launch.output_like(x, n_levels * batch, out)
    block = _launch.block_size(row_numel)
    seed_lo, seed_hi = split_seed(seed) if noise is None else (0, 0)
    _noise_inject_levels_kernel[_grid(row_numel, batch, block)](
        x2,
        mean_coef.contiguous(),
        std.contiguous(),
        x2 if noise is None else _launch.rows(noise),
        mean_coef if sample_ids is None else sample_ids.to(torch.int64).contiguous(),
        result,
        n_levels,
        batch,
        row_numel,
        seed_lo,
        seed_hi,
        STREAM=STREAM_NOISE_LEVELS,
        HAS_NOISE=noise is not None,
        HAS_IDS=sample_ids is not None,
        CDT=_launch.compute_dtype(x.dtype),
        BLOCK=block,
        num_warps=_launch.num_warps(),
    )
    return result


def normal_noise(shape, seed: int, sample_ids: torch.Tensor, step: int, stream: int, dtype=torch.float32):
    """Standard normals [B, *shape] of the ssni Philox stream on sample_ids' device (`reference.normal_noise`)."""
    batch = sample_ids.shape[0]
    out = torch.empty((batch, *shape), dtype=dtype, device=sample_ids.device)
    row_numel = out[0].numel() if batch else 0
    if batch == 0 or row_numel == 0:
        return out
    block = _launch.block_size(row_numel)
    _normal_kernel[_grid(row_numel, batch, block)](
        sample_ids.to(torch.int64).contiguous(),
        out,
        row_numel,
        *split_seed(seed),
        step,
        stream,
        BLOCK=block,
        num_warps=_launch.num_warps(),
    )
    return out
