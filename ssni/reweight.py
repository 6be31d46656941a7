"""Reweighting a score norm to a per-sample timestep (spec §4).

With T = t* − 1 and bias b (default 5):
- SSNI-N (sigmoid): t = round( sigmoid((e − μ)/τ) · (T + b) ), range 0..T+b.
- SSNI-L (linear):  t = round( (e − e_min)/(e_max − e_min) · T + b ), range b..T+b.
Rounding is half to even (torch.round), computed in float64, returned as int64. Multi-stage hosts pass a tuple
of t* (one per stage); the same ratio is applied to each stage's T_i and the result is int64 [B, S].
`sigmoid_t_continuous` / `linear_t_continuous` are the same maps before rounding (float64, differentiable in e):
the score-aware attack differentiates through them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ssni.validate import check_int

__all__ = [
    "sigmoid_ratio",
    "linear_ratio",
    "sigmoid_t",
    "linear_t",
    "sigmoid_t_continuous",
    "linear_t_continuous",
    "round_t",
]


def _stars(t_star) -> tuple[torch.Tensor, bool]:
    stars = (t_star,) if isinstance(t_star, int) and not isinstance(t_star, bool) else tuple(t_star)
    if not stars:
        raise ValueError(f"t_star must be an int >= 1 or a sequence of them, got {t_star!r}")
    for s in stars:
        check_int("t_star", s, low=1)
    return torch.tensor(stars, dtype=torch.float64), isinstance(t_star, Sequence)


def _check_e(e) -> torch.Tensor:
    if not isinstance(e, torch.Tensor) or e.dim() != 1 or not e.is_floating_point():
        raise ValueError(f"e must be a floating tensor [B] of score norms, got {e!r:.80}")
    if not torch.isfinite(e).all():
        raise ValueError("e contains NaN or Inf")
    return e.to(torch.float64)


def sigmoid_ratio(e: torch.Tensor, mu: float, tau: float) -> torch.Tensor:
    """sigmoid((e − μ)/τ) in float64 [B]."""
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau!r}")
    return torch.sigmoid((_check_e(e) - float(mu)) / float(tau))


def linear_ratio(e: torch.Tensor, e_min: float, e_max: float) -> torch.Tensor:
    """(e − e_min)/(e_max − e_min) in float64 [B], clamped to [0, 1] (only bites with reference-only min/max)."""
    if not float(e_max) > float(e_min):
        raise ValueError(f"e_max must be > e_min, got e_min={e_min!r}, e_max={e_max!r}")
    return ((_check_e(e) - float(e_min)) / (float(e_max) - float(e_min))).clamp(0.0, 1.0)


def _per_stage(t: torch.Tensor, staged: bool) -> torch.Tensor:
    return t if staged else t[:, 0]


def sigmoid_t_continuous(e: torch.Tensor, mu: float, tau: float, t_star, bias: int = 5) -> torch.Tensor:
    """SSNI-N before rounding: sigmoid((e − μ)/τ)·(t* − 1 + b), float64 [B] (or [B, S] for a tuple of t*)."""
    check_int("bias", bias, low=0)
    stars, staged = _stars(t_star)
    r = sigmoid_ratio(e, mu, tau)
    return _per_stage(r[:, None] * (stars.to(r.device) - 1 + bias)[None, :], staged)


def linear_t_continuous(e: torch.Tensor, e_min: float, e_max: float, t_star, bias: int = 5) -> torch.Tensor:
    """SSNI-L before rounding: clamp((e − e_min)/(e_max − e_min), 0, 1)·(t* − 1) + b, float64 [B] (or [B, S])."""
    check_int("bias", bias, low=0)
    stars, staged = _stars(t_star)
    r = linear_ratio(e, e_min, e_max)
    return _per_stage(r[:, None] * (stars.to(r.device) - 1)[None, :] + bias, staged)


def round_t(t: torch.Tensor) -> torch.Tensor:
    """The defence's integer t from a continuous one: half to even (torch.round), int64, no gradient."""
    return torch.round(t.detach()).to(torch.int64)


def sigmoid_t(e: torch.Tensor, mu: float, tau: float, t_star, bias: int = 5) -> torch.Tensor:
    """SSNI-N: round(sigmoid((e − μ)/τ)·(t* − 1 + b)) as int64 [B] (or [B, S] for a tuple of t*)."""
    return round_t(sigmoid_t_continuous(e, mu, tau, t_star, bias))


def linear_t(e: torch.Tensor, e_min: float, e_max: float, t_star, bias: int = 5) -> torch.Tensor:
    """SSNI-L: round((e − e_min)/(e_max − e_min)·(t* − 1) + b) as int64 [B] (or [B, S] for a tuple of t*).

    e_min/e_max are the caller's choice (spec: over the reference set together with the current batch). Norms
    outside [e_min, e_max] (possible with reference-only min/max) are clamped, so t stays in b..t*−1+b.
    """
    return round_t(linear_t_continuous(e, e_min, e_max, t_star, bias))
