"""FAB-T: the targeted Fast Adaptive Boundary attack (Croce & Hein, ICML 2020) as AutoAttack's "standard" runs it.

FAB looks for the smallest perturbation that changes the prediction. For target class t of a sample with label y,
each iteration linearises f_t − f_y at the iterate x⁽ᵏ⁾ into the hyperplane H = {z : ⟨w, z⟩ = b} (w = ∇(f_t − f_y),
b = ⟨w, x⁽ᵏ⁾⟩ − (f_t − f_y)(x⁽ᵏ⁾)), projects x⁽ᵏ⁾ and the clean x onto H ∩ [0, 1]^d in the attack's norm
(`hyperplane_step`: steps d₁, d₂), and moves to

    x⁽ᵏ⁺¹⁾ = clamp( (1 − α)(x⁽ᵏ⁾ + η d₁) + α(x + η d₂), 0, 1 ),   α = min(‖d₁‖ / (‖d₁‖ + ‖d₂‖), α_max)

(η = 1.05 overshoot, α_max = 0.1). When x⁽ᵏ⁺¹⁾ is misclassified it is kept if it is the closest so far, and the
iterate steps back towards x: x⁽ᵏ⁺¹⁾ ← x + β(x⁽ᵏ⁺¹⁾ − x) (β = 0.9). A sample is broken when its closest
misclassified point lies within ε of x. AutoAttack "standard" runs one restart (from x itself, no random start)
per target class, the 2nd … 10th ranked classes, each on the samples the earlier targets did not break.

Against a `DefendedModel` the gradient and the misclassification checks use the surrogate with fresh draws
(iteration numbers below); the final judgement is `model.logits`. The projection is solved exactly, by sorting
kinks, rather than by AutoAttack's bisection: same solution, different rounding.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ssni.attacks.defended import DefendedModel, surrogate_logits
from ssni.attacks.pgd_eot import AttackResult
from ssni.attacks.runs import attack_in_sequence, ranked_targets
from ssni.attacks.threat import (
    Norm,
    check_attack_inputs,
    check_positive_int,
    check_radius,
    lp_norm,
    per_sample,
    require_eps,
)

__all__ = ["fab_targeted", "hyperplane_step"]


def hyperplane_step(points: Tensor, w: Tensor, b: Tensor, norm: Norm) -> Tensor:
    """The smallest step d (‖·‖_∞ or ‖·‖_2) with ⟨w, p + d⟩ = b and p + d ∈ [0, 1]^n, per row.

    points, w [B, n], b [B] → d [B, n]. Where the box keeps the plane out of reach, the step that gets closest
    (every coordinate with w_i ≠ 0 at the bound that moves ⟨w, ·⟩ towards b). Coordinates with w_i = 0 stay.

    With c = ⟨w, p⟩ − b, coordinate i moves by d_i = toward_i·m_i(λ), toward_i = −sign(c)·sign(w_i), where
    m_i(λ) = min(λ·q_i, r_i), r_i is its room to the bound in that direction and q_i = 1 (Linf: all coordinates
    move alike) or |w_i| (L2: d ∝ −w until a coordinate hits its bound). The progress Σ|w_i|·m_i(λ) is piecewise
    linear and non-decreasing in λ with kinks r_i/q_i; λ solves progress(λ) = |c| on the segment that reaches it.
    """
    c = (w * points).sum(dim=1) - b
    toward = torch.where(c >= 0, -1.0, 1.0).to(w.dtype)[:, None] * w.sign()
    room = torch.where(toward > 0, 1.0 - points, points)
    weight = w.abs()
    rate = torch.ones_like(weight) if norm == "Linf" else weight
    moves = weight > 0
    kink = torch.where(moves, room / torch.where(moves, rate, 1.0), torch.inf)
    kink, order = kink.sort(dim=1)
    capped_gain = (weight * room).gather(1, order).cumsum(dim=1)  # Σ over the coordinates at their bound at λ = kink_k
    slope = (weight * rate).gather(1, order)
    slope_after = torch.cat([slope.flip(1).cumsum(1).flip(1)[:, 1:], torch.zeros_like(slope[:, :1])], dim=1)
    progress = capped_gain + torch.where(slope_after > 0, kink * slope_after, 0.0)
    need = c.abs()
    k = (progress < need[:, None]).sum(dim=1, keepdim=True)  # first kink that reaches |c|
    reachable = k < points.shape[1]
    k_prev = (k - 1).clamp(min=0)
    gain_before = torch.where(k > 0, capped_gain.gather(1, k_prev), 0.0)
    slope_before = torch.where(k > 0, slope_after.gather(1, k_prev), slope.sum(dim=1, keepdim=True))
    lam = torch.where(reachable, (need[:, None] - gain_before) / slope_before.clamp_min(1e-30), torch.inf)
    return toward * torch.where(moves, torch.minimum(lam * rate, room), 0.0)


def _fab_run(
    model: DefendedModel,
    x: Tensor,
    y: Tensor,
    target: Tensor,
    sample_ids: Tensor,
    *,
    norm: Norm,
    eps: float,
    iterations: int,
    alpha_max: float,
    eta: float,
    beta: float,
    first_iteration: int,
    on_iteration: Callable[[int], None] | None,
) -> Tensor:
    """One targeted FAB run from x; returns the closest misclassified point where it lies within ε, else x.
    Iteration i takes its gradient at first_iteration + 2i and checks the new iterate at first_iteration + 2i + 1."""
    rows = torch.arange(x.shape[0], device=x.device)
    x0 = x.flatten(1)
    x1 = x
    closest = x
    distance = torch.full((x.shape[0],), torch.inf, device=x.device)
    for i in range(iterations):
        at = first_iteration + 2 * i
        with torch.no_grad():
            surrogate = model.surrogate(x1, sample_ids=sample_ids, iteration=at)
        x_var = x1.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = surrogate(x_var, draw=at)
            gap = logits[rows, target] - logits[rows, y]  # f_t − f_y, ≥ 0 once the target wins
            (w,) = torch.autograd.grad(gap.sum(), x_var)
        if not (torch.isfinite(gap).all() and torch.isfinite(w).all()):
            raise FloatingPointError(f"non-finite logits or gradient from the defended model at iteration {at}")
        w = w.flatten(1)
        b = (w * x1.flatten(1)).sum(dim=1) - gap.detach()
        d1 = hyperplane_step(x1.flatten(1), w, b, norm)
        d2 = hyperplane_step(x0, w, b, norm)
        a1 = lp_norm(d1, norm).clamp_min(1e-8)
        a2 = lp_norm(d2, norm).clamp_min(1e-8)
        alpha = per_sample((a1 / (a1 + a2)).clamp(0.0, alpha_max), x)
        x1 = ((x1 + eta * d1.view_as(x)) * (1 - alpha) + (x + eta * d2.view_as(x)) * alpha).clamp(0.0, 1.0)

        fooled = surrogate_logits(model, x1, sample_ids=sample_ids, iteration=at + 1).argmax(dim=1) != y
        to_x = lp_norm(x1 - x, norm)
        closer = fooled & (to_x < distance)
        closest = torch.where(per_sample(closer, x), x1, closest)
        distance = torch.where(closer, to_x, distance)
        x1 = torch.where(per_sample(fooled, x), x + (x1 - x) * beta, x1)
        if on_iteration is not None:
            on_iteration(i)
    return torch.where(per_sample(distance <= eps, x), closest, x)


def fab_targeted(
    model: DefendedModel,
    x: Tensor,
    y: Tensor,
    *,
    sample_ids: Tensor,
    norm: Norm = "Linf",
    eps: float,
    iterations: int = 100,
    target_classes: int = 9,
    alpha_max: float = 0.1,
    eta: float = 1.05,
    beta: float = 0.9,
    first_iteration: int = 0,
    on_iteration: Callable[[int], None] | None = None,
) -> AttackResult:
    """FAB-T against `model` (see the module docstring): x [B, ...] in [0, 1], y [B] int64, sample_ids [B];
    eps: the radius, no default (it depends on the data). Deterministic given the model (no random start).

    Target j is the class ranked j+2 by the surrogate's logits at x (`ranked_targets`, draw first_iteration); run
    j uses the iteration numbers first_iteration + 1 + 2·j·iterations onwards. Returns `AttackResult` with
    success [B] (judged by `model.logits`) and x_adv in the ball (x where no run broke the sample).
    """
    eps = require_eps(norm, eps, "FAB-T")
    check_attack_inputs(x, y, sample_ids, norm=norm, eps=eps)
    check_positive_int(iterations, "iterations")
    if not 0.0 <= alpha_max <= 1.0:
        raise ValueError(f"alpha_max must lie in [0, 1], got {alpha_max}")
    check_radius(eta, "eta", allow_zero=False)
    if not 0.0 < beta <= 1.0:
        raise ValueError(f"beta must lie in (0, 1], got {beta}")
    x = x.detach()
    targets = ranked_targets(model, x, sample_ids=sample_ids, count=target_classes, iteration=first_iteration)

    def run(j: int, todo: Tensor) -> Tensor:
        return _fab_run(
            model,
            x[todo],
            y[todo],
            targets[todo, j],
            sample_ids[todo],
            norm=norm,
            eps=eps,
            iterations=iterations,
            alpha_max=alpha_max,
            eta=eta,
            beta=beta,
            first_iteration=first_iteration + 1 + 2 * j * iterations,
            on_iteration=on_iteration,
        )

    stages = [(f"target {j + 2}", lambda todo, j=j: run(j, todo)) for j in range(target_classes)]
    result = attack_in_sequence(model, x, y, sample_ids, stages)
    return AttackResult(x_adv=result.x_adv, success=result.success)
