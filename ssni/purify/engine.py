"""Active-only execution: per-sample step counts without evaluating the network on finished or waiting samples.

Every host walks each sample through its own list of L_b working steps, aligned at the END: round p (p = L_max − 1
down to 0) runs step p of every sample with L_b > p (p counted from the sample's last step). For the defence
(every index once) p is the diffusion index itself, so a sample joins when the global index reaches t_b − 1.

The batch is sorted once by L_b (descending, stable), which makes the active set of every round a prefix: the
network sees exactly the active samples (a contiguous slice, no gather), and the total cost is Σ_b L_b per-sample
evaluations in L_max forward passes. Per-sample data (ids, schedules) is looked up through `rows`, the original
batch positions of the active samples, so results do not depend on batch composition.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.checkpoint import checkpoint as _checkpoint

from ssni.models.interface import CallCounter

__all__ = ["StepFn", "run_active"]

#: step(x_active [k, ...], p, rows int64 [k]) -> the new state of those k samples (one network call inside).
StepFn = Callable[[torch.Tensor, int, torch.Tensor], torch.Tensor]


def run_active(
    x: torch.Tensor,
    lengths: torch.Tensor,
    step: StepFn,
    *,
    counter: CallCounter,
    grad: bool,
    checkpoint: bool = True,
) -> torch.Tensor:
    """Run `step` for rounds p = max(lengths) − 1 … 0 on the samples with lengths > p; return the final states.

    x: [B, ...] initial states; lengths: int64 [B] ≥ 0 (0: the sample passes through unchanged).
    grad=False updates a sorted copy in place (call under no_grad); grad=True builds the graph out of place and
    checkpoints each round when `checkpoint` (recomputation is exact: the noise is keyed, not drawn).
    The counter gets one network call of k samples per round.
    """
    if lengths.shape != (x.shape[0],):
        raise ValueError(f"lengths must have shape [{x.shape[0]}], got {tuple(lengths.shape)}")
    order = torch.argsort(lengths, descending=True, stable=True)
    sorted_len = lengths[order]
    l_max = int(sorted_len[0]) if sorted_len.numel() else 0
    rounds = torch.arange(l_max, device=lengths.device)
    active = (sorted_len[None, :] > rounds[:, None]).sum(dim=1).tolist()
    xs = x[order]
    for p in range(l_max - 1, -1, -1):
        k = active[p]
        rows = order[:k]
        counter.add(k)
        if not grad:
            xs[:k] = step(xs[:k], p, rows)
            continue
        new = _checkpoint(step, xs[:k], p, rows, use_reentrant=False) if checkpoint else step(xs[:k], p, rows)
        xs = new if k == xs.shape[0] else torch.cat([new, xs[k:]])
    return xs[torch.argsort(order)]
