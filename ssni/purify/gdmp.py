"""GDMP, guided diffusion purification (Wang et al. 2022; spec §7), with and without guidance.

Repeat k = 1..R (R = 4): noise the current image at index t_k − 1, then t_k ancestral steps from index t_k − 1
down to 0 (the discrete plan of `ssni.purify.ddpm`, one stage per repeat). `sampler` says what one step is:

- "gdmp" (default): GDMP's own sampler (its `pytorch_diffusion/diffusion.py` with the CIFAR-10 model's
  `fixedlarge` variance): x̂0 = clip((x − sqrt(1−a)·ε̂)/sqrt(a), −1, 1), the posterior mean
  μ = sqrt(a')·β/(1−a)·x̂0 + sqrt(a/a')·(1−a')/(1−a)·x with β = 1 − a/a', variance Σ = β (β_i for consecutive
  indices) and Σ = β̃_1 on the last step, which takes no noise (x = μ + Σ·guidance there); the output is clamped
  to [0, 1] (GDMP clamps before its classifier).
- "ddpm": the §5 step of the DDPM host (η = 1, Σ = β̃, 0 on the last step; no clipping, no clamp).

Guidance adds Σ·s_i·∇_{x_i} G to the step, s_i = sqrt(1−ᾱ_i)/(m·sqrt(ᾱ_i)), m = eps_pixels·2/255/3/guide_scale,
with G = SSIM (guidance="ssim") or −MSE (guidance="mse") between x_i and x_adv,i, the purifier's INPUT (model
space) noised to the same index i with the key (p + 1, k, draw) of noise_inject. GDMP differentiates the MEAN of
its objective over the whole batch it purifies (`bsize` 100 on CIFAR-10), so each sample's gradient carries 1/B;
ssni differentiates each sample's own objective divided by `guide_batch` (100): a sample's guidance is GDMP's at
GDMP's batch size whatever batch ssni runs, and results stay batch invariant. guidance=None is GDMP's default
(`configs/default.yml` has `cond: false`); its guided CIFAR-10 configs use "mse" with guide_scale 60000.
SSIM: 11×11 Gaussian window (σ 1.5), C1 = 0.01², C2 = 0.03², per-channel, mean over C·H·W, on model-space tensors.
`reference_inject_at_t` is the §10 quirk of GDMP's CIFAR path (noise at index t, denoise from t − 1).
GDMP's several purification paths per input are independent draws: `GNSDefense(gdmp, classifier, runs=10)` gives
their majority vote (GDMP's one-hot ensemble; it also reports logit and softmax sums). Guidance runs in batch
execution only (the streaming engine takes unguided GDMP).
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
from ssni.validate import check_choice, check_int
from ssni_kernels.reference import STREAM_REVERSE_STEP, normal_noise

__all__ = ["GDMPPurifier", "ssim"]

GUIDANCES = ("ssim", "mse", None)
SAMPLERS = ("gdmp", "ddpm")
GDMP_BATCH = 100  # GDMP's CIFAR-10 `bsize`: its guidance objective is a mean over this many images


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

    t_star: per-repeat t* (default 36 × 4); guidance: None (unguided, GDMP's default), "mse" or "ssim";
    guide_scale: 60000 (GDMP's guided CIFAR-10 configs); eps_pixels: the attack budget in pixels (8);
    guide_batch: the batch size whose batch-mean objective a sample's guidance reproduces (GDMP's 100);
    sampler: "gdmp" or "ddpm" (module docstring); grad_num_steps: surrogate steps per repeat of `purify_grad`
    (None = every index once); reference_inject_at_t: the §10 quirk (off by default).
    """

    def __init__(
        self,
        model: nn.Module,
        t_star: tuple[int, ...] = (36, 36, 36, 36),
        guidance: str | None = None,
        guide_scale: float = 60000.0,
        eps_pixels: float = 8.0,
        guide_batch: int = GDMP_BATCH,
        sampler: str = "gdmp",
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
        self.sampler = check_choice("sampler", sampler, SAMPLERS)
        if not guide_scale > 0 or not eps_pixels > 0:
            raise ValueError(f"guide_scale and eps_pixels must be > 0, got {guide_scale!r}, {eps_pixels!r}")
        self.t_star = stage_tuple("t_star", t_star)
        self.guide_scale = float(guide_scale)
        self.eps_pixels = float(eps_pixels)
        self.guide_batch = check_int("guide_batch", guide_batch, low=1)
        self.grad_num_steps = _check_steps("grad_num_steps", grad_num_steps)
        self.reference_inject_at_t = bool(reference_inject_at_t)
        self.inject_offset = 1 if reference_inject_at_t else 0
        # GDMP's fixedlarge variance of its last step: β̃_1 = β_1·(1 − ᾱ_0)/(1 − ᾱ_1)
        ac = self.alphas_cumprod
        self._last_variance = float(posterior_variance(ac[1:2], ac[0:1], 1.0)[0])

    @property
    def guidance_m(self) -> float:
        """m = eps_pixels·2/255/3/guide_scale."""
        return self.eps_pixels * 2 / 255 / 3 / self.guide_scale

    @property
    def streamable(self) -> bool:
        return self.guidance_kind is None

    def stages(self, *, surrogate: bool, num_steps=None) -> tuple[Stage, ...]:
        if num_steps is None and surrogate:
            num_steps = self.grad_num_steps
        return tuple(Stage(k, num_steps) for k in range(len(self.t_star)))

    def step_variance(self, a: torch.Tensor, a_next: torch.Tensor) -> torch.Tensor:
        """Σ of a step from ᾱ = a to ᾱ = a_next (float64 [k]): "gdmp" β = 1 − a/a' (β̃_1 on the last step,
        a' = 1); "ddpm" β̃ = (1 − a/a')(1 − a')/(1 − a) (0 on the last step)."""
        if self.sampler == "ddpm":
            return posterior_variance(a, a_next, 1.0)
        a, a_next = a.to(torch.float64), a_next.to(torch.float64)
        return torch.where(a_next < 1, 1 - a / a_next, torch.full_like(a, self._last_variance))

    def apply(self, x, eps, coef_a, coef_b, words, sample_ids, *, seed):
        if self.sampler == "ddpm":
            return super().apply(x, eps, coef_a, coef_b, words, sample_ids, seed=seed)
        cdt = torch.float64 if x.dtype == torch.float64 else torch.float32
        rows = (-1, *([1] * (x.dim() - 1)))
        sqrt_a = coef_a.to(cdt).sqrt().reshape(rows)
        sqrt_b = (1 - coef_a.to(cdt)).sqrt().reshape(rows)
        xc = x.to(cdt)
        x0 = ((xc - sqrt_b * eps.to(cdt)) / sqrt_a).clamp(-1, 1)
        eps_clipped = ((xc - sqrt_a * x0) / sqrt_b).to(x.dtype)  # the ε of the clipped x̂0: reverse_step's η = 1
        mean = ssni_kernels.reverse_step(x, eps_clipped, coef_a, coef_b, eta=1.0, noise=torch.zeros_like(x))
        noise_std = torch.where(coef_b < 1, self.step_variance(coef_a, coef_b).sqrt(), 0.0)  # no noise at the end
        z = normal_noise(x.shape[1:], seed, sample_ids, words, STREAM_REVERSE_STEP, dtype=cdt, device=x.device)
        return (mean.to(cdt) + noise_std.to(cdt).reshape(rows) * z).to(x.dtype)

    def from_model_space(self, x_s: torch.Tensor, size) -> torch.Tensor:
        out = super().from_model_space(x_s, size)
        return out.clamp(0, 1) if self.sampler == "gdmp" else out

    def guidance(self, x_s, *, seed, sample_ids, draw, stage, grad):
        """Σ_i·s_i·∇G(x_i, x_adv,i)/guide_batch for the rows of a step (None when unguided); x_adv,i is the
        purifier's input x_s re-noised at index i with the word of step p + 1."""
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
                (g,) = torch.autograd.grad(objective.sum() / self.guide_batch, xv, create_graph=grad)
            a64 = a.to(torch.float64)
            scale = self.step_variance(a, a_next) * torch.sqrt(1 - a64) / (m * torch.sqrt(a64))
            return scale.to(g.dtype).reshape(-1, *([1] * (g.dim() - 1))) * g

        return term
