"""diffusers' DDPMScheduler and DDIMScheduler with a timestep per sample, stepping on the fused ops.

Each class subclasses its diffusers namesake: the config (`from_config`, `from_pretrained` of a local folder,
`save_pretrained`, which stock diffusers loads back), `set_timesteps` and the step output classes are diffusers'
own. What changes:

- `step(model_output, timestep, sample, ...)` and `add_noise(original_samples, noise, timesteps)` take an int, a
  0-d tensor, or an integer tensor [B] (one timestep per sample; −1: the sample does not move), and run on
  `ssni_kernels.reverse_step` / `ssni_kernels.noise_inject`. With a scalar timestep and the same noise they
  equal diffusers' schedulers evaluated in float64 to ~1e-6 (diffusers' own float32 arithmetic is off by up to
  ~2e-4 near t = 0, where 1 − ᾱ ≈ 1e-4); with [B] timesteps, a loop of scalar steps.
- Previous timestep per sample: from `scheduler.timesteps` (DDPM, after set_timesteps), t − T // n (DDIM), t − 1
  (DDPM before set_timesteps), each sample's own walk after `set_timesteps_per_sample`, or `prev_timestep=`.
- Noise (see `ssni.diffusers.step`): `variance_noise` when given, else diffusers' `generator=` semantics, else
  ssni's keyed Philox noise: seed (default 0), sample id (default the batch position) and step word (the sample's
  current timestep; `add_noise` uses step word 0), so a sample's noise never depends on its batch.

Refused with a ValueError: `variance_type="fixed_large_log"` (diffusers' own step returns NaN for it) and
`rescale_betas_zero_snr=True` (ᾱ = 0 at the last timestep, where the step divides by sqrt(ᾱ)).
"""

from __future__ import annotations

import functools

import torch
from diffusers.schedulers.scheduling_ddim import DDIMSchedulerOutput
from diffusers.schedulers.scheduling_ddpm import DDPMSchedulerOutput

import ssni_kernels
from ssni.diffusers._dependency import diffusers
from ssni.diffusers.step import PREDICTION_TYPES, NoiseSource, X0Limit, fused_step
from ssni.diffusers.walks import WAITING, per_sample_walks, previous_in_rows
from ssni.validate import check_sample_ids, check_seed

__all__ = ["DDPMScheduler", "DDIMScheduler"]

LEARNED_VARIANCES = ("learned", "learned_range")


