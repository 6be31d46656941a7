"""Triton kernels of the score-norm family: the fused K-level mean + per-sample L2 norm and its backward.
Math: `reference.score_norm`:

    S_b[e] = Σ_k eps_hat[k·B + b, e] / σ_k,      e_b = ‖−S_b / K‖₂ = ‖S_b‖₂ / K

Deterministic two-pass reduction (no atomics): pass 1, grid (tiles, B), each program reads its tile at all K
levels once, forms S in fp32 (fp64 for fp64 input) and writes one partial Σ S² per (sample, tile); pass 2 sums a
sample's partials in a fixed order. eps_hat is read exactly once.

Backward (g = ∂L/∂e_b; σ is a schedule constant, see ops.py): ∂e_b/∂eps_hat[k·B + b, e] = S_b[e] / (K² σ_k e_b),
and zero where e_b = 0 (as torch's vector_norm). One program recomputes S for its tile and writes its K gradient
rows: eps_hat is read once and the gradient written once.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ssni_kernels.reference import compute_dtype
from ssni_kernels.triton import _launch

# Score-norm tiles are larger than elementwise ones: the K-level loop already gives each thread plenty of
# independent loads, and fewer tiles mean fewer partials.
GPU_BLOCK = 2048
GPU_WARPS = 8


def _block_size(row_numel: int) -> int:
    return _launch.block_size(row_numel) if _launch.interpreting() else GPU_BLOCK


@triton.jit
def _add(a, b):
    return a + b


@triton.jit
def _total(v):
    """Σ v over a 1-D tile (tl.reduce with our own combine: the interpreter then also works when triton was
    imported before TRITON_INTERPRET was set, which tl.sum, a jit helper of triton.language, does not)."""
    return tl.reduce(v, 0, _add)


@triton.jit
def _level_sum(eps_ptr, sigma_ptr, b, n_levels, batch, row_numel, offs, mask, CDT: tl.constexpr, BLOCK: tl.constexpr):
    """S[offs] = Σ_k eps_hat[k·B + b, offs] / σ_k for one sample's tile, in CDT."""
    acc = tl.full([BLOCK], 0.0, CDT)
    for k in range(n_levels):
        row = (k * batch + b).to(tl.int64) * row_numel
        eps = tl.load(eps_ptr + row + offs, mask=mask, other=0.0).to(CDT)
        acc += eps / tl.load(sigma_ptr + k).to(CDT)
    return acc


@triton.jit
def _score_norm_partials_kernel(
    eps_ptr, sigma_ptr, partial_ptr, n_levels, batch, row_numel, CDT: tl.constexpr, BLOCK: tl.constexpr
):
    tile, b = tl.program_id(0), tl.program_id(1)
    offs = tile * BLOCK + tl.arange(0, BLOCK)
    mask = offs < row_numel
    acc = _level_sum(eps_ptr, sigma_ptr, b, n_levels, batch, row_numel, offs, mask, CDT, BLOCK)
    tl.store(partial_ptr + b * tl.num_programs(0) + tile, _total(acc * acc))


@triton.jit
def _score_norm_backward_kernel(
    eps_ptr,
    sigma_ptr,
    norm_ptr,
    grad_ptr,
    grad_eps_ptr,
    n_levels,
    batch,
    row_numel,
    CDT: tl.constexpr,
    BLOCK: tl.constexpr,
):
    tile, b = tl.program_id(0), tl.program_id(1)
    offs = tile * BLOCK + tl.arange(0, BLOCK)
    mask = offs < row_numel
    acc = _level_sum(eps_ptr, sigma_ptr, b, n_levels, batch, row_numel, offs, mask, CDT, BLOCK)
    norm = tl.load(norm_ptr + b).to(CDT)
    k_f = tl.full([], n_levels, CDT)
    # g / (K² e_b), zero where e_b = 0 (the subgradient torch's vector_norm uses).
    scale = tl.where(norm > 0, tl.load(grad_ptr + b).to(CDT) / (k_f * k_f * tl.where(norm > 0, norm, 1.0)), 0.0)
    for k in range(n_levels):
        row = (k * batch + b).to(tl.int64) * row_numel
        sigma = tl.load(sigma_ptr + k).to(CDT)
        tl.store(grad_eps_ptr + row + offs, (acc * (scale / sigma)).to(grad_eps_ptr.dtype.element_ty), mask=mask)


def _launch_args(eps_hat, sigma):
    n_levels = sigma.shape[0]
    eps2 = _launch.rows(eps_hat)
    batch, row_numel = eps2.shape[0] // n_levels, eps2.shape[1]
    block = _block_size(row_numel)
    return eps2, sigma.contiguous(), n_levels, batch, row_numel, block, (triton.cdiv(row_numel, block), batch)


def score_norm(eps_hat, sigma):
    """Per-sample ‖mean_k(−eps_hat_k / σ_k)‖₂: eps_hat [K·B, ...] level-major, sigma [K] → [B] fp32 (fp64 for
    fp64 eps_hat). Inputs already validated (K divides eps_hat.shape[0], σ > 0)."""
    eps2, sigma, n_levels, batch, row_numel, block, grid = _launch_args(eps_hat, sigma)
    out_dtype = compute_dtype(eps_hat.dtype)
    partials = torch.empty((batch, grid[0]), dtype=out_dtype, device=eps_hat.device)
    _score_norm_partials_kernel[grid](
        eps2,
        sigma,
        partials,
        n_levels,
        batch,
        row_numel,
        CDT=_launch.compute_dtype(eps_hat.dtype),
        BLOCK=block,
        num_warps=GPU_WARPS,
    )
    return partials.sum(dim=1).sqrt_().div_(n_levels)


def score_norm_backward(grad, eps_hat, sigma, norm):
    """∂L/∂eps_hat of `score_norm` (like eps_hat): grad [B] = ∂L/∂e, norm [B] = the forward output e."""
    eps2, sigma, n_levels, batch, row_numel, block, grid = _launch_args(eps_hat, sigma)
    cdt = compute_dtype(eps_hat.dtype)
    grad_eps = torch.empty_like(eps2)
    _score_norm_backward_kernel[grid](
        eps2,
        sigma,
        norm.to(cdt).contiguous(),
        grad.to(cdt).contiguous(),
        grad_eps,
        n_levels,
        batch,
        row_numel,
        CDT=_launch.compute_dtype(eps_hat.dtype),
        BLOCK=block,
        num_warps=GPU_WARPS,
    )
    return grad_eps.reshape(eps_hat.shape)
