"""The adaptive attack on SSNI (spec §8): t is recomputed from the current iterate at every attack iteration.

At iteration k the adapter computes (t, e) = ssni.timesteps(x_adv) without gradient (no gradient through the
score network or the rounding), then every EOT draw of that iteration differentiates
classifier(ssni.purify_grad(x, t=t)) with this t held fixed. Any attack of `ssni.attacks` becomes adaptive by
running it on `AdaptiveSSNI`: pgd_eot, bpda_eot (gradient="bpda"), apgd, autoattack_rand.

Seeds: the score norm of iteration k uses `derive_seed(seed, STREAM_SCORE, k)`, EOT draw d purifies with
`derive_seed(seed, STREAM_EOT_DRAW, d)`; the defended prediction `logits` runs `ssni.purify` with the base seed,
letting SSNI choose t itself exactly as in evaluation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ssni.attacks.adapters import GradientMode, check_bpda_schedule, check_gradient_mode, purified_surrogate
from ssni.attacks.defended import STREAM_SCORE, SurrogateFn, derive_seed

__all__ = ["AdaptiveSSNI"]


@dataclass(frozen=True, eq=False)
class AdaptiveSSNI:
    """`DefendedModel` for classifier ∘ SSNI with t recomputed per iterate.

    ssni: an `ssni.SSNI`-like object with `timesteps(x, *, seed, sample_ids) -> (t, e)`, `purify(x, t=None, *,
      seed, sample_ids)` (no grad; t=None lets SSNI choose) and `purify_grad(x, t=None, *, seed, sample_ids,
      num_steps=None)`; images in [0, 1].
    num_steps: surrogate step count for gradients (None: the purifier's default).
    gradient: "full" (through `purify_grad`) or "bpda" (straight-through around `purify(x, t=t)`).
    bpda_schedule: what the BPDA forward purifies with, "defence" or "surrogate" (`adapters.BPDA_SCHEDULES`).
    predict: as `PurifiedClassifier.predict` (e.g. GNS's vote around SSNI); default classifier(ssni.purify(x)).
    """

    ssni: object
    classifier: nn.Module
    seed: int
    num_steps: int | None = None
    gradient: GradientMode = "full"
    predict: Callable[..., Tensor] | None = None
    bpda_schedule: str = "defence"

    def __post_init__(self) -> None:
        check_gradient_mode(self.gradient)
        check_bpda_schedule(self.bpda_schedule)

    def logits(self, x: Tensor, *, sample_ids: Tensor) -> Tensor:
        with torch.no_grad():
            if self.predict is not None:
                return self.predict(x, sample_ids=sample_ids)
            return self.classifier(self.ssni.purify(x, seed=self.seed, sample_ids=sample_ids))

    def surrogate(self, x: Tensor, *, sample_ids: Tensor, iteration: int) -> SurrogateFn:
        with torch.no_grad():
            t, _ = self.ssni.timesteps(
                x.detach(), seed=derive_seed(self.seed, STREAM_SCORE, iteration), sample_ids=sample_ids
            )
        return purified_surrogate(
            self.ssni,
            self.classifier,
            t,
            seed=self.seed,
            sample_ids=sample_ids,
            num_steps=self.num_steps,
            gradient=self.gradient,
            bpda_schedule=self.bpda_schedule,
        )

    def with_gradient(self, gradient: GradientMode) -> AdaptiveSSNI:
        return dataclasses.replace(self, gradient=gradient)
