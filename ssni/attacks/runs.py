"""AutoAttack's plumbing: attacks run one after another on the samples still robust, and target classes by rank."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ssni.attacks.defended import DefendedModel, surrogate_logits
from ssni.attacks.pgd_eot import AttackResult, misclassified
from ssni.attacks.threat import check_positive_int

__all__ = ["Stage", "attack_in_sequence", "ranked_targets"]

Stage = Callable[[Tensor], Tensor]
"""`stage(todo) -> x_adv [n, ...]`: an attack on the samples x[todo] (todo: int64 indices [n] into the batch)."""


def attack_in_sequence(
    model: DefendedModel, x: Tensor, y: Tensor, sample_ids: Tensor, stages: Sequence[tuple[str, Stage]]
) -> AttackResult:
    """Run `stages` in order, each on the samples that no earlier stage fooled (AutoAttack's
    `run_standard_evaluation`, and APGD's restarts). After each stage the defence judges its points
    (`model.logits`, the evaluation seed).

    Returns x_adv: per sample the point of the stage that fooled the defence, else the last stage's point (x for a
    sample no stage reached); success [B] bool: some stage fooled it; success_by: {stage name: the samples that
    stage fooled}, disjoint masks whose union is success.
    """
    x_adv = x.clone()
    success = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    success_by = {}
    for name, stage in stages:
        todo = (~success).nonzero().squeeze(1)
        hit = torch.zeros_like(success)
        if todo.numel() > 0:
            x_stage = stage(todo)
            x_adv[todo] = x_stage
            hit[todo] = misclassified(model, x_stage, y[todo], sample_ids[todo])
        success = success | hit
        success_by[name] = hit
    return AttackResult(x_adv=x_adv, success=success, success_by=success_by)


def ranked_targets(model: DefendedModel, x: Tensor, *, sample_ids: Tensor, count: int, iteration: int) -> Tensor:
    """The classes ranked 2nd … (count+1)-th by the surrogate's logits at x → int64 [B, count].

    AutoAttack's target classes for APGD-T and FAB-T (`n_target_classes` = count): target j is the (j+2)-th
    largest logit of the clean input. The logits are one no-grad draw at `iteration` (`surrogate_logits`).
    """
    check_positive_int(count, "target_classes")
    logits = surrogate_logits(model, x, sample_ids=sample_ids, iteration=iteration)
    if count > logits.shape[1] - 1:
        raise ValueError(f"target_classes must be at most classes − 1 = {logits.shape[1] - 1}, got {count}")
    return logits.argsort(dim=1, descending=True)[:, 1 : count + 1]
