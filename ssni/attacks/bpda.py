"""BPDA-EOT (spec §8): purify without gradient, apply the gradient w.r.t. the purified image to the input.

BPDA (Athalye et al. 2018) approximates the purifier's Jacobian by the identity. `straight_through(x, p)`
returns p in the forward pass and routes ∂L/∂p unchanged to x in the backward pass, so

    ∇_x L(classifier(straight_through(x, purify(x)))) = (∇_p L(classifier(p)))|_{p = purify(x)}.

The adapters' `gradient="bpda"` mode builds their surrogate this way; `bpda_eot` runs PGD-EOT on it.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import Tensor

from ssni.attacks.defended import DefendedModel
from ssni.attacks.pgd_eot import AttackResult, pgd_eot

__all__ = ["StraightThrough", "SupportsBPDA", "bpda_eot", "straight_through"]


class StraightThrough(torch.autograd.Function):
    """forward(x, p) = p; backward: ∂/∂x = grad_output, ∂/∂p = None (p is computed without gradient)."""

    @staticmethod
    def forward(ctx, x: Tensor, purified: Tensor) -> Tensor:
        return purified.detach().clone()

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None]:
        return grad_output, None


def straight_through(x: Tensor, purified: Tensor) -> Tensor:
    """`purified` with the identity as its Jacobian w.r.t. `x` (same shape and dtype required)."""
    if purified.shape != x.shape:
        raise ValueError(
            f"BPDA needs the purified image to have the input's shape {tuple(x.shape)}, got {tuple(purified.shape)}"
        )
    if purified.dtype != x.dtype:
        raise TypeError(f"BPDA needs the purified image in the input's dtype {x.dtype}, got {purified.dtype}")
    return StraightThrough.apply(x, purified)


class SupportsBPDA(DefendedModel, Protocol):
    def with_gradient(self, gradient: str) -> DefendedModel:
        """The same defence with gradient="full" (through the purifier) or "bpda" (straight-through)."""
        ...


def bpda_eot(model: SupportsBPDA, x: Tensor, y: Tensor, *, sample_ids: Tensor, **pgd_options: Any) -> AttackResult:
    """PGD-EOT (same options and defaults as `pgd_eot`) with BPDA gradients through `model`'s purifier."""
    return pgd_eot(model.with_gradient("bpda"), x, y, sample_ids=sample_ids, **pgd_options)
