"""DiffPure's original purifier (spec §6): one-shot discrete noising, then the reverse VP-SDE by Euler–Maruyama.

Per sample with integer t:

    x = sqrt(ᾱ[t−1])·x_s + sqrt(1 − ᾱ[t−1])·ε                      (discrete ᾱ, as DiffPure)
    for τ = t/1000, t/1000 − dt, …  down to t_end = 1e-5 (the last step shorter, Δ = min(dt, τ − t_end)):
        x ← x + [½β(τ)·x + β(τ)·s(x, τ)]·Δ + sqrt(β(τ)·Δ)·z,     s = −ε̂(x, label(τ))/σ(τ)

With dt = 1e-3 a sample takes t steps and is active from global time t/1000 on (active-only, engine.py). The
network label is 999·τ ("continuous", score_sde NCSN++) or floor(1000·τ) ("discrete", the ImageNet ADM; the
score still uses the continuous σ). `purify_grad` with num_steps = n uses n equal steps over [t_end, t/1000].
t = 0 behaves as t = 1. Noise of step p (counted from the end) uses the key (p, stage, draw).
"""

from __future__ import annotations

import math

import torch
from torch import nn

import ssni_kernels
from ssni.models.interface import LABEL_DTYPE
from ssni.purify.base import Purifier, noise_step
from ssni.purify.ddpm import inject, resolve_alphas_cumprod
from ssni.purify.engine import run_active
from ssni.schedules import NUM_TRAIN_STEPS, VP_BETA_MAX, VP_BETA_MIN

__all__ = ["SDEPurifier"]

LABELS = ("continuous", "discrete")


class SDEPurifier(Purifier):
    """DiffPure's SDE purification with per-sample t.

    model: ε-network; t_star: constant t*; dt: Euler step (1e-3); t_end: final time (1e-5); grad_num_steps:
    surrogate steps of `purify_grad` (None: the defence grid); label: "continuous" (999·τ) or "discrete"
    (floor(1000·τ)); alphas_cumprod: the discrete ᾱ of the one-shot noising (default §1).
    """

    def __init__(
        self,
        model: nn.Module,
        t_star: int = 100,
        dt: float = 1e-3,
        t_end: float = 1e-5,
        grad_num_steps: int | None = None,
        label: str = "continuous",
        alphas_cumprod: torch.Tensor | None = None,
        beta_min: float = VP_BETA_MIN,
        beta_max: float = VP_BETA_MAX,
        checkpoint: bool = True,
    ):
        super().__init__(model, checkpoint)
        if isinstance(t_star, bool) or not isinstance(t_star, int) or not 1 <= t_star <= NUM_TRAIN_STEPS:
            raise ValueError(f"t_star must be an int in [1, {NUM_TRAIN_STEPS}], got {t_star!r}")
        if not (0 < t_end < 1e-3 and 0 < dt <= 1):
            raise ValueError(f"need 0 < t_end < 1e-3 and 0 < dt <= 1, got t_end={t_end!r}, dt={dt!r}")
        if grad_num_steps is not None and (not isinstance(grad_num_steps, int) or grad_num_steps < 1):
            raise ValueError(f"grad_num_steps must be None or an int >= 1, got {grad_num_steps!r}")
        if label not in LABELS:
            raise ValueError(f"label must be one of {LABELS}, got {label!r}")
        self.t_star = t_star
        self.dt = float(dt)
        self.t_end = float(t_end)
        self.grad_num_steps = grad_num_steps
        self.label = label
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)
        self.alphas_cumprod = resolve_alphas_cumprod(alphas_cumprod)

    def time_grid(self, t: torch.Tensor, num_steps: int | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-sample Euler grid, indexed from the end: (times [B, L], steps Δ [B, L], lengths [B]), float64.

        Step p of sample b runs from times[b, p] to times[b, p] − Δ[b, p]; entries p ≥ lengths[b] are padding.
        """
        start = t.clamp_min(1).to(torch.float64) / NUM_TRAIN_STEPS
        span = start - self.t_end
        if num_steps is None:
            lengths = torch.ceil(span / self.dt - 1e-9).to(torch.int64)
            h = torch.full_like(start, self.dt)
        else:
            if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
                raise ValueError(f"num_steps must be None or an int >= 1, got {num_steps!r}")
            lengths = torch.full_like(t, num_steps)
            h = span / num_steps
        l_max = int(lengths.max())
        p = torch.arange(l_max, dtype=torch.float64, device=t.device)[None, :]
        k = lengths[:, None].to(torch.float64) - 1 - p  # step number from the start
        times = start[:, None] - k * h[:, None]
        steps = torch.minimum(h[:, None].expand_as(times), times - self.t_end)
        valid = p < lengths[:, None]
        return torch.where(valid, times, 1.0), torch.where(valid, steps, 0.0), lengths

    def network_labels(self, tau: torch.Tensor) -> torch.Tensor:
        if self.label == "continuous":
            return ((NUM_TRAIN_STEPS - 1) * tau).to(LABEL_DTYPE)
        # The guard keeps float64 rounding of the grid (e.g. 1000·(0.1 − 0.001) = 98.99999999999999) on the index.
        return torch.floor(NUM_TRAIN_STEPS * tau + 1e-6).to(LABEL_DTYPE)

    def _purify(self, x_s, t, *, seed, sample_ids, draw, grad, num_steps, stage: int = 0):
        if num_steps is None and grad:
            num_steps = self.grad_num_steps
        x = inject(x_s, t, self.alphas_cumprod, seed=seed, sample_ids=sample_ids, draw=draw, stage=stage)
        times, steps, lengths = self.time_grid(t, num_steps)
        shared = self._shared_steps(steps, lengths)

        def step(xk: torch.Tensor, p: int, rows: torch.Tensor) -> torch.Tensor:
            tau, ids = times[rows, p], sample_ids[rows]
            eps = self.model(xk, self.network_labels(tau))
            key = noise_step(p, stage, draw)
            if shared[p] is not None:
                return self._sde_step(xk, eps, tau, shared[p], seed, ids, key)
            # vp_sde_step takes one Δ per call: group the active rows by their Δ.
            delta = steps[rows, p]
            out = torch.zeros_like(xk)
            for d in torch.unique(delta).tolist():
                g = (delta == d).nonzero().flatten()
                out = out.index_copy(0, g, self._sde_step(xk[g], eps[g], tau[g], d, seed, ids[g], key))
            return out

        return run_active(x, lengths, step, counter=self.counter, grad=grad, checkpoint=self.checkpoint)

    @staticmethod
    def _shared_steps(steps: torch.Tensor, lengths: torch.Tensor) -> list[float | None]:
        """Per round p: the Δ all active samples share, or None when it differs (one host sync, up front)."""
        steps, lengths = steps.cpu(), lengths.cpu()
        shared = []
        for p in range(steps.shape[1]):
            d = steps[lengths > p, p]
            shared.append(float(d[0]) if bool((d == d[0]).all()) else None)
        return shared

    def _sde_step(self, x, eps, tau, delta, seed, ids, key):
        if not math.isfinite(delta) or delta <= 0:
            raise ValueError(f"non-positive SDE step {delta!r} (t_end too close to t/1000?)")
        return ssni_kernels.vp_sde_step(
            x, eps, tau, delta, seed=seed, sample_ids=ids, step=key, beta_min=self.beta_min, beta_max=self.beta_max
        )
