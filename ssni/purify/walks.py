"""Walks: each sample's reverse walk as data, planned up front, and the active-only batch engine that runs them.

A host plans one stage of purification as `Walks` (as NVlabs/edm's sampler computes `t_steps` before its loop):
the noised start state and a float64 table [B, L, 3] holding, for step p of sample b, (network label, coef_a,
coef_b); p counts from the END of the sample's own walk (p = L_b − 1 … 0), entries p ≥ L_b are padding. What the
coefficients mean is the host's business (ᾱ and ᾱ_next for the discrete walk, τ and Δ for the SDE); its
`apply(x, eps, coef_a, coef_b, words, sample_ids, *, seed)` runs one step of any set of rows. Both engines, this
module's `run_active` and the streaming engine, consume the same plans and never look at the host type.

Active-only execution (`run_active`): round p (p = L_max − 1 down to 0) runs step p of every sample with
L_b > p. The batch is sorted once by L_b (descending, stable), so the active set of every round is a prefix: the
network sees exactly the active samples (a contiguous slice, no gather), and the total cost is Σ_b L_b
per-sample evaluations in L_max forward passes. For the defence (every index once) p is the diffusion index, so
a sample joins when the global index reaches t_b − 1. Per-sample data is looked up through `rows`, the original
batch positions of the active samples, so results do not depend on batch composition.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.checkpoint import checkpoint

from ssni.models.interface import LABEL_DTYPE

__all__ = ["Walks", "Guidance", "run_active"]

#: guidance(x_rows, p, rows, label, coef_a, coef_b) -> a term added to the step's output (GDMP).
Guidance = Callable[..., torch.Tensor]


@dataclass
class Walks:
    """The planned walks of one stage for B samples.

    start: [B, ...] noised states (model space); table: float64 [B, L, 3] of (label, coef_a, coef_b) per step p;
    lengths: int64 [B] ≥ 0 (0: the sample passes through unchanged); word_offset: the noise word of step 0
    (step p draws with word_offset + p, the layout of `ssni.purify.base`).
    """

    start: torch.Tensor
    table: torch.Tensor
    lengths: torch.Tensor
    word_offset: int

    @property
    def labels(self) -> torch.Tensor:
        """The network labels, float32 [B, L]."""
        return self.table[..., 0].to(LABEL_DTYPE)


def run_active(host, walks: Walks, sample_ids: torch.Tensor, *, seed: int, grad: bool, guidance=None) -> torch.Tensor:
    """Run every walk to its end, active-only; return the final states [B, ...] in the input order.

    host: a `Purifier` (its model, `apply`, counter and grad_checkpoint are used); sample_ids: int64 [B].
    grad=False updates a sorted copy in place (call under no_grad); grad=True builds the graph out of place and
    checkpoints each round when `host.grad_checkpoint`. The counter gets one network call of k samples per round.
    """
    lengths = walks.lengths
    if lengths.shape != (walks.start.shape[0],):
        raise ValueError(f"lengths must have shape [{walks.start.shape[0]}], got {tuple(lengths.shape)}")
    order = torch.argsort(lengths, descending=True, stable=True)
    sorted_len = lengths[order]
    l_max = int(sorted_len[0]) if sorted_len.numel() else 0
    rounds = torch.arange(l_max, device=lengths.device)
    active = (sorted_len[None, :] > rounds[:, None]).sum(dim=1).tolist()

    def step(xk: torch.Tensor, p: int, rows: torch.Tensor) -> torch.Tensor:
        label, coef_a, coef_b = walks.table[rows, p].unbind(-1)
        eps = host.model(xk, label.to(LABEL_DTYPE))
        out = host.apply(xk, eps, coef_a, coef_b, walks.word_offset + p, sample_ids[rows], seed=seed)
        return out if guidance is None else out + guidance(xk, p, rows, label, coef_a, coef_b)

    xs = walks.start[order]
    for p in range(l_max - 1, -1, -1):
        k = active[p]
        rows = order[:k]
        host.counter.add(k)
        if not grad:
            xs[:k] = step(xs[:k], p, rows)
            continue
        new = checkpoint(step, xs[:k], p, rows, use_reentrant=False) if host.grad_checkpoint else step(xs[:k], p, rows)
        xs = new if k == xs.shape[0] else torch.cat([new, xs[k:]])
    return xs[torch.argsort(order)]
