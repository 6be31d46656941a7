"""APGD-CE / APGD-DLR with EOT and APGD-T (Croce & Hein, ICML 2020), step for step as fra31/auto-attack.

APGD, per sample, from x⁽⁰⁾ (a random point of the ball, or x) with step η = 2ε:

    z⁽ᵏ⁺¹⁾ = Π( x⁽ᵏ⁾ + η·d(g⁽ᵏ⁾) )                                   d = sign (Linf), g/||g||_2 (L2)
    x⁽ᵏ⁺¹⁾ = Π( x⁽ᵏ⁾ + α(z⁽ᵏ⁺¹⁾ − x⁽ᵏ⁾) + (1 − α)(x⁽ᵏ⁾ − x⁽ᵏ⁻¹⁾) )     α = 1 at k = 0, then 0.75

with Π the projection onto the ε-ball ∩ [0, 1] and g the EOT average of the loss gradients. At the checkpoints
w_j (`apgd_checkpoints`) the step halves, and the iterate restarts from the best point so far, for every sample
where either (1) the loss went up in at most ρ·(w_j − w_{j−1}) of the iterations since w_{j−1} (ρ = 0.75), or
(2) the step was not halved at w_{j−1} and the best loss did not improve since then. As in AutoAttack's
`autopgd_base.py`: rule (2) does not apply at the first checkpoint (its "halved last time" flags start true), and
the first window's first comparison is the loss after the first step against 0 (AutoAttack compares with an
unwritten, zero entry of its loss history), not against the loss at the start point.

Differences from AutoAttack, by design:
- Stochastic defences: the loss that drives the step-size rule is the mean over the EOT draws, and an iterate
  counts as misclassified when the mean of the draws' logits is (AutoAttack uses the last draw for both); with
  EOT = 1 the two coincide.
- The result for a sample is its last misclassified iterate, else its highest-loss iterate (AutoAttack returns
  the start point x). Whether it finally fools the defence is judged by `model.logits` (the evaluation seed).
- Random starts come from the Philox stream keyed on (seed, sample id) (batch-invariant), not torch.rand.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from ssni.attacks.defended import DefendedModel, eot_gradient
from ssni.attacks.losses import LOSSES, dlr_targeted
from ssni.attacks.pgd_eot import AttackResult
from ssni.attacks.runs import attack_in_sequence, ranked_targets
from ssni.attacks.threat import (
    Norm,
    ascent_direction,
    check_attack_inputs,
    check_positive_int,
    check_radius,
    per_sample,
    project,
    random_start,
    require_eps,
)

__all__ = ["apgd", "apgd_checkpoints", "apgd_targeted"]


def apgd_checkpoints(iterations: int) -> list[int]:
    """Iterations after which APGD reviews the step size: p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} −
    0.03, 0.06), in AutoAttack's integer form (windows ⌊0.22N⌋, shrinking by ⌊0.03N⌋ down to ⌊0.06N⌋, each ≥ 1).

    >>> apgd_checkpoints(100)
    [22, 41, 57, 70, 80, 87, 93, 99]
    """
    window = max(int(0.22 * iterations), 1)
    shrink = max(int(0.03 * iterations), 1)
    smallest = max(int(0.06 * iterations), 1)
    points, at = [], window
    while at <= iterations:
        points.append(at)
        window = max(window - shrink, smallest)
        at += window
    return points


def _check_apgd_options(iterations: int, eot: int, rho: float, momentum: float) -> None:
    check_positive_int(iterations, "iterations")
    check_positive_int(eot, "eot")
    check_radius(rho, "rho", allow_zero=False)
    if not 0.0 < momentum <= 1.0:
        raise ValueError(f"momentum must lie in (0, 1], got {momentum}")


def _apgd_run(
    model: DefendedModel,
    x: Tensor,
    y: Tensor,
    sample_ids: Tensor,
    x_start: Tensor,
    *,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    norm: Norm,
    eps: float,
    iterations: int,
    eot: int,
    rho: float,
    momentum: float,
    first_iteration: int,
    on_iteration: Callable[[int], None] | None,
) -> Tensor:
    """One APGD run from x_start; returns the per-sample result point (see the module docstring)."""
    checkpoints = set(apgd_checkpoints(iterations))

    def evaluate(point: Tensor, i: int):
        with torch.no_grad():
            surrogate = model.surrogate(point, sample_ids=sample_ids, iteration=first_iteration + i)
        return eot_gradient(surrogate, point, y, loss_fn, eot=eot, iteration=first_iteration + i)

    def pick(mask: Tensor, a: Tensor, b: Tensor) -> Tensor:
        return torch.where(per_sample(mask, a), a, b)

    x_adv = x_prev = x_start
    step = x.new_full((x.shape[0],), 2.0 * eps)
    ev = evaluate(x_adv, 0)
    grad = ev.grad
    fooled = ev.logits.argmax(dim=1) != y
    x_fooled = x_adv
    x_best, grad_best, loss_best = x_adv, grad, ev.loss
    # AutoAttack's first window compares the first step's loss with a zero entry, not with the start loss.
    loss_prev = torch.zeros_like(ev.loss)
    increases = torch.zeros_like(ev.loss)
    halved_last = torch.ones_like(fooled)  # no "stalled" halving at the first checkpoint
    loss_best_at_check = loss_best
    window_start = 0
    for i in range(iterations):
        z = project(x_adv + per_sample(step, x) * ascent_direction(grad, norm), x, norm, eps)
        alpha = 1.0 if i == 0 else momentum
        x_next = project(x_adv + alpha * (z - x_adv) + (1.0 - alpha) * (x_adv - x_prev), x, norm, eps)
        x_prev, x_adv = x_adv, x_next

        ev = evaluate(x_adv, i + 1)
        grad = ev.grad
        now_fooled = ev.logits.argmax(dim=1) != y
        x_fooled = pick(now_fooled, x_adv, x_fooled)
        fooled = fooled | now_fooled
        increases = increases + (ev.loss > loss_prev).to(increases.dtype)
        loss_prev = ev.loss
        improved = ev.loss > loss_best
        x_best, grad_best = pick(improved, x_adv, x_best), pick(improved, grad, grad_best)
        loss_best = torch.where(improved, ev.loss, loss_best)

        if i + 1 in checkpoints:
            oscillating = increases <= rho * (i + 1 - window_start)
            stalled = ~halved_last & (loss_best <= loss_best_at_check)
            halve = oscillating | stalled
            step = torch.where(halve, step / 2.0, step)
            x_adv, grad = pick(halve, x_best, x_adv), pick(halve, grad_best, grad)
            halved_last, loss_best_at_check, window_start = halve, loss_best, i + 1
            increases = torch.zeros_like(increases)
        if on_iteration is not None:
            on_iteration(i)
    return pick(fooled, x_fooled, x_best)


def apgd(
    model: DefendedModel,
    x: Tensor,
    y: Tensor,
    *,
    sample_ids: Tensor,
    loss: Literal["ce", "dlr"] = "ce",
    norm: Norm = "Linf",
    eps: float,
    iterations: int = 100,
    eot: int = 20,
    restarts: int = 1,
    rho: float = 0.75,
    momentum: float = 0.75,
    random_init: bool = True,
    seed: int = 0,
    first_iteration: int = 0,
    check_success: bool = False,
    on_iteration: Callable[[int], None] | None = None,
) -> AttackResult:
    """APGD-CE (loss="ce") or APGD-DLR (loss="dlr") with EOT against `model`.

    x [B, ...] in [0, 1], y [B] int64, sample_ids [B]; eps: the radius, no default (it depends on the data).
    restarts: > 1 re-runs, from a new random start, on the samples the previous runs did not fool (judged by
      `model.logits`); Croce & Hein's default for randomised defences is 1.
    seed: keys the random starts (`derive_seed(seed, STREAM_RANDOM_START, restart)` with the sample ids).
    first_iteration: offsets the iteration numbers passed to the model (EOT draws, adaptive score seeds), so
      composed attacks draw fresh noise; run r uses first_iteration + r·(iterations + 1) onwards.
    on_iteration: called with the iteration index of the current run after each iteration.
    """
    eps = require_eps(norm, eps, "APGD")
    check_attack_inputs(x, y, sample_ids, norm=norm, eps=eps)
    _check_apgd_options(iterations, eot, rho, momentum)
    check_positive_int(restarts, "restarts")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {tuple(LOSSES)}, got {loss!r}")
    if restarts > 1 and not random_init:
        raise ValueError("restarts > 1 needs random_init=True (every restart would repeat the same run)")
    x = x.detach()
    settings = dict(norm=norm, eps=eps, iterations=iterations, eot=eot, rho=rho, momentum=momentum)

    def run(r: int, todo: Tensor) -> Tensor:
        xs, ids = x[todo], sample_ids[todo]
        x_start = random_start(xs, norm, eps, seed=seed, sample_ids=ids, restart=r) if random_init else xs
        return _apgd_run(
            model,
            xs,
            y[todo],
            ids,
            x_start,
            loss_fn=LOSSES[loss],
            first_iteration=first_iteration + r * (iterations + 1),
            on_iteration=on_iteration,
            **settings,
        )

    if restarts == 1 and not check_success:
        return AttackResult(x_adv=run(0, torch.arange(x.shape[0], device=x.device)))
    stages = [(f"restart {r}", lambda todo, r=r: run(r, todo)) for r in range(restarts)]
    result = attack_in_sequence(model, x, y, sample_ids, stages)
    return AttackResult(x_adv=result.x_adv, success=result.success if check_success else None)


def apgd_targeted(
    model: DefendedModel,
    x: Tensor,
    y: Tensor,
    *,
    sample_ids: Tensor,
    norm: Norm = "Linf",
    eps: float,
    iterations: int = 100,
    target_classes: int = 9,
    eot: int = 1,
    rho: float = 0.75,
    momentum: float = 0.75,
    seed: int = 0,
    first_iteration: int = 0,
    on_iteration: Callable[[int], None] | None = None,
) -> AttackResult:
    """APGD-T: APGD on the targeted DLR loss (`dlr_targeted`), once per target class, as AutoAttack's
    `APGDAttack_targeted` with one restart.

    Target j = 0 … target_classes−1 is the class ranked j+2 by the surrogate's logits at the clean x
    (`ranked_targets`, draw first_iteration); run j starts from its own random point (restart index j of `seed`)
    and attacks only the samples runs 0 … j−1 did not fool. A run succeeds on any misclassification (not only
    the target), judged by `model.logits`. Needs ≥ 4 classes and target_classes ≤ classes − 1.

    Returns `AttackResult` with success [B] and x_adv in the ball (see `attack_in_sequence`); run j uses the
    iteration numbers first_iteration + 1 + j·(iterations + 1) onwards.
    """
    eps = require_eps(norm, eps, "APGD-T")
    check_attack_inputs(x, y, sample_ids, norm=norm, eps=eps)
    _check_apgd_options(iterations, eot, rho, momentum)
    x = x.detach()
    settings = dict(norm=norm, eps=eps, iterations=iterations, eot=eot, rho=rho, momentum=momentum)
    targets = ranked_targets(model, x, sample_ids=sample_ids, count=target_classes, iteration=first_iteration)

    def run(j: int, todo: Tensor) -> Tensor:
        xs, ids, target = x[todo], sample_ids[todo], targets[todo, j]
        return _apgd_run(
            model,
            xs,
            y[todo],
            ids,
            random_start(xs, norm, eps, seed=seed, sample_ids=ids, restart=j),
            loss_fn=lambda logits, labels: dlr_targeted(logits, labels, target),
            first_iteration=first_iteration + 1 + j * (iterations + 1),
            on_iteration=on_iteration,
            **settings,
        )

    stages = [(f"target {j + 2}", lambda todo, j=j: run(j, todo)) for j in range(target_classes)]
    result = attack_in_sequence(model, x, y, sample_ids, stages)
    return AttackResult(x_adv=result.x_adv, success=result.success)
