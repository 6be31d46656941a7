"""Purification with a diffusers `UNet2DModel` (or a local pipeline folder) and a timestep per sample."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ssni.diffusers._dependency import diffusers
from ssni.diffusers.schedulers import DDIMScheduler, DDPMScheduler
from ssni.diffusers.walks import per_sample_walks
from ssni.models.interface import CallCounter
from ssni.validate import check_images, check_sample_ids, check_seed

__all__ = ["DiffusersPurifier", "as_fused_scheduler"]

_SCHEDULERS = {"DDPMScheduler": DDPMScheduler, "DDIMScheduler": DDIMScheduler}


def as_fused_scheduler(scheduler) -> DDPMScheduler | DDIMScheduler:
    """The ssni scheduler for a diffusers DDPM/DDIM scheduler (same config); ssni schedulers pass through."""
    if isinstance(scheduler, (DDPMScheduler, DDIMScheduler)):
        return scheduler
    for name, fused in _SCHEDULERS.items():
        if type(scheduler) is getattr(diffusers, name):
            return fused.from_config(scheduler.config)
    raise TypeError(
        f"scheduler must be a DDPMScheduler or DDIMScheduler (diffusers' or ssni.diffusers'), got "
        f"{type(scheduler).__name__}"
    )


class DiffusersPurifier(nn.Module):
    """Diffusion purification of a batch, each image from its own timestep, with a diffusers UNet.

    images [B, C, H, W] in [0, 1] → x = 2·images − 1 (the UNet's space) →
        x_t = scheduler.add_noise(x, ε, t) with ᾱ[t_b] per sample,
        sample b's walk: the timesteps of `per_sample_walks(t, num_inference_steps)` (every timestep t_b … 0 when
        num_inference_steps is None, else that many evenly spaced ones), one `scheduler.step` per timestep,
    → (x̂0 + 1)/2 (not clamped). Rounds are aligned at the walks' end; the UNet runs only on the samples whose
    walk is running (`counter`, a CallCounter: one network call per round, Σ_b walk length samples evaluated).

    unet: a `UNet2DModel` (any module called as unet(x, t [k]) returning `.sample` or a tensor); scheduler: an
    ssni or diffusers DDPMScheduler / DDIMScheduler (default: diffusers' DDPMScheduler defaults, the DDPM paper's
    schedule with clip_sample=True); eta: the DDIM η (DDIMScheduler only; default 0).
    Noise: ssni's keyed Philox stream only: (seed, sample id, step word) with step word 0 for the injection and the
    current timestep for each step, so an image's result does not depend on its batch. With a DDPMScheduler
    (fixed_small, clip_sample=False) and every timestep visited, this equals
    `ssni.purify.DDPMPurifier(unet, alphas_cumprod=scheduler.alphas_cumprod, eta=1)` at t = timesteps + 1.
    """

    def __init__(self, unet: nn.Module, scheduler=None, *, num_inference_steps: int | None = None, eta=None):
        super().__init__()
        if not callable(unet):
            raise TypeError(f"unet must be a callable module, got {type(unet).__name__}")
        scheduler = DDPMScheduler() if scheduler is None else as_fused_scheduler(scheduler)
        if eta is not None and not isinstance(scheduler, DDIMScheduler):
            raise ValueError("eta is the DDIM η: pass it with a DDIMScheduler only")
        if num_inference_steps is not None and (
            isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int) or num_inference_steps < 1
        ):
            raise ValueError(f"num_inference_steps must be None or an int >= 1, got {num_inference_steps!r}")
        self.unet = unet
        self.scheduler = scheduler
        self.num_inference_steps = num_inference_steps
        self.step_options = (
            {"eta": float(eta if eta is not None else 0.0)} if isinstance(scheduler, DDIMScheduler) else {}
        )
        self.counter = CallCounter()

    @classmethod
    def from_pretrained(cls, path: str | Path, *, scheduler=None, **options) -> DiffusersPurifier:
        """From a local folder: a pipeline (model_index.json with a UNet2DModel `unet` and a DDPM/DDIM `scheduler`)
        or a UNet2DModel folder (config.json; the scheduler is then `scheduler` or the default). options: those of
        the constructor. Nothing is downloaded."""
        path = Path(path)
        if (path / "model_index.json").is_file():
            index = json.loads((path / "model_index.json").read_text())
            if list(index.get("unet", [])) != ["diffusers", "UNet2DModel"]:
                raise ValueError(
                    f"{path}: the pipeline's unet must be a diffusers UNet2DModel, got {index.get('unet')}"
                )
            unet = diffusers.UNet2DModel.from_pretrained(path / "unet")
            if scheduler is None:
                name = (index.get("scheduler") or [None, None])[1]
                if name not in _SCHEDULERS:
                    raise ValueError(
                        f"{path}: the pipeline's scheduler must be one of {sorted(_SCHEDULERS)}, got {name}"
                    )
                scheduler = _SCHEDULERS[name].from_pretrained(path, subfolder="scheduler")
        elif (path / "config.json").is_file():
            unet = diffusers.UNet2DModel.from_pretrained(path)
        else:
            raise ValueError(f"{path} is not a local diffusers pipeline folder (model_index.json) nor a UNet2DModel "
                             "folder (config.json)")  # fmt: skip
        return cls(unet, scheduler, **options)

    def _predict(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.counter.add(x.shape[0])
        out = self.unet(x, t)
        return out.sample if hasattr(out, "sample") else out

    @torch.no_grad()
    def purify(self, images: torch.Tensor, timesteps: torch.Tensor, *, seed: int = 0, sample_ids=None) -> torch.Tensor:
        """Purify images [B, C, H, W] in [0, 1], image b from timestep timesteps[b] (integer [B] in [0, T)).

        seed, sample_ids: the noise keys (sample_ids default to the batch positions: pass ids for results that do
        not depend on the batch). Returns [B, C, H, W] in images' dtype, about [0, 1].
        """
        check_images(images)
        seed = check_seed(seed)
        batch, device = images.shape[0], images.device
        ids = check_sample_ids(sample_ids, batch, device)
        if not isinstance(timesteps, torch.Tensor):
            raise TypeError(f"timesteps must be an integer tensor [B], got {type(timesteps).__name__}")
        t = self.scheduler._timestep_tensor("timesteps", timesteps, batch, device, low=0)
        x = self.scheduler.add_noise(2 * images - 1, None, t, seed=seed, sample_ids=ids)
        walks = per_sample_walks(t, self.num_inference_steps)
        for r in range(walks.shape[0]):
            current = walks[r]
            following = walks[r + 1] if r + 1 < walks.shape[0] else torch.full_like(current, -1)
            rows = (current >= 0).nonzero()[:, 0]
            if rows.numel() == batch:  # every walk running: no gather
                x = self._step(x, current, following, ids, seed)
            else:
                x[rows] = self._step(x[rows], current[rows], following[rows], ids[rows], seed)
        return (x + 1) / 2

    def _step(self, x, current, following, ids, seed) -> torch.Tensor:
        model_output = self._predict(x, current)
        return self.scheduler.step(
            model_output, current, x, prev_timestep=following, seed=seed, sample_ids=ids, **self.step_options
        ).prev_sample

    def forward(self, images: torch.Tensor, timesteps: torch.Tensor, *, seed: int = 0, sample_ids=None):
        return self.purify(images, timesteps, seed=seed, sample_ids=sample_ids)
