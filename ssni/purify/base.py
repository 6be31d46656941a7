"""What every purifier shares: the noise-key layout, the `Purifier` base class and its one execution path.

Noise keys (the one place they are defined)
-------------------------------------------
All randomness comes from the ops' Philox stream, keyed on (seed, sample id, noise word, op); the op fixes its
own stream (noise_inject 0, noise_inject_levels 1, reverse_step 2, vp_sde_step 3). The 32-bit noise word is

    word = index + 2**10 · stage + 2**16 · draw          (index < 1024, stage < 64, draw < 65536)

- index: for a reverse step (reverse_step, vp_sde_step) the step's position p counted from the END of the
  sample's own walk, p = 0 for the last step. With every index visited (the defence, n ≥ t) p equals the
  DDPM index being denoised, so a sample's noise at a diffusion index never depends on its t, n or batch.
  For noise_inject: 0 for the one-shot injection; p + 1 for GDMP's re-noised reference x_adv,t at step p.
- stage: the stage of a multi-stage host (GNS stage s, GDMP repeat k); 0 for single-stage hosts.
- draw: an independent draw of the whole purification (EOT draws of an attack, GNS vote runs: run r of draw d
  uses draw = d·runs + r). The default draw 0 is the defence itself.
- the score norm (§2) uses noise_inject_levels' own layout: level k (0-based) draws with word k.

Hosts
-----
A host (DDPM/DDIM, SDE, GNS, GDMP) defines its purification once, as data: `stages` (which t column and step
count each stage of the defence, or of the attack surrogate, uses), `plan` (the one-shot noising and the
per-sample step table of a stage, `Walks`) and `apply` (one step of any set of rows). `schedule` is what runs:
the stages with `extra_steps` added to every counted stage of a run without gradient (SSNI-N, see
`with_extra_steps`). `Purifier._purify` runs the schedule with `run_active`; the streaming engine
(`ssni.purify.stream`) runs the same plans with continuous batching. Neither branches on the host type.

Counting
--------
`network_calls` counts forward passes of the diffusion network (one per round of compacted samples, or per
chunk of the score norm); `samples_evaluated` counts per-sample evaluations, Σ over calls of the batch size.
With active-only execution a discrete purification with per-sample t costs samples_evaluated = Σ max(t_i, 1).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ssni.models.interface import CallCounter, as_eps_model
from ssni.purify.walks import Walks, run_active
from ssni.validate import check_images, check_int, check_sample_ids, check_seed, check_timesteps

__all__ = ["CallCounter", "Purifier", "Stage", "noise_word", "INDEX_LIMIT", "STAGE_LIMIT", "DRAW_LIMIT"]

INDEX_LIMIT = 2**10
STAGE_LIMIT = 2**6
DRAW_LIMIT = 2**16


def noise_word(index: int, stage: int = 0, draw: int = 0) -> int:
    """The Philox noise word for (index, stage, draw); see the module docstring."""
    check_int("noise index", index, low=0, high=INDEX_LIMIT - 1)
    check_int("stage", stage, low=0, high=STAGE_LIMIT - 1)
    check_int("draw", draw, low=0, high=DRAW_LIMIT - 1)
    return index + INDEX_LIMIT * stage + INDEX_LIMIT * STAGE_LIMIT * draw


@dataclass(frozen=True)
class Stage:
    """One stage of a purification: the column of a [B, S] t it reads (None: t is [B]) and its step count
    (None: the host's full schedule, e.g. every index once)."""

    column: int | None
    num_steps: int | None


class Purifier(nn.Module):
    """Base of the hosts: x in [0, 1] [B, C, H, W] → (x̂_s + 1)/2 (not clamped).

    Subclasses define `t_star` (an int, or a tuple per stage), `stages`, `plan` and `apply` (see the module
    docstring), and optionally `guidance`. `resolution`: None, or the side the diffusion model runs at; inputs of
    another size are resized to it (bilinear) before purification and back after (DiffPure's ImageNet protocol:
    224 → 256 → 224, spec §8). The score norm is not affected: it runs on the input as given.
    `grad_checkpoint`: recompute each step in the backward pass of `purify_grad` (exact: the noise is keyed).
    """

    t_star: int | tuple[int, ...]
    extra_steps = 0

    def __init__(self, model: nn.Module, grad_checkpoint: bool = True, resolution: int | None = None):
        super().__init__()
        self.model = as_eps_model(model)
        self.grad_checkpoint = grad_checkpoint
        self.resolution = check_int("resolution", resolution, low=1, optional=True)
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

    # ----------------------------------------------------------------------------------------- the host
    def stages(self, *, surrogate: bool, num_steps=None) -> tuple[Stage, ...]:  # pragma: no cover - interface
        """The stages of the defence (surrogate False) or of the attack surrogate (surrogate True); `num_steps`
        overrides the host's step count(s)."""
        raise NotImplementedError

    def schedule(self, *, surrogate: bool, grad: bool, num_steps=None) -> tuple[Stage, ...]:
        """The stages a purification runs: `stages`, and without gradient (grad False) `extra_steps` more steps in
        every stage whose step count is given (None, every index or the full grid, already visits them all)."""
        stages = self.stages(surrogate=surrogate, num_steps=num_steps)
        if grad or not self.extra_steps:
            return stages
        return tuple(Stage(s.column, None if s.num_steps is None else s.num_steps + self.extra_steps) for s in stages)

    def with_extra_steps(self, extra: int) -> Purifier:
        """A shallow copy (same network, same counter) whose purifications without gradient take `extra` more
        steps per stage: SSNI-N's n + b of the authors' code, which adds b to the step count of its evaluation
        forward and of its BPDA forward (not of its differentiable attack forward), so that a sample with t up to
        t* − 1 + b still visits every index when n = t*."""
        check_int("extra steps", extra, low=0)
        copied = copy.copy(self)
        copied.extra_steps = extra
        return copied

    def plan(
        self,
        x_s: torch.Tensor,
        t: torch.Tensor,
        sample_ids: torch.Tensor,
        *,
        seed: int,
        draw: int,
        stage: int,
        num_steps,
    ) -> Walks:  # pragma: no cover - interface
        """Noise x_s (model space [B, ...]) at t (int64 [B]) and plan each sample's walk of stage `stage`."""
        raise NotImplementedError

    def apply(
        self, x, eps, coef_a, coef_b, words, sample_ids, *, seed: int
    ) -> torch.Tensor:  # pragma: no cover - interface
        """One step of rows x [k, ...] with network output eps, the rows' table entries coef_a, coef_b (float64
        [k]) and noise words (an int, or int64 [k])."""
        raise NotImplementedError

    def guidance(self, x_s, *, seed: int, sample_ids, draw: int, stage: int, grad: bool):
        """A term added to each step's output (GDMP), or None. Batch execution only."""
        return None

    @property
    def streamable(self) -> bool:
        """Whether the streaming engine can run this host (every host whose steps need no batch-wide term)."""
        return True

    def with_index_shift(self, shift: int) -> Purifier:
        """This host with its reverse walk shifted up by `shift` (the SSNI-L reference quirk, spec §10)."""
        raise ValueError(f"{type(self).__name__} has no discrete reverse walk to shift")

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
        noise_word(0, 0, draw)  # validates draw
        t = (
            self.constant_t(x.shape[0], x.device)
            if t is None
            else check_timesteps(t, x.shape[0], self.num_stages, x.device)
        )
        return t, ids

    @torch.no_grad()
    def purify(
        self,
        x: torch.Tensor,
        t: torch.Tensor | None = None,
        *,
        seed: int,
        sample_ids=None,
        draw: int = 0,
        surrogate: bool = False,
        num_steps=None,
    ):
        """Purify without gradients (active-only fast path). t None → the constant t*; else int64 per sample.
        surrogate: run the attack surrogate's schedule (BPDA's forward in the authors' code) instead of the
        defence's, with `num_steps` overriding its step count."""
        t, ids = self._inputs(x, t, seed, sample_ids, draw)
        return self._at_resolution(
            x,
            lambda x_s: self._purify(
                x_s, t, seed=seed, sample_ids=ids, draw=draw, grad=False, surrogate=surrogate, num_steps=num_steps
            ),
        )

    def purify_grad(
        self, x: torch.Tensor, t: torch.Tensor | None = None, *, seed: int, sample_ids=None, num_steps=None, draw=0
    ):
        """Differentiable purification for attacks: the surrogate step count (num_steps, else the host's
        grad default), gradient checkpointing per step, exact gradients through the ops. t as in `purify`."""
        t, ids = self._inputs(x, t, seed, sample_ids, draw)
        with torch.enable_grad():
            return self._at_resolution(
                x,
                lambda x_s: self._purify(
                    x_s, t, seed=seed, sample_ids=ids, draw=draw, grad=True, surrogate=True, num_steps=num_steps
                ),
            )

    def to_model_space(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] at any size → model space 2x − 1 at `resolution` (bilinear, no corner alignment)."""
        size = (self.resolution, self.resolution)
        if self.resolution is not None and tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return 2 * x - 1

    def from_model_space(self, x_s: torch.Tensor, size) -> torch.Tensor:
        """Model space → [0, 1] at `size` (H, W), resized back when the host ran at another resolution."""
        out = (x_s + 1) / 2
        if tuple(out.shape[-2:]) != tuple(size):
            out = F.interpolate(out, size=tuple(size), mode="bilinear", align_corners=False)
        return out

    def _at_resolution(self, x: torch.Tensor, purify_model_space) -> torch.Tensor:
        return self.from_model_space(purify_model_space(self.to_model_space(x)), x.shape[-2:])

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None, *, seed: int, sample_ids=None, draw: int = 0):
        return self.purify(x, t, seed=seed, sample_ids=sample_ids, draw=draw)

    def as_classifier(self, classifier: nn.Module, *, seed: int, gradient: str = "full", num_steps=None) -> nn.Module:
        """classifier ∘ this defence as a plain `nn.Module` `model(x) -> logits` (x in [0, 1]) that torchattacks,
        AutoAttack and RobustBench attack directly: every call a fresh draw keyed on (seed, call number), gradients
        through the differentiable surrogate ("full") or straight through the purifier ("bpda"); num_steps: the
        surrogate's step count. `ssni.attacks.interop.DefendedClassifier` says how noise and gradients are chosen."""
        from ssni.attacks.interop import DefendedClassifier

        return DefendedClassifier(self, classifier, seed=seed, gradient=gradient, num_steps=num_steps)

    def _purify(self, x_s, t, *, seed, sample_ids, draw, grad, surrogate, num_steps):
        """The schedule's stages in turn, each planned from the previous stage's output and run active-only."""
        x = x_s
        for k, stage in enumerate(self.schedule(surrogate=surrogate, grad=grad, num_steps=num_steps)):
            t_k = t if stage.column is None else t[:, stage.column]
            walks = self.plan(x, t_k, sample_ids, seed=seed, draw=draw, stage=k, num_steps=stage.num_steps)
            guide = self.guidance(x_s, seed=seed, sample_ids=sample_ids, draw=draw, stage=k, grad=grad)
            x = run_active(self, walks, sample_ids, seed=seed, grad=grad, guidance=guide)
        return x
