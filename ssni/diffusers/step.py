"""The reverse step both schedulers share, on `ssni_kernels.reverse_step`, with a timestep per sample.

Per sample b with a = ᾱ[t_b] and a' = ᾱ[prev_b] (1, or DDIM's final ᾱ, after the last step):

    x̂0 from the model output (prediction type):  ε: (x − sqrt(1−a)·ε̂)/sqrt(a);  sample: the output;
                                                   v: sqrt(a)·x − sqrt(1−a)·v̂
    x̂0 ← clip(x̂0, ±clip_sample_range) or dynamic thresholding (both optional)
    ε_d = ε̂ (DDIM, unless use_clipped_model_output) or (x − sqrt(a)·x̂0)/sqrt(1−a) (DDPM: the posterior mean)
    out = sqrt(a')·x̂0 + sqrt(1 − a' − σ²)·ε_d + σ·z,   σ = η·sqrt((1 − a/a')(1 − a')/(1 − a))

which is one `reverse_step` call on (x_op, ε_d) with x_op = sqrt(a)·x̂0 + sqrt(1−a)·ε_d (= x itself whenever ε_d
is the ε implied by x̂0, e.g. plain ε-prediction without clipping: the fused fast path). With η = 1 the mean is
DDPM's posterior mean and σ² = β̃ (variance "fixed_small"); any other σ (DDPM's "fixed_large", learned variances)
is added as σ·z to the noise-free step.

Noise z, in this order: `variance_noise` when given; else diffusers' `generator=` semantics (one generator: one
`randn_tensor` draw of the batch, as diffusers' own step; a list of B generators: row b drawn from generator b,
only when that row takes noise); else the ssni Philox stream keyed on (seed, sample id, step word = the sample's
current timestep), drawn inside the op: a sample's noise never depends on its batch or position.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

import ssni_kernels
from ssni.diffusers._dependency import randn_tensor
from ssni_kernels.reference import STREAM_REVERSE_STEP, normal_noise

__all__ = ["PREDICTION_TYPES", "X0Limit", "NoiseSource", "fused_step", "dynamic_threshold"]

PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")


@dataclass(frozen=True)
class X0Limit:
    """How x̂0 is limited: clipping to ±clip_range, or dynamic thresholding (Imagen) when `threshold_ratio` is set."""

    clip_range: float | None = None
    threshold_ratio: float | None = None
    threshold_max: float = 1.0

    def apply(self, x0: torch.Tensor) -> torch.Tensor:
        if self.threshold_ratio is not None:
            return dynamic_threshold(x0, self.threshold_ratio, self.threshold_max)
        if self.clip_range is not None:
            return x0.clamp(-self.clip_range, self.clip_range)
        return x0

    @property
    def active(self) -> bool:
        return self.threshold_ratio is not None or self.clip_range is not None


@dataclass(frozen=True)
class NoiseSource:
    """Where z comes from: `variance_noise`, else `generator` (one or a list of B), else the keyed Philox stream
    (sample_ids None: the batch positions)."""

    seed: int = 0
    sample_ids: torch.Tensor | None = None
    generator: torch.Generator | list[torch.Generator] | None = None
    variance_noise: torch.Tensor | None = None

    def explicit(self, like: torch.Tensor, rows: torch.Tensor) -> torch.Tensor | None:
        """z for the rows that take noise ([B] bool; other rows' values do not matter), or None for the keyed
        stream (drawn inside the op)."""
        if self.variance_noise is not None:
            if self.variance_noise.shape != like.shape:
                raise ValueError(
                    f"variance_noise must have the shape of sample {tuple(like.shape)}, "
                    f"got {tuple(self.variance_noise.shape)}"
                )
            return self.variance_noise.to(like.dtype)
        if self.generator is None:
            return None
        if not bool(rows.any()):
            return torch.zeros_like(like)  # diffusers draws nothing from a generator when no row takes noise
        generator = self.generator
        if isinstance(generator, list) and len(generator) == 1:  # diffusers treats it as one generator
            generator = generator[0]
        if not isinstance(generator, list):
            return randn_tensor(like.shape, generator=generator, device=like.device, dtype=like.dtype)
        if len(generator) != like.shape[0]:
            raise ValueError(f"generator: a list must hold one generator per sample ({like.shape[0]}), "
                             f"got {len(generator)}")  # fmt: skip
        z = torch.zeros_like(like)
        for b in rows.nonzero()[:, 0].tolist():
            z[b] = randn_tensor((1, *like.shape[1:]), generator=generator[b], device=like.device,
                                dtype=like.dtype)[0]  # fmt: skip
        return z

    def keyed(self, like: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        """The z the op would draw for step words `steps` ([B]), materialised."""
        ids = torch.arange(like.shape[0], device=like.device) if self.sample_ids is None else self.sample_ids
        return normal_noise(like.shape[1:], self.seed, ids, steps, STREAM_REVERSE_STEP, dtype=like.dtype,
                            device=like.device)  # fmt: skip


def dynamic_threshold(x0: torch.Tensor, ratio: float, max_value: float) -> torch.Tensor:
    """Imagen's dynamic thresholding per sample: s = clamp(quantile(|x̂0|, ratio), 1, max_value);
    x̂0 ← clamp(x̂0, −s, s)/s. Computed in float32 at least (quantile needs it), returned in x0's dtype."""
    flat = x0.reshape(x0.shape[0], -1)
    if flat.dtype not in (torch.float32, torch.float64):
        flat = flat.float()
    s = torch.quantile(flat.abs(), ratio, dim=1).clamp(min=1, max=max_value)[:, None]
    return (flat.clamp(-s, s) / s).reshape(x0.shape).to(x0.dtype)


def _rows(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, *([1] * (like.dim() - 1)))


def fused_step(
    model_output: torch.Tensor,
    sample: torch.Tensor,
    timesteps: torch.Tensor,
    alpha_prod: torch.Tensor,
    alpha_prod_prev: torch.Tensor,
    *,
    eta: float,
    prediction_type: str,
    limit: X0Limit,
    keep_model_eps: bool,
    noise: NoiseSource,
    noise_rows: torch.Tensor | None = None,
    noise_std: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One reverse step of every sample; returns (prev_sample, pred_original_sample), both in sample's dtype.

    model_output, sample: [B, ...] (model_output is cast to sample's dtype); timesteps: int64 [B], −1 for samples
    that do not move (returned unchanged, x̂0 = sample); alpha_prod, alpha_prod_prev: ᾱ at t and at prev, [B]
    float. keep_model_eps: ε_d = ε̂ of the model (DDIM) rather than the ε implied by the limited x̂0.
    noise_rows: [B] bool, the samples that draw noise (diffusers' rule: DDPM t > 0), None: every moving sample
    (DDIM with η > 0); a generator is consumed for these rows only. noise_std: None (σ = the op's η·sqrt(β̃)), or a σ
    broadcastable to sample ([B, 1, …] or per element) added as σ·z to the η = 1 mean on the noise_rows (DDPM's
    other variance types).
    """
    cdt = torch.float64 if sample.dtype == torch.float64 else torch.float32
    active = timesteps >= 0
    all_active = bool(active.all())
    sqrt_a = _rows(alpha_prod.to(cdt).sqrt(), sample)
    sqrt_b = _rows((1 - alpha_prod.to(cdt)).sqrt(), sample)
    x, out = sample.to(cdt), model_output.to(cdt)
    # Two passes per expression (addcmul, then an in-place op): these tensors are the step's only eager work.
    if prediction_type == "epsilon":
        eps, x0 = out, torch.addcmul(x, sqrt_b, out, value=-1).div_(sqrt_a)
    elif prediction_type == "sample":
        x0, eps = out, torch.addcmul(x, sqrt_a, out, value=-1).div_(sqrt_b)
    else:
        x0, eps = torch.mul(x, sqrt_a).addcmul_(sqrt_b, out, value=-1), torch.mul(out, sqrt_a).addcmul_(sqrt_b, x)
    x_op = x
    if limit.active:
        x0 = limit.apply(x0)
        if keep_model_eps:
            x_op = torch.mul(x0, sqrt_a).addcmul_(sqrt_b, eps)
        else:
            eps = torch.addcmul(x, sqrt_a, x0, value=-1).div_(sqrt_b)
    steps = timesteps if all_active else timesteps.clamp_min(0)
    step_noise = {"seed": noise.seed, "sample_ids": noise.sample_ids, "step": steps}
    step_noise["active"] = None if all_active else active
    x_op, eps = x_op.to(sample.dtype), eps.to(sample.dtype)
    noise_rows = active if noise_rows is None else noise_rows & active
    if noise_std is None:
        z = noise.explicit(sample, noise_rows) if eta != 0 else None
        prev = ssni_kernels.reverse_step(x_op, eps, alpha_prod, alpha_prod_prev, eta=eta, noise=z, **step_noise)
    else:
        z = noise.explicit(sample, noise_rows)
        z = noise.keyed(sample, steps) if z is None else z
        mean = ssni_kernels.reverse_step(
            x_op, eps, alpha_prod, alpha_prod_prev, eta=1.0, noise=torch.zeros_like(sample), active=step_noise["active"]
        )
        prev = (mean.to(cdt) + _rows(noise_rows, sample) * noise_std.to(cdt) * z.to(cdt)).to(sample.dtype)
    if not all_active:
        x0 = torch.where(_rows(active, sample), x0, x)
    return prev, x0.to(sample.dtype)
