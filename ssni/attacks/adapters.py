"""Adapters from (purifier, classifier) to `DefendedModel`: no defence, and DBP at the purifier's constant t*."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from ssni.attacks.bpda import straight_through
from ssni.attacks.defended import STREAM_EOT_DRAW, SurrogateFn, derive_seed

__all__ = [
    "BPDA_SCHEDULES",
    "GradientMode",
    "PlainClassifier",
    "check_bpda_schedule",
    "check_gradient_mode",
    "PurifiedClassifier",
    "purified_surrogate",
]

GradientMode = Literal["full", "bpda"]
_GRADIENT_MODES = ("full", "bpda")
#: What BPDA's forward pass purifies with: the defence's own schedule (Lee & Kim's BPDA script sets the attack
#: schedule equal to the defence's), or the attack surrogate's (the authors' SSNI code: its BPDA forward
#: `preprocess` runs the attack schedule, n = 20 on CIFAR-10, plus b for SSNI-N).
BPDA_SCHEDULES = ("defence", "surrogate")


def check_gradient_mode(gradient: str) -> None:
    if gradient not in _GRADIENT_MODES:
        raise ValueError(f"gradient must be one of {_GRADIENT_MODES}, got {gradient!r}")


def check_bpda_schedule(schedule: str) -> None:
    if schedule not in BPDA_SCHEDULES:
        raise ValueError(f"bpda_schedule must be one of {BPDA_SCHEDULES}, got {schedule!r}")


@dataclass(frozen=True, eq=False)
class PlainClassifier:
    """No defence: the classifier alone (inputs in [0, 1]). Baselines and tests."""

    classifier: nn.Module

    def logits(self, x: Tensor, *, sample_ids: Tensor) -> Tensor:
        with torch.no_grad():
            return self.classifier(x)

    def surrogate(self, x: Tensor, *, sample_ids: Tensor, iteration: int) -> SurrogateFn:
        return lambda x_var, *, draw: self.classifier(x_var)

    def with_gradient(self, gradient: GradientMode) -> PlainClassifier:
        """No purifier, so BPDA and full gradients coincide."""
        check_gradient_mode(gradient)
        return self


@dataclass(frozen=True, eq=False)
class PurifiedClassifier:
    """classifier(purifier(x)) at a constant t for every sample: the base DBP defence (and a constant-t sweep).

    purifier: `purify(x, t=None, *, seed, sample_ids, surrogate=False, num_steps=None)` (no grad; surrogate:
      the attack surrogate's schedule) and `purify_grad(x, t=None, *, seed, sample_ids, num_steps=None)`
      (differentiable surrogate), both taking and returning [0, 1]-scale images (`ssni.purify.DDPMPurifier` and
      the other hosts).
    seed: the evaluation seed (e.g. 121); EOT draws derive their own seeds from it (`ssni.attacks.defended`).
    t: None for the purifier's own t*, or an int t given to every sample of whatever batch the attack passes
      (attacks re-batch: AutoAttack runs its second stage on a subset, so a per-batch tensor would not fit).
    num_steps: surrogate step count for gradients (None: the purifier's default).
    gradient: "full" backpropagates through `purify_grad`; "bpda" purifies without gradient and passes the
      gradient w.r.t. the purified image straight to the input (BPDA).
    bpda_schedule: what the BPDA forward purifies with, "defence" or "surrogate" (`BPDA_SCHEDULES`).
    predict: the defended prediction `predict(x, *, sample_ids) -> scores [B, K]` (argmax = label) where it is not
      classifier(purify(x, seed)), e.g. GNS's majority vote (the vote counts); used only to judge success.
    """

    purifier: object
    classifier: nn.Module
    seed: int
    t: int | None = None
    num_steps: int | None = None
    gradient: GradientMode = "full"
    predict: Callable[..., Tensor] | None = None
    bpda_schedule: str = "defence"

    def __post_init__(self) -> None:
        check_gradient_mode(self.gradient)
        check_bpda_schedule(self.bpda_schedule)
        if self.t is not None and (isinstance(self.t, bool) or not isinstance(self.t, int) or self.t < 0):
            raise TypeError(f"t must be None (the purifier's t*) or an int >= 0 for every sample, got {self.t!r}")

    def _t(self, x: Tensor) -> Tensor | None:
        return None if self.t is None else torch.full((x.shape[0],), self.t, dtype=torch.int64, device=x.device)

    def logits(self, x: Tensor, *, sample_ids: Tensor) -> Tensor:
        with torch.no_grad():
            if self.predict is not None:
                return self.predict(x, sample_ids=sample_ids)
            return self.classifier(self.purifier.purify(x, t=self._t(x), seed=self.seed, sample_ids=sample_ids))

    def surrogate(self, x: Tensor, *, sample_ids: Tensor, iteration: int) -> SurrogateFn:
        return purified_surrogate(
            self.purifier,
            self.classifier,
            self._t(x),
            seed=self.seed,
            sample_ids=sample_ids,
            num_steps=self.num_steps,
            gradient=self.gradient,
            bpda_schedule=self.bpda_schedule,
        )

    def with_gradient(self, gradient: GradientMode) -> PurifiedClassifier:
        return dataclasses.replace(self, gradient=gradient)


def purified_surrogate(
    purifier,
    classifier: nn.Module,
    t,
    *,
    seed: int,
    sample_ids: Tensor,
    num_steps: int | None,
    gradient: GradientMode,
    bpda_schedule: str = "defence",
) -> SurrogateFn:
    """`f(x, *, draw) = classifier(purify(x, t))` with the noise of EOT draw `draw`, for a t fixed by the caller
    (None: the purifier's t*). Shared by the constant-t and the adaptive SSNI adapters.
    "full": through `purify_grad` (surrogate steps); "bpda": `purify` without gradient, with the defence's
    schedule or the surrogate's (`bpda_schedule`; num_steps then overrides its step count), then
    `straight_through`.
    """
    check_bpda_schedule(bpda_schedule)
    on_surrogate = bpda_schedule == "surrogate"

    def full(x_var: Tensor, *, draw: int) -> Tensor:
        draw_seed = derive_seed(seed, STREAM_EOT_DRAW, draw)
        return classifier(purifier.purify_grad(x_var, t=t, seed=draw_seed, sample_ids=sample_ids, num_steps=num_steps))

    def bpda(x_var: Tensor, *, draw: int) -> Tensor:
        draw_seed = derive_seed(seed, STREAM_EOT_DRAW, draw)
        with torch.no_grad():
            purified = purifier.purify(
                x_var.detach(), t=t, seed=draw_seed, sample_ids=sample_ids, surrogate=on_surrogate,
                num_steps=num_steps if on_surrogate else None,
            )  # fmt: skip
        return classifier(straight_through(x_var, purified))

    return full if gradient == "full" else bpda
