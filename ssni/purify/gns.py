"""GNS, gradual noise scheduling (Lee & Kim 2023; spec §7): several fully denoised DDPM stages and a vote.

Stage s (t*_s = 30, 30, 30, 30, 50, 50, 125, 125 by default) noises the previous stage's output at index
t_s − 1 and denoises it with every index once (n = t_s), active-only: a chain of discrete-walk plans, one per
stage (`ssni.purify.ddpm`). The defence is the majority vote of the classifier over `runs` independent
purifications (`GNSDefense`; run r of draw d uses noise draw d·runs + r). Around SSNI the vote either shares one
score norm (and t) per input, or recomputes it with fresh EPS noise for every run as the authors' evaluation does
(`scores_per_vote`; run r scores with `vote_score_seed`).

Per-sample t is int64 [B, S], one column per stage (SSNI applies the same ratio to each stage's t*). The attack
surrogate (`purify_grad`) runs its own stages (default 30, 50, 125 with 1, 1, 5 steps); a surrogate stage takes
the t column of the first defence stage with the same t*.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ssni.purify.base import Stage
from ssni.purify.ddpm import DiscretePurifier, _check_steps, _check_t_star
from ssni.validate import check_int

__all__ = ["GNSPurifier", "GNSDefense", "majority_vote", "vote_draw", "vote_score_seed"]

GNS_CIFAR10_STAGES = (30, 30, 30, 30, 50, 50, 125, 125)
GNS_GRAD_STAGES = (30, 50, 125)
GNS_GRAD_STEPS = (1, 1, 5)


def per_stage(name: str, value, num: int) -> tuple:
    """One entry per stage: a single value (None or an int) repeated, or a sequence of `num` entries."""
    if value is None or isinstance(value, int):
        return (_check_steps(name, value),) * num
    value = tuple(_check_steps(name, v) for v in value)
    if len(value) != num:
        raise ValueError(f"{name} must have one entry per stage ({num}), got {len(value)}")
    return value


def stage_tuple(name: str, t_star) -> tuple[int, ...]:
    """A non-empty tuple of per-stage t*."""
    stars = tuple(_check_t_star(s) for s in t_star)
    if not stars:
        raise ValueError(f"{name} must list at least one stage")
    return stars


class GNSPurifier(DiscretePurifier):
    """Multi-stage DDPM purification (GNS) with per-sample, per-stage t.

    t_star: the stages' t*; num_steps: per-stage step counts of the defence (None = every index once);
    grad_t_star / grad_num_steps: the surrogate stages of `purify_grad` and their step counts; eta, alphas_cumprod,
    grad_checkpoint, resolution: as DiscretePurifier.
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
        grad_checkpoint: bool = True,
        resolution: int | None = None,
    ):
        super().__init__(
            model, eta=eta, alphas_cumprod=alphas_cumprod, grad_checkpoint=grad_checkpoint, resolution=resolution
        )
        self.t_star = stage_tuple("t_star", t_star)
        self.grad_t_star = stage_tuple("grad_t_star", grad_t_star)
        missing = [s for s in self.grad_t_star if s not in self.t_star]
        if missing:
            raise ValueError(f"every grad_t_star must be one of t_star {self.t_star}, missing {missing}")
        self.num_steps = per_stage("num_steps", num_steps, len(self.t_star))
        self.grad_num_steps = per_stage("grad_num_steps", grad_num_steps, len(self.grad_t_star))

    def stages(self, *, surrogate: bool, num_steps=None) -> tuple[Stage, ...]:
        if not surrogate:
            return tuple(Stage(s, n) for s, n in enumerate(self.num_steps))
        columns = [self.t_star.index(s) for s in self.grad_t_star]
        steps = self.grad_num_steps if num_steps is None else per_stage("num_steps", num_steps, len(columns))
        return tuple(Stage(c, n) for c, n in zip(columns, steps))


def majority_vote(logits: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Votes [B, K] (int64) of the argmax of each run's logits [B, K], and the winner [B] (ties: lowest class)."""
    if not logits:
        raise ValueError("majority_vote needs at least one run")
    votes = sum(F.one_hot(lg.argmax(dim=1), lg.shape[1]) for lg in logits)
    return votes, votes.argmax(dim=1)


def vote_draw(draw: int, runs: int, run: int) -> int:
    """The noise draw of vote run `run` of draw `draw`: draw·runs + r."""
    return draw * runs + run


def vote_score_seed(seed: int, vote: int) -> int:
    """The EPS seed of the vote run with noise draw `vote` (`vote_draw`) when every run recomputes its score norm:
    the base seed for draw 0 (so run 0 keeps the shared norm), else `derive_seed(seed, STREAM_VOTE_SCORE, vote)`."""
    from ssni.attacks.defended import STREAM_VOTE_SCORE, derive_seed

    return seed if vote == 0 else derive_seed(seed, STREAM_VOTE_SCORE, vote)


class GNSDefense(nn.Module):
    """The GNS defence: `runs` independent purifications, classified, majority vote.

    purifier: a Purifier (GNSPurifier, or any host) or an SSNI wrapping one; classifier: images in [0, 1] →
    logits [B, K]; scores_per_vote: with SSNI and no t given, compute the score norm (and t) again for every run
    with fresh EPS noise (the authors' evaluation) instead of once per input for all runs.
    """

    def __init__(self, purifier: nn.Module, classifier: nn.Module, runs: int = 10, scores_per_vote: bool = False):
        super().__init__()
        self.purifier = purifier
        self.classifier = classifier
        self.runs = check_int("runs", runs, low=1)
        self.scores_per_vote = bool(scores_per_vote)

    @torch.no_grad()
    def votes(self, x: torch.Tensor, t: torch.Tensor | None = None, *, seed: int, sample_ids=None, draw: int = 0):
        """(votes int64 [B, K], prediction int64 [B])."""
        scored = t is None and hasattr(self.purifier, "timesteps")  # SSNI chooses t from the score norm
        if scored and not self.scores_per_vote:
            t, _ = self.purifier.timesteps(x, seed=seed, sample_ids=sample_ids)
        logits = []
        for r in range(self.runs):
            draw_r = vote_draw(draw, self.runs, r)
            t_r = t
            if scored and self.scores_per_vote:
                t_r, _ = self.purifier.timesteps(x, seed=vote_score_seed(seed, draw_r), sample_ids=sample_ids)
            logits.append(self.classifier(self.purifier.purify(x, t_r, seed=seed, sample_ids=sample_ids, draw=draw_r)))
        return majority_vote(logits)

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None, *, seed: int, sample_ids=None, draw: int = 0):
        """The predicted labels [B]."""
        return self.votes(x, t, seed=seed, sample_ids=sample_ids, draw=draw)[1]
