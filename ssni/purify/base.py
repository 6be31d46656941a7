"""What every purifier shares: the noise-key layout, the network-call counter, and the `Purifier` base class.

Noise keys (the one place they are defined)
-------------------------------------------
All randomness comes from the ops' Philox stream, keyed on (seed, sample id, step, stream); the stream is fixed
by the op (noise_inject 0, noise_inject_levels 1, reverse_step 2, vp_sde_step 3). The 32-bit `step` word is

    step = index + 2**10 · stage + 2**16 · draw          (index < 1024, stage < 64, draw < 65536)

- index: for a reverse step (reverse_step, vp_sde_step) the step's position counted from the END of the
  sample's own walk, p = 0 for the last step. With every index visited (the defence, n ≥ t) p equals the
  DDPM index being denoised, so a sample's noise at a diffusion index never depends on its t, n or batch.
  For noise_inject: 0 for the one-shot injection; p + 1 for GDMP's re-noised reference x_adv,t at step p.
- stage: the stage of a multi-stage host (GNS stage s, GDMP repeat k); 0 for single-stage hosts.
- draw: an independent draw of the whole purification (EOT draws of an attack, GNS vote runs: run r of draw d
  uses draw = d·runs + r). The default draw 0 is the defence itself.
- the score norm (§2) uses noise_inject_levels' own layout: level k (0-based) draws with step = k.

Counting
--------
`network_calls` counts forward passes of the diffusion network (one per round of compacted samples, or per
chunk of the score norm); `samples_evaluated` counts per-sample evaluations, Σ over calls of the batch size.
With active-only execution a discrete purification with per-sample t costs samples_evaluated = Σ max(t_i, 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssni.checks import check_images, check_sample_ids, check_seed, check_timesteps
from ssni.models.interface import CallCounter, as_eps_model

__all__ = ["CallCounter", "Purifier", "noise_step", "INDEX_LIMIT", "STAGE_LIMIT", "DRAW_LIMIT"]

INDEX_LIMIT = 2**10
STAGE_LIMIT = 2**6
DRAW_LIMIT = 2**16


def noise_step(index: int, stage: int = 0, draw: int = 0) -> int:
    """The Philox `step` word for (index, stage, draw); see the module docstring."""
    if not 0 <= index < INDEX_LIMIT:
        raise ValueError(f"noise index must be in [0, {INDEX_LIMIT}), got {index}")
    if not 0 <= stage < STAGE_LIMIT:
        raise ValueError(f"stage must be in [0, {STAGE_LIMIT}), got {stage}")
    if isinstance(draw, bool) or not isinstance(draw, int) or not 0 <= draw < DRAW_LIMIT:
        raise ValueError(f"draw must be an int in [0, {DRAW_LIMIT}), got {draw!r}")
    return index + INDEX_LIMIT * stage + INDEX_LIMIT * STAGE_LIMIT * draw


class Purifier(nn.Module):
    """Base of the hosts: x in [0, 1] [B, C, H, W] → (x̂_s + 1)/2 (not clamped).

    Subclasses implement `_purify(x_s, t, *, seed, sample_ids, draw, grad, num_steps)` in model space, where t is
    already validated (int64 [B] or [B, S] for `num_stages` = S). `t_star` is an int or a tuple (per stage).
    `resolution`: None, or the side the diffusion model runs at; inputs of another size are resized to it
    (bilinear) before purification and back after (DiffPure's ImageNet protocol: 224 → 256 → 224, spec §8). The
    score norm is not affected: it runs on the input as given.
    """

    t_star: int | tuple[int, ...]
    resolution: int | None = None

    def __init__(self, model: nn.Module, checkpoint: bool = True):
        super().__init__()
        self.model = as_eps_model(model)
        self.checkpoint = checkpoint
        self.counter = CallCounter()

    # ----------------------------------------------------------------------------------------- counters
    @property
    def network_calls(self) -> int:
        return self.counter.network_calls

    @property
    def samples_evaluated(self) -> int:
        return self.counter.samples_evaluated

    def reset(self) -> None:
        """Reset the call counter."""
        self.counter.reset()

    # ----------------------------------------------------------------------------------------- public
    @property
    def num_stages(self) -> int | None:
        """None for a single-stage host (t is [B]); S for a multi-stage host (t is [B, S])."""
        return len(self.t_star) if isinstance(self.t_star, tuple) else None

    def constant_t(self, batch: int, device) -> torch.Tensor:
        """The baseline: t* for every sample (int64 [B] or [B, S])."""
        star = torch.tensor(self.t_star if isinstance(self.t_star, tuple) else [self.t_star], dtype=torch.int64)
        t = star.to(device)[None, :].expand(batch, -1).contiguous()
        return t if self.num_stages is not None else t[:, 0]

    def _inputs(self, x, t, seed, sample_ids, draw):
        check_images(x)
        check_seed(seed)
        ids = check_sample_ids(sample_ids, x.shape[0], x.device)
        noise_step(0, 0, draw)  # validates draw
        t = (
            self.constant_t(x.shape[0], x.device)
            if t is None
            else check_timesteps(t, x.shape[0], self.num_stages, x.device)
        )
        return t, ids

    @torch.no_grad()
    def purify(
        self, x: torch.Tensor, t: torch.Tensor | None = None, *, seed: int, sample_ids=None, draw: int = 0, **options
    ):
        """Purify without gradients (active-only fast path). t None → the constant t*; else int64 per sample.
        `options` are host-specific (e.g. DDPMPurifier's reverse_shift)."""
        t, ids = self._inputs(x, t, seed, sample_ids, draw)
        return self._at_resolution(
            x,
            lambda x_s: self._purify(
                x_s, t, seed=seed, sample_ids=ids, draw=draw, grad=False, num_steps=None, **options
            ),
        )

    def purify_grad(
        self,
        x: torch.Tensor,
        t: torch.Tensor | None = None,
        *,
        seed: int,
        sample_ids=None,
        num_steps=None,
        draw: int = 0,
        **options,
    ):
        """Differentiable purification for attacks: the surrogate step count (num_steps, else the host's
        grad default), gradient checkpointing per step, exact gradients through the ops. t as in `purify`."""
        t, ids = self._inputs(x, t, seed, sample_ids, draw)
        with torch.enable_grad():
            return self._at_resolution(
                x,
                lambda x_s: self._purify(
                    x_s, t, seed=seed, sample_ids=ids, draw=draw, grad=True, num_steps=num_steps, **options
                ),
            )

    def _at_resolution(self, x: torch.Tensor, purify_model_space) -> torch.Tensor:
        """[0, 1] → model space → purify (at `resolution` when set) → [0, 1] at the input's size."""
        size = tuple(x.shape[-2:])
        resize = self.resolution is not None and size != (self.resolution, self.resolution)
        if resize:
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode="bilinear", align_corners=False)
        out = (purify_model_space(2 * x - 1) + 1) / 2
        return F.interpolate(out, size=size, mode="bilinear", align_corners=False) if resize else out

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None, *, seed: int, sample_ids=None, draw: int = 0):
        return self.purify(x, t, seed=seed, sample_ids=sample_ids, draw=draw)

    def _purify(self, x_s, t, *, seed, sample_ids, draw, grad, num_steps, **options):  # pragma: no cover
        raise NotImplementedError
