"""The score-aware adaptive attack on SSNI: gradients through the defence's choice of t.

SSNI purifies an input by an amount t(x) chosen from its score norm e(x). `AdaptiveSSNI` recomputes t at every
iterate but takes no gradient through it; an attacker who knows SSNI also pushes e(x) down, so that the input is
treated as clean and barely purified. This module differentiates the whole chain (one EOT draw d):

    e(x)    = ½·(e(x; z) + e(x; −z))                       ssni.scores(x, grad=True, antithetic=False/True): the
                                                          ε-network at the K levels, `score_norm`'s backward; keyed
                                                          level noise z of seed derive_seed(seed, STREAM_SCORE, d)
    t̃(e)    = ssni.continuous_timesteps(e)                 sigmoid / linear reweighting before rounding (float64)
    x̂(x,t̃)  = (1 − w)·P(x, n) + w·P(x, n + 1)               n = min(⌊t̃⌋, 999), w = t̃ − n
    logits  = classifier(x̂(x, t̃(e(x))))

where P(x, n) = ssni.purify_grad(x, t=n) is the host's differentiable purification (surrogate step count, keyed
noise of seed derive_seed(seed, STREAM_EOT_DRAW, d)); both P run in one call with the same sample ids, so they
share every noise draw (injection word 0, the reverse step p from the end of the walk with word p).

Surrogate for the integer t: linear interpolation between the purifications at ⌊t̃⌋ and ⌊t̃⌋ + 1. Why:
- it is exact where the defence is defined: at an integer t̃ = n, x̂ = P(x, n), and rounding t̃ moves the
  defence's t by at most ½ from the point the gradient is taken at;
- ∂x̂/∂t̃ = P(x, n + 1) − P(x, n), the change of the purification over one step of t with the noise held fixed:
  the natural derivative of a function of an integer, with no fresh noise mixed in (keyed noise);
- it works for every single-stage host (DDPM/DDIM and the SDE host take an integer t); a continuous-time
  purification exists only for the SDE host, and the embedded MNIST default is the DDPM host;
- a straight-through estimator (round forward, identity backward) only hides the rounding: it still needs some
  ∂P/∂t, which is what the interpolation supplies.
The price is two purifications per draw (one call of 2B rows). The antithetic pair (z, −z) is a variance
reduction, not a change of the estimand (−z is distributed as z): near the data the score of a level is
≈ −z_k/σ_k, so the gradient of one draw mostly follows its own noise (on the MNIST default, gradients of independent
draws at a clean image have cosine ≈ 0.1, antithetic pairs ≈ 0.95) and stepping along it raises e under any other
noise. SSNI-L's reference+batch e_min/e_max are constants of the batch (no gradient through its minimum/maximum).

Objectives (`ScoreAwareConfig`, the attack maximises L):
- "full" (attack name "score-aware"): L = CE(logits, y), the full gradient through e, t̃ and x̂;
- "full" with λ > 0 ("score-aware-lambda<λ>"): L = CE − λ·relu(e − μ)/σ with μ, σ the clean calibration mean and
  std: a hinge that pulls e(x) into the clean range and vanishes there (λ dimensionless);
- "two-phase" ("score-aware-two-phase"): the first ⌈f·N⌉ of N iterations ascend −e(x) only (no purification:
  2K network passes per draw), the rest run the adaptive attack (`AdaptiveSSNI`: CE through purification at the t
  of the current iterate, no gradient through t), within the same ε-ball around the clean input.
EOT: draw d = k·eot + j of iteration k uses the score seed derive_seed(seed, STREAM_SCORE, d) and the
purification seed derive_seed(seed, STREAM_EOT_DRAW, d) (with eot = 1 the score noise of iteration k is
`AdaptiveSSNI`'s). Memory: the score norm is checkpointed per chunk of `ssni.chunk_size` network rows, the
purification per step (`Purifier.grad_checkpoint`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssni.attacks.adaptive import AdaptiveSSNI
from ssni.attacks.defended import STREAM_EOT_DRAW, STREAM_SCORE, SurrogateFn, derive_seed
from ssni.attacks.losses import cross_entropy
from ssni.attacks.pgd_eot import AttackResult, misclassified, pgd_ascent
from ssni.attacks.threat import check_positive_int
from ssni.schedules import NUM_TRAIN_STEPS

__all__ = [
    "OBJECTIVES",
    "ScoreAwareConfig",
    "ScoreAwareResult",
    "ScoreAwareSSNI",
    "interpolated_purify",
    "score_aware_pgd",
]

Objective = Literal["full", "two-phase"]
OBJECTIVES = ("full", "two-phase")
ATTACK_PREFIX = "score-aware"
_LAMBDA_NAME = re.compile(r"score-aware-lambda(?P<lam>\d+(\.\d+)?(e-?\d+)?)")


@dataclass(frozen=True)
class ScoreAwareConfig:
    """What the score-aware attack maximises (see the module docstring).

    objective: "full" (CE through the score-dependent t) or "two-phase"; lam: λ ≥ 0 of the hinge
    relu(e − μ)/σ subtracted from the CE ("full" only); phase1_fraction: f ∈ (0, 1), the share of the iterations
    spent lowering e(x) ("two-phase" only).
    """

    objective: Objective = "full"
    lam: float = 0.0
    phase1_fraction: float = 0.5

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if isinstance(self.lam, bool) or not isinstance(self.lam, (int, float)) or not self.lam >= 0:
            raise ValueError(f"lam must be a number >= 0, got {self.lam!r}")
        if self.lam and self.objective != "full":
            raise ValueError("lam applies to objective='full' only")
        if not 0.0 < self.phase1_fraction < 1.0:
            raise ValueError(f"phase1_fraction must be in (0, 1), got {self.phase1_fraction!r}")

    @classmethod
    def from_attack_name(cls, name: str) -> ScoreAwareConfig:
        """ "score-aware" → full; "score-aware-lambda<λ>" (e.g. -lambda0.5, -lambda2) → full with λ;
        "score-aware-two-phase" → two-phase (f = ½)."""
        if name == ATTACK_PREFIX:
            return cls()
        if name == f"{ATTACK_PREFIX}-two-phase":
            return cls(objective="two-phase")
        match = _LAMBDA_NAME.fullmatch(name)
        if match is None:
            raise ValueError(
                f"attack name must be 'score-aware', 'score-aware-lambda<λ>' or 'score-aware-two-phase', got {name!r}"
            )
        return cls(lam=float(match["lam"]))

    def phase1_iterations(self, iterations: int) -> int:
        """Iterations that lower e(x) before the adaptive phase (0 for "full"); at least 1 and at most N − 1."""
        if self.objective != "two-phase":
            return 0
        return min(max(1, math.ceil(self.phase1_fraction * iterations)), iterations - 1)


def interpolated_purify(
    purifier, x: Tensor, t: Tensor, *, seed: int, sample_ids: Tensor, num_steps: int | None = None
) -> Tensor:
    """x̂ = (1 − w)·P(x, n) + w·P(x, n + 1), n = min(⌊t⌋, 999), w = t − n: the t-surrogate of the module docstring.

    purifier: a single-stage host (or SSNI) with `purify_grad(x, t=int64 [B], *, seed, sample_ids, num_steps)`;
    x: [B, ...] in [0, 1]; t: continuous timesteps [B] in [0, 1000] (float, may require grad). Differentiable in x
    and t; both purifications run in one call of 2B rows with the same sample ids (same noise). Returns x.dtype.
    """
    if not isinstance(t, Tensor) or not t.is_floating_point() or t.shape != (x.shape[0],):
        raise ValueError(f"t must be a floating tensor of shape [{x.shape[0]}], got {t!r:.80}")
    if not bool(((t >= 0) & (t <= NUM_TRAIN_STEPS)).all()):
        raise ValueError(f"t must lie in [0, {NUM_TRAIN_STEPS}]")
    low = torch.floor(t.detach()).clamp_max(NUM_TRAIN_STEPS - 1).to(torch.int64)
    both = purifier.purify_grad(
        torch.cat([x, x]),
        t=torch.cat([low, low + 1]),
        seed=seed,
        sample_ids=torch.cat([sample_ids, sample_ids]),
        num_steps=num_steps,
    )
    at_low, at_high = both.split(x.shape[0])
    w = (t - low).to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
    return at_low + w * (at_high - at_low)


@dataclass(frozen=True, eq=False)
class ScoreAwareSSNI:
    """`DefendedModel` for classifier ∘ SSNI whose surrogate differentiates through e(x) and t (objective "full"
    with λ = 0), so that pgd_eot, apgd and autoattack_rand run score-aware; `score_aware_pgd` runs every objective.

    ssni: an `ssni.SSNI` around a single-stage host (`scores(x, *, seed, sample_ids, grad)`,
      `continuous_timesteps(e)`, `timesteps`, `purify`, `purify_grad`, `calibration`); classifier: on [0, 1] images;
    seed: the evaluation seed; num_steps: surrogate step count of `purify_grad` (None: the host's default);
    antithetic: each draw's e(x) is the mean over the keyed level noise z and its antithetic −z (twice the K
    network passes; see the module docstring), else e(x; z) alone.
    """

    ssni: nn.Module
    classifier: nn.Module
    seed: int
    num_steps: int | None = None
    antithetic: bool = True

    def __post_init__(self) -> None:
        if self.ssni.purifier.num_stages is not None:
            raise ValueError("the score-aware attack needs a single-stage host (DDPM/DDIM or SDE), not GNS/GDMP")

    @classmethod
    def from_adaptive(cls, model: AdaptiveSSNI, *, antithetic: bool = True) -> ScoreAwareSSNI:
        """The score-aware view of the defence an `AdaptiveSSNI` wraps (same SSNI, classifier, seed, steps)."""
        if not isinstance(model, AdaptiveSSNI):
            raise TypeError(f"model must be an AdaptiveSSNI, got {type(model).__name__}")
        if model.predict is not None or model.gradient != "full":
            raise ValueError("the score-aware attack needs AdaptiveSSNI with full gradients and its own prediction")
        return cls(model.ssni, model.classifier, model.seed, num_steps=model.num_steps, antithetic=antithetic)

    @property
    def adaptive(self) -> AdaptiveSSNI:
        """The same defence as the adaptive attack sees it (t of the iterate, no gradient through t)."""
        return AdaptiveSSNI(self.ssni, self.classifier, self.seed, num_steps=self.num_steps)

    def logits(self, x: Tensor, *, sample_ids: Tensor) -> Tensor:
        return self.adaptive.logits(x, sample_ids=sample_ids)

    def scores(self, x: Tensor, *, sample_ids: Tensor, draw: int) -> Tensor:
        """Differentiable e(x) [B] with the score noise of EOT draw `draw` (the antithetic pair's mean, if set)."""
        seed = derive_seed(self.seed, STREAM_SCORE, draw)
        signs = (False, True) if self.antithetic else (False,)
        e = [self.ssni.scores(x, seed=seed, sample_ids=sample_ids, grad=True, antithetic=a) for a in signs]
        return sum(e) / len(e)

    def scored_logits(self, x: Tensor, *, sample_ids: Tensor, draw: int) -> tuple[Tensor, Tensor, Tensor]:
        """(logits [B, classes], e [B], t̃ float64 [B]) of EOT draw `draw`, all differentiable in x."""
        e = self.scores(x, sample_ids=sample_ids, draw=draw)
        t = self.ssni.continuous_timesteps(e)
        purified = interpolated_purify(
            self.ssni,
            x,
            t,
            seed=derive_seed(self.seed, STREAM_EOT_DRAW, draw),
            sample_ids=sample_ids,
            num_steps=self.num_steps,
        )
        return self.classifier(purified), e, t

    def surrogate(self, x: Tensor, *, sample_ids: Tensor, iteration: int) -> SurrogateFn:
        """No per-iterate state: t is a differentiable function of the input of each draw."""
        return lambda x_var, *, draw: self.scored_logits(x_var, sample_ids=sample_ids, draw=draw)[0]

    def reached(self, x: Tensor, *, sample_ids: Tensor) -> tuple[Tensor, Tensor]:
        """(e, t) [B] the defence computes for x at its evaluation seed (no gradient)."""
        with torch.no_grad():
            t, e = self.ssni.timesteps(x, seed=self.seed, sample_ids=sample_ids)
        return e, t


@dataclass(frozen=True)
class ScoreAwareResult(AttackResult):
    """`AttackResult` plus what the defence makes of x_adv at its evaluation seed: e [B] (score norms) and t [B]
    (int64, the timesteps it purifies with)."""

    e: Tensor | None = None
    t: Tensor | None = None

    @property
    def mean_e(self) -> float:
        return float(self.e.double().mean())

    @property
    def mean_t(self) -> float:
        return float(self.t.double().mean())


def _iteration_objective(
    model: ScoreAwareSSNI, config: ScoreAwareConfig, k: int, phase1: int, x_adv: Tensor, sample_ids: Tensor
) -> tuple[SurrogateFn, Callable[[Tensor, Tensor], Tensor]]:
    """(surrogate, per-sample loss) of iteration k (phase1: the iterations that only lower e). For the score terms
    the surrogate returns e(x) as an extra last column (after the logits, if any), which the matching loss reads."""
    if k < phase1:
        return (
            lambda x_var, *, draw: model.scores(x_var, sample_ids=sample_ids, draw=draw)[:, None],
            lambda e, y: -e[:, 0].float(),
        )
    if config.objective == "two-phase":
        return model.adaptive.surrogate(x_adv, sample_ids=sample_ids, iteration=k), cross_entropy
    if config.lam == 0:
        return model.surrogate(x_adv, sample_ids=sample_ids, iteration=k), cross_entropy
    cal = model.ssni.calibration

    def logits_and_e(x_var: Tensor, *, draw: int) -> Tensor:
        logits, e, _ = model.scored_logits(x_var, sample_ids=sample_ids, draw=draw)
        return torch.cat([logits.float(), e[:, None].float()], dim=1)

    def penalised_ce(out: Tensor, y: Tensor) -> Tensor:
        return cross_entropy(out[:, :-1], y) - config.lam * F.relu(out[:, -1] - cal.mean) / cal.std

    return logits_and_e, penalised_ce


def score_aware_pgd(
    model: ScoreAwareSSNI,
    x: Tensor,
    y: Tensor,
    *,
    sample_ids: Tensor,
    config: ScoreAwareConfig | None = None,
    iterations: int = 200,
    check_success: bool = False,
    **budget,
) -> ScoreAwareResult:
    """PGD-EOT on the score-aware objective `config` (default: "full", λ = 0), from x [B, ...] in [0, 1].

    The loop and the budget are `pgd_eot`'s (`pgd_ascent`: eps (required), norm, eot, step_size, l2_step,
    random_start and seed, on_iteration; sign / normalised-gradient ascent on the EOT-averaged objective, every
    iteration runs). The result
    also holds the e and t the defence computes for x_adv at its evaluation seed (`.mean_e`, `.mean_t`).
    """
    config = ScoreAwareConfig() if config is None else config
    if not isinstance(config, ScoreAwareConfig):
        raise TypeError(f"config must be a ScoreAwareConfig, got {type(config).__name__}")
    check_positive_int(iterations, "iterations")
    if config.objective == "two-phase" and iterations < 2:
        raise ValueError(f"the two-phase objective needs iterations >= 2, got {iterations}")
    phase1 = config.phase1_iterations(iterations)

    def objective(k: int, x_adv: Tensor):
        return _iteration_objective(model, config, k, phase1, x_adv, sample_ids)

    x_adv = pgd_ascent(objective, x, y, sample_ids=sample_ids, iterations=iterations, **budget)
    success = misclassified(model, x_adv, y, sample_ids) if check_success else None
    e, t = model.reached(x_adv, sample_ids=sample_ids)
    return ScoreAwareResult(x_adv=x_adv, success=success, e=e, t=t)
