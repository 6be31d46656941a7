"""Per-sample attack losses (to be maximised): cross-entropy and Croce & Hein's DLR."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["LOSSES", "cross_entropy", "dlr"]


def cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    """CE_b = −log softmax(z_b)[y_b] → [B] (float32 at least)."""
    return F.cross_entropy(logits.float(), y, reduction="none")


def dlr(logits: Tensor, y: Tensor) -> Tensor:
    """Difference of logits ratio (Croce & Hein 2020), untargeted → [B]:

        DLR(z, y) = −(z_y − max_{i≠y} z_i) / (z_π1 − z_π3 + 1e-12)

    with z_π1 ≥ z_π2 ≥ z_π3 the largest logits. Invariant to shifting and scaling the logits; needs ≥ 3 classes.
    """
    if logits.shape[-1] < 3:
        raise ValueError(f"DLR needs at least 3 classes, got {logits.shape[-1]}")
    z = logits.float()
    top, _ = z.sort(dim=1, descending=True)
    z_y = z.gather(1, y[:, None]).squeeze(1)
    y_is_top = z.argmax(dim=1) == y
    best_other = top[:, 1].where(y_is_top, top[:, 0])
    return -(z_y - best_other) / (top[:, 0] - top[:, 2] + 1e-12)


LOSSES = {"ce": cross_entropy, "dlr": dlr}
