"""GNS, gradual noise scheduling (Lee & Kim 2023; spec §7): several fully denoised DDPM stages and a vote.

Stage s (t*_s = 30, 30, 30, 30, 50, 50, 125, 125 by default) noises the previous stage's output at index
t_s − 1 and denoises it with every index once (n = t_s), active-only. The defence is the majority vote of the
classifier over `runs` independent purifications (`GNSDefense`; run r of draw d uses noise draw d·runs + r).

Per-sample t is int64 [B, S], one column per stage (SSNI applies the same ratio to each stage's t*). The attack
surrogate (`purify_grad`) runs its own stages (default 30, 50, 125 with 1, 1, 5 steps); a surrogate stage takes
the t column of the first defence stage with the same t*.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ssni.purify.base import Purifier
from ssni.purify.ddpm import DDPMPurifier, inject

__all__ = ["GNSPurifier", "GNSDefense", "majority_vote"]

GNS_CIFAR10_STAGES = (30, 30, 30, 30, 50, 50, 125, 125)
GNS_GRAD_STAGES = (30, 50, 125)
GNS_GRAD_STEPS = (1, 1, 5)


def _per_stage(name: str, value, num: int) -> tuple:
    if value is None or isinstance(value, int):
        return (value,) * num
    value = tuple(value)
    if len(value) != num:
        raise ValueError(f"{name} must have one entry per stage ({num}), got {len(value)}")
    return value


class GNSPurifier(Purifier):
    """Multi-stage DDPM purification (GNS) with per-sample, per-stage t.

    t_star: the stages' t*; num_steps: per-stage step counts of the defence (None = every index once);
    grad_t_star / grad_num_steps: the surrogate stages of `purify_grad` and their step counts; eta, alphas_cumprod,
    checkpoint: as DDPMPurifier.
    """

    def __init__(
        self,
        model: nn.Module,
        t_star: Sequence[int] = GNS_CIFAR10_STAGES,
        num_steps: int | Sequence[int | None] | None = None,
        grad_t_star: Sequence[int] = GNS_GRAD_STAGES,
        grad_num_steps: int | Sequence[int | None] | None = GNS_GRAD_STEPS,
        eta: float = 1.0,
        alphas_cumprod: torch.Tensor | None = None,
        checkpoint: bool = True,
    ):
        super().__init__(model, checkpoint)
        self.t_star = tuple(int(s) for s in t_star)
        self.grad_t_star = tuple(int(s) for s in grad_t_star)
        if not self.t_star or not self.grad_t_star:
            raise ValueError("t_star and grad_t_star must list at least one stage")
        missing = [s for s in self.grad_t_star if s not in self.t_star]
        if missing:
            raise ValueError(f"every grad_t_star must be one of t_star {self.t_star}, missing {missing}")
        self.num_steps = _per_stage("num_steps", num_steps, len(self.t_star))
        self.grad_num_steps = _per_stage("grad_num_steps", grad_num_steps, len(self.grad_t_star))
        # One DDPM host per stage value would be redundant: a single one runs every stage (it never reads t_star).
        self.host = DDPMPurifier(
            self.model, t_star=max(self.t_star), eta=eta, alphas_cumprod=alphas_cumprod, checkpoint=checkpoint
        )
        self.host.counter = self.counter

    def _purify(self, x_s, t, *, seed, sample_ids, draw, grad, num_steps):
        if grad:
            columns = [self.t_star.index(s) for s in self.grad_t_star]
            steps = self.grad_num_steps if num_steps is None else _per_stage("num_steps", num_steps, len(columns))
        else:
            columns, steps = list(range(len(self.t_star))), self.num_steps
        ac = self.host.alphas_cumprod
        x = x_s
        for stage, (col, n) in enumerate(zip(columns, steps)):
            ts = t[:, col]
            x = inject(x, ts, ac, seed=seed, sample_ids=sample_ids, draw=draw, stage=stage)
            x = self.host.reverse(
                x, ts, num_steps=n, seed=seed, sample_ids=sample_ids, draw=draw, grad=grad, stage=stage
            )
        return x


def majority_vote(logits: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Votes [B, K] (int64) of the argmax of each run's logits [B, K], and the winner [B] (ties: lowest class)."""
    if not logits:
        raise ValueError("majority_vote needs at least one run")
    votes = sum(F.one_hot(lg.argmax(dim=1), lg.shape[1]) for lg in logits)
    return votes, votes.argmax(dim=1)


class GNSDefense(nn.Module):
    """The GNS defence: `runs` independent purifications, classified, majority vote.

    purifier: a Purifier (GNSPurifier, or any host) or an SSNI wrapping one (t is then computed once from the
    score norm and shared by all runs); classifier: images in [0, 1] → logits [B, K].
    """

    def __init__(self, purifier: nn.Module, classifier: nn.Module, runs: int = 10):
        super().__init__()
        if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
            raise ValueError(f"runs must be an int >= 1, got {runs!r}")
        self.purifier = purifier
        self.classifier = classifier
        self.runs = runs

    @torch.no_grad()
    def votes(self, x: torch.Tensor, t: torch.Tensor | None = None, *, seed: int, sample_ids=None, draw: int = 0):
        """(votes int64 [B, K], prediction int64 [B])."""
        if t is None and not isinstance(self.purifier, Purifier):  # an SSNI wrapper: one score norm for all runs
            t, _ = self.purifier.timesteps(x, seed=seed, sample_ids=sample_ids)
        logits = []
        for r in range(self.runs):
            xp = self.purifier.purify(x, t, seed=seed, sample_ids=sample_ids, draw=draw * self.runs + r)
            logits.append(self.classifier(xp))
        return majority_vote(logits)

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None, *, seed: int, sample_ids=None, draw: int = 0):
        """The predicted labels [B]."""
        return self.votes(x, t, seed=seed, sample_ids=sample_ids, draw=draw)[1]
