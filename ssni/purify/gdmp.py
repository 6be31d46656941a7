"""GDMP, guided diffusion purification (Wang et al. 2022; spec §7), with and without guidance.

Repeat k = 1..R (R = 4): noise the current image at index t_k − 1, then t_k ancestral DDPM steps (η = 1) from
index t_k − 1 down to 0, each with a guidance term added to the posterior mean:

    μ ← μ + Σ_i · s_i · ∇_{x_i} G(x_i, x_adv,i),   Σ_i = c1² (the step's variance),  s_i = sqrt(1−ᾱ_i)/(m·sqrt(ᾱ_i)),
    m = eps_pixels·2/255/3/guide_scale,   G = SSIM (guidance="ssim") or −MSE (guidance="mse"),

where x_adv,i is the purifier's INPUT (model space) noised to the same index i with the key (p + 1, k, draw) of
noise_inject. guidance=None is the unguided schedule SSNI's own experiments ran (36, 36, 36, 36).
SSIM: 11×11 Gaussian window (σ 1.5), C1 = 0.01², C2 = 0.03², per-channel, mean over C·H·W, on model-space
tensors. `reference_inject_at_t` is the §10 quirk of GDMP's CIFAR path (noise at index t, denoise from t − 1).
GDMP's several purification paths per input are independent draws: `GNSDefense(gdmp, classifier, runs=10)`
gives their majority vote. The walk is the discrete plan of `ssni.purify.ddpm` (one stage per repeat); guidance runs
in batch execution only (the streaming engine takes unguided GDMP).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import ssni_kernels
from ssni.purify.base import Stage, noise_word
from ssni.purify.ddpm import DiscretePurifier, _check_steps
from ssni.purify.gns import stage_tuple
from ssni.schedules import posterior_variance
from ssni.validate import check_choice

__all__ = ["GDMPPurifier", "ssim"]

GUIDANCES = ("ssim", "mse", None)


def _gaussian_window(size: int, sigma: float, channels: int, like: torch.Tensor) -> torch.Tensor:
    g = torch.exp(-((torch.arange(size, dtype=torch.float64) - size // 2) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    w = (g[:, None] * g[None, :]).to(device=like.device, dtype=like.dtype)
    return w.expand(channels, 1, size, size).contiguous()


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-sample SSIM [B] of x and y [B, C, H, W] (Gaussian window, zero padding, C1 = 0.01², C2 = 0.03²)."""
    c = x.shape[1]
    w = _gaussian_window(window, sigma, c, x)

    def blur(v: torch.Tensor) -> torch.Tensor:
        return F.conv2d(v, w, padding=window // 2, groups=c)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(dim=1)


class GDMPPurifier(DiscretePurifier):
    """GDMP purification with per-sample, per-repeat t (t_star is a tuple, one entry per repeat).

    t_star: per-repeat t* (default 36 × 4); guidance: "ssim", "mse" or None (unguided); guide_scale: 70000
    (CIFAR-10); eps_pixels: the attack budget in pixels (8); grad_num_steps: surrogate steps per repeat of
    `purify_grad` (None = every index once); reference_inject_at_t: the §10 quirk (off by default).
    """

    def __init__(
        self,
        model: nn.Module,
        t_star: tuple[int, ...] = (36, 36, 36, 36),
        guidance: str | None = "ssim",
        guide_scale: float = 70000.0,
        eps_pixels: float = 8.0,
        grad_num_steps: int | None = None,
        reference_inject_at_t: bool = False,
        alphas_cumprod: torch.Tensor | None = None,
        grad_checkpoint: bool = True,
        resolution: int | None = None,
    ):
        super().__init__(
            model, eta=1.0, alphas_cumprod=alphas_cumprod, grad_checkpoint=grad_checkpoint, resolution=resolution
        )
        self.guidance_kind = check_choice("guidance", guidance, GUIDANCES)
        if not guide_scale > 0 or not eps_pixels > 0:
            raise ValueError(f"guide_scale and eps_pixels must be > 0, got {guide_scale!r}, {eps_pixels!r}")
        self.t_star = stage_tuple("t_star", t_star)
        self.guide_scale = float(guide_scale)
        self.eps_pixels = float(eps_pixels)
        self.grad_num_steps = _check_steps("grad_num_steps", grad_num_steps)
        self.reference_inject_at_t = bool(reference_inject_at_t)
        self.inject_offset = 1 if reference_inject_at_t else 0

    @property
    def guidance_m(self) -> float:
        """m = eps_pixels·2/255/3/guide_scale."""
        return self.eps_pixels * 2 / 255 / 3 / self.guide_scale

    @property
    def streamable(self) -> bool:
        return self.guidance_kind is None

    def stages(self, *, grad: bool, num_steps=None) -> tuple[Stage, ...]:
        if num_steps is None and grad:
            num_steps = self.grad_num_steps
        return tuple(Stage(k, num_steps) for k in range(len(self.t_star)))

    def guidance(self, x_s, *, seed, sample_ids, draw, stage, grad):
        """Σ_i·s_i·∇G(x_i, x_adv,i) for the rows of a step (None when unguided); x_adv,i is the purifier's input
        x_s re-noised at index i with the word of step p + 1."""
        if self.guidance_kind is None:
            return None
        ac = self.alphas_cumprod.to(x_s.device)
        m = self.guidance_m

        def term(xk, p, rows, label, a, a_next):
            i = label.to(torch.int64)
            ref = ssni_kernels.noise_inject(
                x_s[rows], i, ac, seed=seed, sample_ids=sample_ids[rows], step=noise_word(p + 1, stage, draw)
            )
            with torch.enable_grad():
                xv = xk if (grad and xk.requires_grad) else xk.detach().requires_grad_(True)
                if self.guidance_kind == "ssim":
                    objective = ssim(xv, ref)
                else:
                    objective = -((xv - ref) ** 2).flatten(1).mean(dim=1)
                (g,) = torch.autograd.grad(objective.sum(), xv, create_graph=grad)
            a64 = a.to(torch.float64)
            scale = posterior_variance(a, a_next, 1.0) * torch.sqrt(1 - a64) / (m * torch.sqrt(a64))
            return scale.to(g.dtype).reshape(-1, *([1] * (g.dim() - 1))) * g

        return term
