"""PGD-EOT (spec §8): sign (Linf) or normalised-gradient (L2) ascent on the EOT-averaged summed CE.

Per iteration k = 0..iterations−1, starting at x_adv = x, or with `random_start` at a point drawn uniformly
from the ε-ball ∩ [0, 1] (Madry et al.'s start; `ssni.attacks.threat.uniform_in_ball`, keyed on `seed`):

    f   = model.surrogate(x_adv, iteration=k)                    # adaptive defences fix their t here
    g   = (1/EOT) Σ_j ∇ Σ_b CE(f(x_adv, draw=k·EOT+j), y)_b       # average of EOT gradients
    x_adv ← clamp( Π_ε( x_adv + α·d(g) ), 0, 1 )                 # d = sign (Linf), g/||g||_2 (L2)

ε has no default: it depends on the data (the protocol's 8/255 Linf and 0.5 L2 are CIFAR-10's, 4/255 Linf
ImageNet's, 0.3 Linf the usual MNIST radius), so a call without it is an error rather than a silent CIFAR-10
budget. The other defaults are the protocol's: 200 iterations, EOT 20, α = 0.007. `l2_step="sign"` reproduces
the reference code's L2 attack (sign step, then the L2 projection; docs/algorithm.md). Every iteration runs (no
early stop: the defence is stochastic).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from ssni.attacks.defended import DefendedModel, SurrogateFn, eot_gradient
from ssni.attacks.losses import cross_entropy
from ssni.attacks.threat import (
    Norm,
    ascent_direction,
    check_attack_inputs,
    check_positive_int,
    check_radius,
    project,
    require_eps,
    uniform_in_ball,
)
from ssni.validate import check_seed

__all__ = ["AttackResult", "Objective", "misclassified", "pgd_ascent", "pgd_eot"]


@dataclass(frozen=True)
class AttackResult:
    """x_adv [B, ...] in the ε-ball ∩ [0, 1]; success [B] bool: the defence (its evaluation seed) misclassifies
    x_adv, or None when not checked; success_by: the same mask per component attack, for composed attacks."""

    x_adv: Tensor
    success: Tensor | None = None
    success_by: dict[str, Tensor] = field(default_factory=dict)


def misclassified(model: DefendedModel, x: Tensor, y: Tensor, sample_ids: Tensor) -> Tensor:
    """[B] bool: the defended prediction (no grad, the defence's own seed) differs from y."""
    return model.logits(x, sample_ids=sample_ids).argmax(dim=1) != y


#: objective(k, x_adv) -> (surrogate, per-sample loss) of iteration k, both evaluated by `eot_gradient`.
Objective = Callable[[int, Tensor], tuple[SurrogateFn, Callable[[Tensor, Tensor], Tensor]]]


def pgd_ascent(
    objective: Objective,
    x: Tensor,
    y: Tensor,
    *,
    sample_ids: Tensor,
    eps: float,
    norm: Norm = "Linf",
    iterations: int = 200,
    eot: int = 20,
    step_size: float = 0.007,
    l2_step: Literal["normalized", "sign"] = "normalized",
    random_start: bool = False,
    seed: int | None = None,
    on_iteration: Callable[[int], None] | None = None,
) -> Tensor:
    """The PGD-EOT loop of the module docstring with the per-iteration objective `objective` (called without
    gradient at the current iterate); returns x_adv. `pgd_eot` is this with CE on the model's surrogate; the
    score-aware attack (`ssni.attacks.score_aware`) changes the objective from iteration to iteration.
    random_start: start at a uniform point of the ball, keyed on (seed, sample id) (seed required then)."""
    eps = require_eps(norm, eps, "PGD-EOT")
    check_attack_inputs(x, y, sample_ids, norm=norm, eps=eps)
    check_positive_int(iterations, "iterations")
    check_positive_int(eot, "eot")
    check_radius(step_size, "step_size", allow_zero=False)
    if l2_step not in ("normalized", "sign"):
        raise ValueError(f"l2_step must be 'normalized' or 'sign', got {l2_step!r}")
    if not isinstance(random_start, bool):
        raise TypeError(f"random_start must be a bool, got {random_start!r}")
    if random_start and seed is None:
        raise ValueError("random_start=True needs seed (the start is keyed on (seed, sample id))")

    x = x.detach()
    if random_start:
        x_adv = uniform_in_ball(x, norm, eps, seed=check_seed(seed), sample_ids=sample_ids)
    else:
        x_adv = x.clone()
    for k in range(iterations):
        with torch.no_grad():
            surrogate, loss_fn = objective(k, x_adv)
        grad = eot_gradient(surrogate, x_adv, y, loss_fn, eot=eot, iteration=k).grad
        x_adv = project(x_adv + step_size * ascent_direction(grad, norm, l2_step=l2_step), x, norm, eps)
        if on_iteration is not None:
            on_iteration(k)
    return x_adv


def pgd_eot(
    model: DefendedModel,
    x: Tensor,
    y: Tensor,
    *,
    sample_ids: Tensor,
    eps: float,
    check_success: bool = False,
    **budget,
) -> AttackResult:
    """PGD-EOT against `model` from x [B, ...] in [0, 1] with labels y [B] (int64) and sample ids [B].

    budget: `pgd_ascent`'s eps (required: the radius of the threat ball in [0, 1] pixel units, e.g. 8/255 Linf
    or 0.5 L2 on CIFAR-10, 4/255 Linf on ImageNet, 0.3 Linf on MNIST), norm, iterations, eot, step_size,
    l2_step, random_start and seed (a uniform start in the ball, keyed on (seed, sample id)) and on_iteration
    (called with k after iteration k: progress bars). check_success: also evaluate the defence once on x_adv
    (`AttackResult.success`).
    """

    def objective(k: int, x_adv: Tensor):
        return model.surrogate(x_adv, sample_ids=sample_ids, iteration=k), cross_entropy

    x_adv = pgd_ascent(objective, x, y, sample_ids=sample_ids, eps=eps, **budget)
    success = misclassified(model, x_adv, y, sample_ids) if check_success else None
    return AttackResult(x_adv=x_adv, success=success)
