"""Pieces shared by the ops' autograd formulas.

Every op is affine in (x, eps_hat, noise) per sample, so its backward is a per-sample scaling whose coefficients
are computed in float64 from the schedule. Schedule tensors are constants: asking for their gradient is an error.
"""

from __future__ import annotations

import torch

from ssni_kernels.reference import compute_dtype


def require_constant(op: str, **schedule) -> None:
    """Refuse schedule tensors that require grad (the ops have no gradient w.r.t. them)."""
    for name, value in schedule.items():
        if isinstance(value, torch.Tensor) and value.requires_grad:
            raise ValueError(
                f"{op}: {name} requires grad, but ssni ops treat schedule tensors as constants "
                f"(no gradient w.r.t. {name}); pass {name}.detach()"
            )


def float64(v: torch.Tensor) -> torch.Tensor:
    """A float64 copy of v."""
    # Always a copy: an op may not return one of its inputs (opcheck's schema test), and `.to` would when v is
    # already float64.
    return v.to(torch.float64, copy=True)


def scale_rows(grad: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
    """grad_b · coef_b for [B, ...] grad and [B] float64 coef, in the op's arithmetic dtype."""
    cdt = compute_dtype(grad.dtype)
    return (grad.to(cdt) * coef.to(cdt).reshape(-1, *([1] * (grad.dim() - 1)))).to(grad.dtype)
