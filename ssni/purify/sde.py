"""DiffPure's original purifier (spec §6): one-shot discrete noising, then the reverse VP-SDE by Euler–Maruyama.

Per sample with integer t:

    x = sqrt(ᾱ[t−1])·x_s + sqrt(1 − ᾱ[t−1])·ε                      (discrete ᾱ, as DiffPure)
    for τ = t/1000, t/1000 − dt, …  down to t_end = 1e-5 (the last step shorter, Δ = min(dt, τ − t_end)):
        x ← x + [½β(τ)·x + β(τ)·s(x, τ)]·Δ + sqrt(β(τ)·Δ)·z,     s = −ε̂(x, label(τ))/σ(τ)

The plan's table holds (label, coef_a = τ, coef_b = Δ) per step. With dt = 1e-3 a sample takes t steps and is
active from global time t/1000 on (active-only, walks.py). The network label follows `network_labels`:
"continuous" 999·τ (score_sde NCSN++) or "discrete" floor(1000·τ) (the ImageNet ADM; the score still uses the
continuous σ). `purify_grad` with num_steps = n uses n equal steps over [t_end, t/1000]. t = 0 behaves as t = 1.
"""

from __future__ import annotations

import torch
from torch import nn

import ssni_kernels
from ssni.models.interface import network_labels
from ssni.purify.base import Purifier, Stage, noise_word
from ssni.purify.ddpm import _check_steps, _check_t_star, inject, resolve_alphas_cumprod
from ssni.purify.walks import Walks
from ssni.schedules import NUM_TRAIN_STEPS, VP_BETA_MAX, VP_BETA_MIN
from ssni.validate import check_choice

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
        grad_checkpoint: bool = True,
        resolution: int | None = None,
    ):
        super().__init__(model, grad_checkpoint, resolution)
        if not (0 < t_end < 1e-3 and 0 < dt <= 1):
            raise ValueError(f"need 0 < t_end < 1e-3 and 0 < dt <= 1, got t_end={t_end!r}, dt={dt!r}")
        self.t_star = _check_t_star(t_star)
        self.dt = float(dt)
        self.t_end = float(t_end)
        self.grad_num_steps = _check_steps("grad_num_steps", grad_num_steps)
        self.label = check_choice("label", label, LABELS)
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)
        self.alphas_cumprod = resolve_alphas_cumprod(alphas_cumprod)

    def time_grid(self, t: torch.Tensor, num_steps: int | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-sample Euler grid, indexed from the end: (times [B, L], dts Δ [B, L], lengths [B]), float64.

        Step p of sample b runs from times[b, p] to times[b, p] − dts[b, p]; entries p ≥ lengths[b] are padding.
        """
        start = t.clamp_min(1).to(torch.float64) / NUM_TRAIN_STEPS
        span = start - self.t_end
        if num_steps is None:
            lengths = torch.ceil(span / self.dt - 1e-9).to(torch.int64)
            h = torch.full_like(start, self.dt)
        else:
            lengths = torch.full_like(t, _check_steps("num_steps", num_steps))
            h = span / num_steps
        l_max = int(lengths.max())
        p = torch.arange(l_max, dtype=torch.float64, device=t.device)[None, :]
        k = lengths[:, None].to(torch.float64) - 1 - p  # step number from the start
        times = start[:, None] - k * h[:, None]
        dts = torch.minimum(h[:, None].expand_as(times), times - self.t_end)
        valid = p < lengths[:, None]
        return torch.where(valid, times, 1.0), torch.where(valid, dts, 0.0), lengths

    def stages(self, *, surrogate: bool, num_steps=None) -> tuple[Stage, ...]:
        return (Stage(None, num_steps if num_steps is not None or not surrogate else self.grad_num_steps),)

    def plan(self, x_s, t, sample_ids, *, seed, draw, stage, num_steps) -> Walks:
        x = inject(x_s, t, self.alphas_cumprod, seed=seed, sample_ids=sample_ids, draw=draw, stage=stage)
        times, dts, lengths = self.time_grid(t, num_steps)
        valid = torch.arange(dts.shape[1], device=dts.device)[None, :] < lengths[:, None]
        if not bool((dts[valid] > 0).all()):
            raise ValueError(f"non-positive SDE step (t_end = {self.t_end} too close to t/1000?)")
        labels = network_labels(times, self.label).to(torch.float64)
        return Walks(x, torch.stack([labels, times, dts], dim=-1), lengths, noise_word(0, stage, draw))

    def apply(self, x, eps, coef_a, coef_b, words, sample_ids, *, seed):
        """One Euler–Maruyama step at τ = coef_a with Δ = coef_b; vp_sde_step takes one Δ per call, so rows are
        grouped by Δ (only a walk's last step can differ)."""
        dts = torch.unique(coef_b).tolist()
        if len(dts) == 1:
            return self._step(x, eps, coef_a, dts[0], words, sample_ids, seed)
        out = torch.zeros_like(x)
        for dt in dts:
            g = (coef_b == dt).nonzero().flatten()
            w = words[g] if isinstance(words, torch.Tensor) else words
            out = out.index_copy(0, g, self._step(x[g], eps[g], coef_a[g], dt, w, sample_ids[g], seed))
        return out

    def _step(self, x, eps, tau, dt, words, sample_ids, seed):
        return ssni_kernels.vp_sde_step(
            x, eps, tau, dt, seed=seed, sample_ids=sample_ids, step=words, beta_min=self.beta_min,
            beta_max=self.beta_max,
        )  # fmt: skip
