"""Noise schedules (spec §1, §5): the discrete DDPM schedule and the continuous VP-SDE, in float64, in one place.

The VP-SDE formulas live in `ssni_kernels.reference` (the ops use them) and are re-exported here, so the
package has exactly one definition of each.

- Discrete: T = 1000, β = linspace(1e-4, 2e-2, T), ᾱ_i = Π_{j≤i}(1 − β_j) (index 0..T−1), ᾱ_{−1} := 1.
- Continuous: β(t) = β0 + t(β1 − β0), log m(t) = −¼t²(β1 − β0) − ½tβ0, σ(t) = sqrt(1 − m(t)²).
- `step_sequence(t, n)`: the §5 reverse schedule [ceil(k·t/n) − 1 for k = 1..n] clamped at 0.
"""

from __future__ import annotations

import math

import torch

from ssni_kernels.reference import VP_BETA_MAX, VP_BETA_MIN, vp_beta, vp_log_mean_coef, vp_sigma

__all__ = [
    "NUM_TRAIN_STEPS",
    "VP_BETA_MIN",
    "VP_BETA_MAX",
    "ddpm_betas",
    "ddpm_alphas_cumprod",
    "alphas_cumprod_padded",
    "posterior_variance",
    "vp_beta",
    "vp_log_mean_coef",
    "vp_mean_coef",
    "vp_sigma",
    "eps_levels",
    "step_sequence",
    "effective_indices",
]

NUM_TRAIN_STEPS = 1000


def ddpm_betas(num_steps: int = NUM_TRAIN_STEPS, beta_start: float = 1e-4, beta_end: float = 2e-2) -> torch.Tensor:
    """β = linspace(beta_start, beta_end, num_steps), float64 [num_steps]."""
    return torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)


def ddpm_alphas_cumprod(
    num_steps: int = NUM_TRAIN_STEPS, beta_start: float = 1e-4, beta_end: float = 2e-2
) -> torch.Tensor:
    """ᾱ_i = Π_{j≤i}(1 − β_j), float64 [num_steps] (index i = 0..num_steps−1)."""
    return torch.cumprod(1.0 - ddpm_betas(num_steps, beta_start, beta_end), dim=0)


def alphas_cumprod_padded(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """[1, ᾱ_0, …, ᾱ_{T−1}] (float64 [T+1]) so that ᾱ_i = padded[i + 1] also for i = −1 (ᾱ_{−1} := 1)."""
    ac = alphas_cumprod.to(torch.float64)
    return torch.cat([ac.new_ones(1), ac])


def posterior_variance(a: torch.Tensor, a_next: torch.Tensor, eta: float) -> torch.Tensor:
    """c1² = η²·(1 − a/a')(1 − a')/(1 − a): the variance of the §5 step's noise (β̃ for η = 1), ≥ 0.

    The same c1 as inside `ssni_kernels.reverse_step`; needed outside the op only by guidance (GDMP, §7),
    which adds Σ_t·s·∇ to the posterior mean.
    """
    a = a.to(torch.float64)
    a_next = a_next.to(torch.float64)
    return (eta**2 * (1 - a / a_next) * (1 - a_next) / (1 - a)).clamp_min(0)


def vp_mean_coef(t, beta_min: float = VP_BETA_MIN, beta_max: float = VP_BETA_MAX):
    """m(t) = exp(log m(t)), the mean coefficient of the VP-SDE marginal."""
    log_m = vp_log_mean_coef(t, beta_min, beta_max)
    return torch.exp(log_m) if isinstance(log_m, torch.Tensor) else math.exp(log_m)


def eps_levels(num_levels: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The §2 score-norm levels t_k = k/1000, k = 1..K: returns (t, m(t), σ(t)), each float64 [K]."""
    if not isinstance(num_levels, int) or isinstance(num_levels, bool) or not 1 <= num_levels <= NUM_TRAIN_STEPS:
        raise ValueError(f"num_levels must be an int in [1, {NUM_TRAIN_STEPS}], got {num_levels!r}")
    t = torch.arange(1, num_levels + 1, dtype=torch.float64) / NUM_TRAIN_STEPS
    return t, vp_mean_coef(t), vp_sigma(t)


def _check_num_steps(n) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n (number of reverse steps) must be an int >= 1, got {n!r}")


def step_sequence(t, n: int):
    """The §5 reverse schedule: [ceil(k·t/n) − 1 for k = 1..n], clamped at 0, ascending (last entry t − 1).

    t: an int ≥ 0 (returns list[int] of length n) or an int64 tensor [B] (returns int64 [B, n]).
    Integer arithmetic (ceil(k·t/n) = (k·t + n − 1) // n), so it is exact. t = 0 gives the same schedule as
    t = 1 (a single step from index 0). A repeated entry is a no-op step, so min(n, max(t, 1)) steps do work.
    """
    _check_num_steps(n)
    if isinstance(t, torch.Tensor):
        if t.dtype != torch.int64:
            raise TypeError(f"t must be an int64 tensor, got {t.dtype}")
        if (t < 0).any():
            raise ValueError("t must be >= 0")
        k = torch.arange(1, n + 1, dtype=torch.int64, device=t.device)
        return ((k[None, :] * t[:, None] + n - 1) // n - 1).clamp_min(0)
    if not isinstance(t, int) or isinstance(t, bool) or t < 0:
        raise ValueError(f"t must be an int >= 0 or an int64 tensor, got {t!r}")
    return [max((k * t + n - 1) // n - 1, 0) for k in range(1, n + 1)]


def effective_indices(t: torch.Tensor, n: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct indices of `step_sequence(t, n)` per sample: the steps that do work.

    Returns (indices int64 [B, L_max] ascending, padded with 0; lengths int64 [B]) with
    L_b = min(n, max(t_b, 1)). Step p (0-based from the end of the walk) of sample b goes from index
    indices[b, p] to indices[b, p − 1] (−1 for p = 0). n = None means "every index once" (n ≥ t): then
    indices[b, p] = p, so samples at the same p share the diffusion index.
    """
    t1 = t.clamp_min(1)
    lengths = t1 if n is None else torch.minimum(t1, torch.full_like(t1, n))
    l_max = int(lengths.max()) if lengths.numel() else 0
    p = torch.arange(l_max, dtype=torch.int64, device=t.device)[None, :]
    if n is None:
        idx = p.expand(t.shape[0], -1).clone()
    else:
        _check_num_steps(n)
        # n ≥ t: every index 0..t−1 appears; n < t: the n entries are distinct, ceil((p+1)·t/n) − 1.
        sparse = ((p + 1) * t1[:, None] + n - 1) // n - 1
        idx = torch.where((t1 <= n)[:, None], p, sparse)
    idx = torch.where(p < lengths[:, None], idx, torch.zeros_like(idx))
    return idx, lengths
