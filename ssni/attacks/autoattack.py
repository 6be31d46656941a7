"""AutoAttack (Croce & Hein, ICML 2020): the "rand" and "standard" versions, and their per-sample worst case.

Both run their component attacks one after another, each on the samples still robust (`attack_in_sequence`), as
fra31/auto-attack's `run_standard_evaluation`; points the defence misclassifies when clean are not attacked.

- "rand" (for randomised defences): APGD-CE, then APGD-DLR, one restart each, with EOT (20 draws).
- "standard": APGD-CE (one restart), APGD-T (9 target classes), FAB-T (9 target classes), Square (5,000 queries,
  p_init 0.8), all without EOT, exactly the configuration of `AutoAttack(version="standard")` for Linf and L2.
  DiffPure ran this version unchanged on its randomised defence; here too each query of a randomised defence
  sees fresh noise (the surrogate's draws), and success is judged with the evaluation seed (`model.logits`).

DiffPure reports AutoAttack as the worse of the two versions; `worst_case` combines them per sample: a sample
is robust only if it survives both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial

import torch
from torch import Tensor

from ssni.attacks.apgd import apgd, apgd_targeted
from ssni.attacks.defended import STREAM_AUTOATTACK_STANDARD, STREAM_RANDOM_START, DefendedModel, derive_seed
from ssni.attacks.fab import fab_targeted
from ssni.attacks.pgd_eot import AttackResult
from ssni.attacks.runs import Stage, attack_in_sequence
from ssni.attacks.square import check_square_images, square
from ssni.attacks.threat import Norm, check_attack_inputs, check_positive_int, require_eps

__all__ = ["autoattack_rand", "autoattack_standard", "worst_case"]


def _stage(attack: Callable[..., AttackResult], *, model, x: Tensor, y: Tensor, sample_ids: Tensor, **options) -> Stage:
    """The `Stage` that runs attack(model, x[todo], y[todo], sample_ids=sample_ids[todo], **options)."""
    return lambda todo: attack(model, x[todo], y[todo], sample_ids=sample_ids[todo], **options).x_adv


def autoattack_rand(
    model: DefendedModel,
    x: Tensor,
    y: Tensor,
    *,
    sample_ids: Tensor,
    norm: Norm = "Linf",
    eps: float,
    iterations: int = 100,
    eot: int = 20,
    seed: int = 0,
    on_iteration: Callable[[int], None] | None = None,
) -> AttackResult:
    """AutoAttack "rand": APGD-CE, then APGD-DLR on the points it did not fool, both with `eot` draws.

    Robustness is per-sample worst case: `success` = misclassified clean, or by the APGD-CE point, or by the
    APGD-DLR point, each judged by `model.logits`; robust accuracy = 1 − success.mean(). x_adv holds, per sample,
    the first point that fooled the defence, else the APGD-DLR result. `success_by` has the masks "clean",
    "apgd-ce", "apgd-dlr". Stage s (0: CE, 1: DLR) starts from `derive_seed(seed, STREAM_RANDOM_START, s)` and
    uses the iteration numbers s·(iterations + 1) onwards.
    """
    eps = require_eps(norm, eps, "AutoAttack rand")
    check_attack_inputs(x, y, sample_ids, norm=norm, eps=eps)
    check_positive_int(iterations, "iterations")
    check_positive_int(eot, "eot")
    x = x.detach()
    stage = partial(_stage, model=model, x=x, y=y, sample_ids=sample_ids, norm=norm, eps=eps, on_iteration=on_iteration)
    stages = [("clean", lambda todo: x[todo])]
    for k, (name, loss) in enumerate((("apgd-ce", "ce"), ("apgd-dlr", "dlr"))):
        start = dict(seed=derive_seed(seed, STREAM_RANDOM_START, k), first_iteration=k * (iterations + 1))
        stages.append((name, stage(apgd, loss=loss, iterations=iterations, eot=eot, **start)))
    return attack_in_sequence(model, x, y, sample_ids, stages)


def autoattack_standard(
    model: DefendedModel,
    x: Tensor,
    y: Tensor,
    *,
    sample_ids: Tensor,
    norm: Norm = "Linf",
    eps: float,
    iterations: int = 100,
    target_classes: int = 9,
    square_queries: int = 5000,
    seed: int = 0,
    on_iteration: Callable[[int], None] | None = None,
) -> AttackResult:
    """AutoAttack "standard": APGD-CE, APGD-T, FAB-T, Square, each on the samples the earlier ones left robust.

    x [B, C, H, W] in [0, 1], y [B] int64, sample_ids [B]; eps: the radius, no default (it depends on the data).
    Defaults are AutoAttack's: 100 iterations for APGD-CE, APGD-T and FAB-T, 9 target classes (needs ≥ 10 classes;
    fewer classes need target_classes ≤ classes − 1), 5,000 Square queries; no EOT.
    seed: component k (0: APGD-CE, 1: APGD-T, 3: Square; FAB-T is deterministic) is keyed on
      `derive_seed(seed, STREAM_AUTOATTACK_STANDARD, k)`; the components use disjoint iteration numbers.
    on_iteration: called with the iteration (query) index of the current run of each component.

    Returns `AttackResult`: success [B] (some component fooled the defence, judged by `model.logits`, or clean
    misclassified); success_by "clean", "apgd-ce", "apgd-t", "fab-t", "square" (disjoint); x_adv the point that
    fooled the defence, else Square's lowest-margin point.
    """
    eps = require_eps(norm, eps, "AutoAttack standard")
    check_attack_inputs(x, y, sample_ids, norm=norm, eps=eps)
    check_positive_int(iterations, "iterations")
    check_positive_int(target_classes, "target_classes")
    check_positive_int(square_queries, "square_queries")
    check_square_images(x, norm)  # before the gradient attacks spend their budget
    x = x.detach()
    stage = partial(_stage, model=model, x=x, y=y, sample_ids=sample_ids, norm=norm, eps=eps, on_iteration=on_iteration)
    # Iteration numbers used by each component: APGD-CE N + 1, APGD-T 1 + T·(N + 1), FAB-T 1 + 2·T·N.
    apgd_t_first = iterations + 1
    fab_t_first = apgd_t_first + 1 + target_classes * (iterations + 1)
    square_first = fab_t_first + 1 + 2 * target_classes * iterations

    def component_seed(k: int) -> int:
        return derive_seed(seed, STREAM_AUTOATTACK_STANDARD, k)

    targeted = dict(iterations=iterations, target_classes=target_classes)
    stages = [
        ("clean", lambda todo: x[todo]),
        ("apgd-ce", stage(apgd, iterations=iterations, eot=1, seed=component_seed(0))),
        ("apgd-t", stage(apgd_targeted, seed=component_seed(1), first_iteration=apgd_t_first, **targeted)),
        ("fab-t", stage(fab_targeted, first_iteration=fab_t_first, **targeted)),
        ("square", stage(square, queries=square_queries, seed=component_seed(3), first_iteration=square_first)),
    ]
    return attack_in_sequence(model, x, y, sample_ids, stages)


def worst_case(results: Mapping[str, AttackResult]) -> AttackResult:
    """Per-sample worst case over attacks run on the same samples (e.g. {"rand": …, "standard": …}).

    success [B] = OR of the results' success (a sample is robust only if it survives every attack); x_adv = the
    point of the first result (in mapping order) that fooled the defence, else the last result's point;
    success_by = {name: that result's success}.
    """
    if not results:
        raise ValueError("worst_case needs at least one AttackResult")
    names = list(results)
    for name in names:
        if results[name].success is None:
            raise ValueError(f"result {name!r} has no success mask (run it with check_success=True)")
    shape = results[names[0]].x_adv.shape
    for name in names[1:]:
        if results[name].x_adv.shape != shape:
            raise ValueError(f"result {name!r} has x_adv of shape {tuple(results[name].x_adv.shape)}, expected {shape}")
    x_adv = results[names[-1]].x_adv.clone()
    success = torch.zeros_like(results[names[0]].success)
    for name in reversed(names):
        hit = results[name].success
        x_adv[hit] = results[name].x_adv[hit]
        success = success | hit
    return AttackResult(x_adv=x_adv, success=success, success_by={name: results[name].success for name in names})
