"""Per-sample attack losses: cross-entropy and Croce & Hein's DLR (untargeted and targeted) to be maximised, and the
classification margin (Square's loss) to be minimised."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["LOSSES", "cross_entropy", "dlr", "dlr_targeted", "margin"]


def cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    """CE_b = −log softmax(z_b)[y_b] → [B] (float32 at least)."""
    return F.cross_entropy(logits.float(), y, reduction="none")


def _check_classes(logits: Tensor, needed: int, loss: str) -> None:
    if logits.shape[-1] < needed:
        raise ValueError(f"{loss} needs at least {needed} classes, got {logits.shape[-1]}")


def _true_and_best_other(z: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """(z_y, max_{i≠y} z_i) per row of z [B, K] → two [B] tensors."""
    z_y = z.gather(1, y[:, None]).squeeze(1)
    best_other = z.scatter(1, y[:, None], float("-inf")).amax(dim=1)
    return z_y, best_other


def dlr(logits: Tensor, y: Tensor) -> Tensor:
    """Difference of logits ratio (Croce & Hein 2020), untargeted → [B]:

        DLR(z, y) = −(z_y − max_{i≠y} z_i) / (z_π1 − z_π3 + 1e-12)

    with z_π1 ≥ z_π2 ≥ z_π3 the largest logits. Invariant to shifting and scaling the logits; needs ≥ 3 classes.
    """
    _check_classes(logits, 3, "DLR")
    z = logits.float()
    top = z.topk(3, dim=1).values
    z_y, best_other = _true_and_best_other(z, y)
    return -(z_y - best_other) / (top[:, 0] - top[:, 2] + 1e-12)


def dlr_targeted(logits: Tensor, y: Tensor, target: Tensor) -> Tensor:
    """Targeted DLR (APGD-T's loss) towards class target [B] → [B]:

        DLR_t(z, y) = −(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2 + 1e-12)

    with z_π1 ≥ … ≥ z_π4 the largest logits; needs ≥ 4 classes.
    """
    _check_classes(logits, 4, "targeted DLR")
    z = logits.float()
    top = z.topk(4, dim=1).values
    z_y = z.gather(1, y[:, None]).squeeze(1)
    z_t = z.gather(1, target[:, None]).squeeze(1)
    return -(z_y - z_t) / (top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + 1e-12)


def margin(logits: Tensor, y: Tensor) -> Tensor:
    """Classification margin z_y − max_{i≠y} z_i → [B]; ≤ 0 exactly when the prediction is not y (ties aside)."""
    z_y, best_other = _true_and_best_other(logits.float(), y)
    return z_y - best_other


LOSSES = {"ce": cross_entropy, "dlr": dlr}