class _PerSampleSteps:
    """What both schedulers add to their diffusers base: config checks, per-sample timesteps, add_noise."""

    per_sample: bool = False  # True after set_timesteps_per_sample: `timesteps` is the [L, B] walk table

    def _check_config(self) -> None:
        config = self.config
        if config.prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {config.prediction_type!r}")
        if config.get("variance_type") == "fixed_large_log":
            raise ValueError(
                "variance_type='fixed_large_log' is not supported: diffusers' DDPMScheduler.step takes the square "
                "root of log β (NaN) for it; use 'fixed_large'"
            )
        if config.rescale_betas_zero_snr:
            raise ValueError(
                "rescale_betas_zero_snr=True is not supported: it sets ᾱ = 0 at the last timestep, where the fused "
                "step divides by sqrt(ᾱ)"
            )

    def _x0_limit(self) -> X0Limit:
        config = self.config
        if config.thresholding:
            return X0Limit(threshold_ratio=config.dynamic_thresholding_ratio, threshold_max=config.sample_max_value)
        return X0Limit(clip_range=config.clip_sample_range if config.clip_sample else None)

    def _alphas_cumprod_on(self, device: torch.device) -> torch.Tensor:
        # Moved once, as diffusers' own add_noise does.
        if self.alphas_cumprod.device != device:
            self.alphas_cumprod = self.alphas_cumprod.to(device)
        return self.alphas_cumprod

    def _timestep_tensor(self, name: str, value, batch: int, device, low: int = WAITING) -> torch.Tensor:
        """An int, 0-d or [1] tensor (every sample) or [B] tensor of timesteps → int64 [B] in [low, T)."""
        if isinstance(value, torch.Tensor):
            if value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool:
                raise TypeError(f"{name} must hold integers, got {value.dtype}")
            if value.dim() > 1 or value.numel() not in (1, batch):
                raise ValueError(f"{name} must be an int, a 0-d tensor or a tensor of shape [{batch}], "
                                 f"got shape {tuple(value.shape)}")  # fmt: skip
            t = value.to(device=device, dtype=torch.int64).reshape(-1).expand(batch)
            lowest, highest = (int(t.min()), int(t.max())) if t.numel() else (low, low)
        elif isinstance(value, int) and not isinstance(value, bool):
            t = torch.full((batch,), value, dtype=torch.int64, device=device)
            lowest = highest = value
        else:
            raise TypeError(f"{name} must be an int or an integer tensor, got {type(value).__name__}")
        T = self.config.num_train_timesteps
        if lowest < low or highest >= T:
            raise ValueError(f"{name} must be in [{low}, {T}), got values in [{lowest}, {highest}]")
        return t

    def set_timesteps_per_sample(
        self, start_timesteps: torch.Tensor, num_inference_steps: int | None = None, device=None
    ) -> None:
        """Give every sample its own walk from start_timesteps[b] (see `ssni.diffusers.walks.per_sample_walks`).

        Afterwards `timesteps` is the walk table int64 [L, B]: iterate over its rows as over diffusers'
        timesteps (row r: every sample's timestep at round r, −1 while a sample waits for its walk to begin; a
        step leaves waiting samples unchanged), and `step` takes each sample's previous timestep from its walk.
        set_timesteps returns to one schedule for every sample.
        """
        if not isinstance(start_timesteps, torch.Tensor):
            raise TypeError(f"start_timesteps must be an integer tensor [B], got {type(start_timesteps).__name__}")
        start = self._timestep_tensor("start_timesteps", start_timesteps, start_timesteps.numel(), device, low=0)
        self.timesteps = per_sample_walks(start, num_inference_steps)
        self.num_inference_steps = num_inference_steps
        self.per_sample = True

    def previous_timestep(self, timestep):
        """The timestep each sample steps to from `timestep` (−1: after the last step; −1 stays −1).

        timestep: an int, or an integer tensor [B] (or 0-d). Returns an int for an int, else an int64 tensor of
        timestep's shape ([B] after set_timesteps_per_sample).
        """
        if self.per_sample:
            t = self._timestep_tensor("timestep", timestep, self.timesteps.shape[1], self.timesteps.device)
            return self._previous(t)
        device = timestep.device if isinstance(timestep, torch.Tensor) else self.timesteps.device
        shape = timestep.shape if isinstance(timestep, torch.Tensor) else None
        t = self._timestep_tensor("timestep", timestep, 1 if shape is None else max(timestep.numel(), 1), device)
        prev = self._previous(t)
        return int(prev[0]) if shape is None else prev.reshape(shape)

    def _previous(self, t: torch.Tensor) -> torch.Tensor:
        """previous_timestep of validated int64 [B] timesteps."""
        if self.per_sample:
            return previous_in_rows(self.timesteps.T, t)
        return torch.where(t == WAITING, WAITING, self._schedule_previous(t))

    def _schedule_previous(self, t: torch.Tensor) -> torch.Tensor:  # pragma: no cover - each class defines it
        raise NotImplementedError

    def _step_inputs(self, timestep, sample, prev_timestep, final_alpha_prod):
        """(t, ᾱ[t], ᾱ[prev]) per sample, each a [B] tensor on sample's device (final_alpha_prod after the end)."""
        if not isinstance(sample, torch.Tensor) or sample.dim() < 1:
            raise TypeError("sample must be a tensor [B, ...]")
        batch, device = sample.shape[0], sample.device
        t = self._timestep_tensor("timestep", timestep, batch, device)
        if prev_timestep is None:
            prev = self._previous(t).to(device)
        else:
            prev = self._timestep_tensor("prev_timestep", prev_timestep, batch, device)
            if bool(((prev >= t) & (t != WAITING)).any()):
                raise ValueError("prev_timestep must be smaller than timestep for every moving sample")
        ac = self._alphas_cumprod_on(device)
        # ᾱ at timestep s is padded[s + 1], also at s = −1 (after the last step, and for waiting samples).
        padded = torch.cat([torch.as_tensor(final_alpha_prod, dtype=ac.dtype, device=device).reshape(1), ac])
        return t, padded[t + 1], padded[prev + 1]

    @staticmethod
    def _noise_source(sample, generator, variance_noise, seed, sample_ids) -> NoiseSource:
        if generator is not None and variance_noise is not None:
            raise ValueError("pass at most one of generator and variance_noise")
        ids = None if sample_ids is None else check_sample_ids(sample_ids, sample.shape[0], sample.device)
        return NoiseSource(check_seed(seed), ids, generator, variance_noise)

    def add_noise(
        self,
        original_samples: torch.Tensor,
        noise: torch.Tensor | None,
        timesteps,
        *,
        seed: int = 0,
        sample_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """sqrt(ᾱ[t_b])·x_b + sqrt(1 − ᾱ[t_b])·ε_b on `ssni_kernels.noise_inject`.

        timesteps: an int or an integer tensor (0-d or [B]), in [0, T). noise: like original_samples, or None for
        the keyed Philox noise (seed, sample_ids, step word 0; the injection noise of `ssni.purify.DDPMPurifier`).
        """
        x = original_samples
        t = self._timestep_tensor("timesteps", timesteps, x.shape[0], x.device, low=0)
        ac = self._alphas_cumprod_on(x.device)
        ids = None if sample_ids is None else check_sample_ids(sample_ids, x.shape[0], x.device)
        if noise is not None:
            return ssni_kernels.noise_inject(x, t, ac, noise=noise.to(x.dtype), sample_ids=ids)
        return ssni_kernels.noise_inject(x, t, ac, seed=check_seed(seed), sample_ids=ids)


def _checked_init(base):
    """__init__ of a subclass of `base` that checks the config: the signature stays base's, which diffusers'
    ConfigMixin reads to load configs."""

    @functools.wraps(base.__init__)
    def __init__(self, *args, **kwargs):
        base.__init__(self, *args, **kwargs)
        self._check_config()

    return __init__


def _resetting_set_timesteps(base):
    """set_timesteps of base, ending the per-sample mode; the signature stays base's (pipelines inspect it)."""

    @functools.wraps(base.set_timesteps)
    def set_timesteps(self, *args, **kwargs):
        self.per_sample = False
        return base.set_timesteps(self, *args, **kwargs)

    return set_timesteps


class DDPMScheduler(_PerSampleSteps, diffusers.DDPMScheduler):
    """diffusers.DDPMScheduler with a timestep per sample on the fused ops (module docstring).

    Covered: every beta schedule, trained_betas, prediction_type epsilon / sample / v_prediction, variance_type
    fixed_small, fixed_small_log, fixed_large, learned, learned_range (model_output with 2C channels),
    clip_sample (clip_sample_range), thresholding, timestep_spacing leading / trailing / linspace, steps_offset,
    custom timesteps. fixed_small(_log) is the fused step with η = 1 (σ² = β̃, noise drawn inside the op); the
    other variances add σ·z to that step's noise-free result.
    """

    __init__ = _checked_init(diffusers.DDPMScheduler)
    set_timesteps = _resetting_set_timesteps(diffusers.DDPMScheduler)

    def _schedule_previous(self, t: torch.Tensor) -> torch.Tensor:
        if self.custom_timesteps or self.num_inference_steps:
            return previous_in_rows(self.timesteps, t)
        return t - 1

    def _noise_std(self, alpha_prod, alpha_prod_prev, predicted_variance, like) -> torch.Tensor | None:
        """σ per sample ([B, 1, …]) or element; None for the op's own σ = sqrt(β̃) (fixed_small, fixed_small_log)."""
        variance_type = self.variance_type
        if variance_type in ("fixed_small", "fixed_small_log"):
            return None
        beta = (1 - alpha_prod / alpha_prod_prev).reshape(-1, *([1] * (like.dim() - 1)))
        if variance_type == "fixed_large":
            return beta.sqrt()
        if variance_type == "learned":
            return predicted_variance.sqrt()
        beta_tilde = ((1 - alpha_prod_prev) / (1 - alpha_prod)).reshape(beta.shape) * beta
        fraction = (predicted_variance + 1) / 2
        log_variance = fraction * beta.log() + (1 - fraction) * beta_tilde.clamp_min(1e-20).log()
        return (0.5 * log_variance).exp()

    def step(
        self,
        model_output: torch.Tensor,
        timestep,
        sample: torch.Tensor,
        generator=None,
        return_dict: bool = True,
        *,
        variance_noise: torch.Tensor | None = None,
        prev_timestep=None,
        seed: int = 0,
        sample_ids: torch.Tensor | None = None,
    ) -> DDPMSchedulerOutput | tuple:
        """One DDPM step of every sample from its timestep to its previous timestep (diffusers' arguments, plus:).

        timestep: an int or an integer tensor [B] (−1: the sample is returned unchanged). variance_noise: z
        like sample (instead of generator). prev_timestep: override the previous timestep (an int or [B]).
        seed, sample_ids: the keyed noise when neither generator nor variance_noise is given.
        Returns diffusers' DDPMSchedulerOutput(prev_sample, pred_original_sample) (a tuple if not return_dict).
        """
        t, alpha_prod, alpha_prod_prev = self._step_inputs(timestep, sample, prev_timestep, 1.0)
        channels = sample.shape[1] if sample.dim() > 1 else None
        learned = self.variance_type in LEARNED_VARIANCES
        if learned and (channels is None or model_output.shape[1] != 2 * channels):
            raise ValueError(f"variance_type={self.variance_type!r} needs model_output with 2×{channels} channels "
                             f"(ε̂ and the variance), got shape {tuple(model_output.shape)}")  # fmt: skip
        predicted_variance = None
        if learned:
            model_output, predicted_variance = model_output.split(channels, dim=1)
        if model_output.shape != sample.shape:
            raise ValueError(f"model_output must have the shape of sample {tuple(sample.shape)}, got "
                             f"{tuple(model_output.shape)} (a learned-variance model needs variance_type "
                             "'learned' or 'learned_range')")  # fmt: skip
        prev_sample, x0 = fused_step(
            model_output,
            sample,
            t,
            alpha_prod,
            alpha_prod_prev,
            eta=1.0,
            prediction_type=self.config.prediction_type,
            limit=self._x0_limit(),
            keep_model_eps=False,
            noise=self._noise_source(sample, generator, variance_noise, seed, sample_ids),
            noise_rows=t > 0,
            noise_std=self._noise_std(alpha_prod, alpha_prod_prev, predicted_variance, sample),
        )
        if not return_dict:
            return prev_sample, x0
        return DDPMSchedulerOutput(prev_sample=prev_sample, pred_original_sample=x0)


class DDIMScheduler(_PerSampleSteps, diffusers.DDIMScheduler):
    """diffusers.DDIMScheduler with a timestep per sample on the fused ops (module docstring).

    Covered: every beta schedule, trained_betas, prediction_type epsilon / sample / v_prediction, any η ≥ 0,
    use_clipped_model_output, clip_sample (clip_sample_range), thresholding, set_alpha_to_one, timestep_spacing
    leading / trailing / linspace, steps_offset. The step is the fused generalised DDIM step itself.
    """

    __init__ = _checked_init(diffusers.DDIMScheduler)
    set_timesteps = _resetting_set_timesteps(diffusers.DDIMScheduler)

    def _schedule_previous(self, t: torch.Tensor) -> torch.Tensor:
        if self.num_inference_steps is None:
            raise ValueError(
                "Number of inference steps is 'None', you need to run 'set_timesteps' after creating the scheduler"
            )
        return (t - self.config.num_train_timesteps // self.num_inference_steps).clamp_min(-1)

    def step(
        self,
        model_output: torch.Tensor,
        timestep,
        sample: torch.Tensor,
        eta: float = 0.0,
        use_clipped_model_output: bool = False,
        generator=None,
        variance_noise: torch.Tensor | None = None,
        return_dict: bool = True,
        *,
        prev_timestep=None,
        seed: int = 0,
        sample_ids: torch.Tensor | None = None,
    ) -> DDIMSchedulerOutput | tuple:
        """One DDIM step of every sample from its timestep to its previous timestep (diffusers' arguments, plus:).

        timestep: an int or an integer tensor [B] (−1: the sample is returned unchanged). prev_timestep:
        override the previous timestep (an int or [B]). seed, sample_ids: the keyed noise when η > 0 and neither
        generator nor variance_noise is given.
        Returns diffusers' DDIMSchedulerOutput(prev_sample, pred_original_sample) (a tuple if not return_dict).
        """
        if model_output.shape != sample.shape:
            raise ValueError(f"model_output must have the shape of sample {tuple(sample.shape)}, "
                             f"got {tuple(model_output.shape)}")  # fmt: skip
        t, alpha_prod, alpha_prod_prev = self._step_inputs(timestep, sample, prev_timestep, self.final_alpha_cumprod)
        prev_sample, x0 = fused_step(
            model_output,
            sample,
            t,
            alpha_prod,
            alpha_prod_prev,
            eta=float(eta),
            prediction_type=self.config.prediction_type,
            limit=self._x0_limit(),
            keep_model_eps=not use_clipped_model_output,
            noise=self._noise_source(sample, generator, variance_noise, seed, sample_ids),
        )
        if not return_dict:
            return prev_sample, x0
        return DDIMSchedulerOutput(prev_sample=prev_sample, pred_original_sample=x0)
