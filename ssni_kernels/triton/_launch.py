"""Launch helpers shared by the Triton op families: block sizes, compute dtypes, [B, N] views."""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

# On a GPU one program handles a 1024-element tile with 4 warps (8 elements, i.e. two Philox calls, per thread).
GPU_BLOCK = 1024
GPU_WARPS = 4
# The interpreter pays ~0.65 ms per program instance, so it gets one large tile per sample row instead.
INTERPRETER_MAX_BLOCK = 65536


def interpreting() -> bool:
    """True when Triton runs kernels through its CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def block_size(row_numel: int) -> int:
    """Elements per program along a sample row: a power of two ≥ 4 (a whole number of Philox calls)."""
    if interpreting():
        return max(4, min(triton.next_power_of_2(row_numel), INTERPRETER_MAX_BLOCK))
    return GPU_BLOCK


def num_warps() -> int:
    return GPU_WARPS


def compute_dtype(dtype: torch.dtype):
    """Triton arithmetic dtype for a storage dtype (as reference.compute_dtype): float64 stays, else float32."""
    return tl.float64 if dtype == torch.float64 else tl.float32


def rows(t: torch.Tensor) -> torch.Tensor:
    """A contiguous [B, N] view (or copy) of a [B, ...] tensor."""
    return t.contiguous().reshape(t.shape[0], -1)


def output_like(x: torch.Tensor, leading: int, out: torch.Tensor | None) -> torch.Tensor:
    """The [leading, *x.shape[1:]] output in x.dtype: `out` when given (checked), else a fresh tensor."""
    shape = (leading, *x.shape[1:])
    if out is None:
        return torch.empty(shape, dtype=x.dtype, device=x.device)
    if tuple(out.shape) != shape or out.dtype != x.dtype or out.device != x.device or not out.is_contiguous():
        raise ValueError(f"out must be a contiguous {x.dtype} tensor of shape {shape} on {x.device}")
    return out


def require_noise_source(noise, seed) -> None:
    if noise is None and seed is None:
        raise ValueError("either noise or seed must be given")
