"""What an attack sees of a defence: no-grad predictions, and per-iteration differentiable surrogates with EOT draws.

Every attack in `ssni.attacks` talks to a `DefendedModel` and nothing else, so the attacks know nothing of
purifiers, diffusion models or SSNI. An attack iteration k runs

    f = model.surrogate(x_adv, sample_ids=ids, iteration=k)     # no grad: per-iterate state (SSNI's t) is fixed here
    for j in range(eot): logits_j = f(x_adv.requires_grad_(), draw=k·eot + j)

and averages the gradients (`eot_gradient`). Adapters: `ssni.attacks.adapters` (a bare classifier; a purifier
with a constant or given t) and `ssni.attacks.adaptive.AdaptiveSSNI` (SSNI's t recomputed at every iterate).

Seeds (batch invariance). A defence's randomness is the Philox stream keyed on (seed, sample id, step); an
adapter holds one base `seed` (the evaluation seed, e.g. 121) and derives every other seed from it with
`derive_seed(seed, stream, index)` (a splitmix64 hash, so the seeds of runs 121, 122, 123 never overlap):

- `logits(x)` (the defended prediction) purifies with the base seed itself, exactly as the evaluation does;
- EOT draw d of the gradient path purifies with `derive_seed(seed, STREAM_EOT_DRAW, d)`;
- the adaptive SSNI score norm of iteration k uses `derive_seed(seed, STREAM_SCORE, k)`;
- attack random starts use `derive_seed(seed, STREAM_RANDOM_START, restart)`, and Square's random squares
  `derive_seed(seed, STREAM_SQUARE, 0)`, each keyed on the attack's own seed (AutoAttack "standard" gives its
  components the seeds `derive_seed(seed, STREAM_AUTOATTACK_STANDARD, component)`);
- a GNS vote run that recomputes its score norm (`ssni.purify.gns.vote_score_seed`) uses
  `derive_seed(seed, STREAM_VOTE_SCORE, draw)`.
- forward call k of a defence used as a plain module (`ssni.attacks.interop.DefendedClassifier`) is the defence at
  the seed `derive_seed(seed, STREAM_MODULE_CALL, k)`.

Gradient-free queries (FAB's and Square's predictions, APGD-T's and FAB-T's target ranking) are one no-grad
forward of the surrogate with draw = iteration (`surrogate_logits`), the noise of a one-draw EOT iteration.

The sample ids go with every call, so a sample's noise never depends on its batch position. Derived seeds rather
than the purifiers' `draw` key: attack noise can never coincide with the defence's own noise (draw 0, or GNS's
vote runs on draws 0..runs−1 under the base seed), and there is no 2**16 limit on the number of draws.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

__all__ = [
    "STREAM_AUTOATTACK_STANDARD",
    "STREAM_EOT_DRAW",
    "STREAM_MODULE_CALL",
    "STREAM_RANDOM_START",
    "STREAM_SCORE",
    "STREAM_SQUARE",
    "STREAM_VOTE_SCORE",
    "DefendedModel",
    "EotGradient",
    "SurrogateFn",
    "derive_seed",
    "eot_gradient",
    "surrogate_logits",
]

STREAM_EOT_DRAW = 1
STREAM_SCORE = 2
STREAM_RANDOM_START = 3
STREAM_SQUARE = 4
STREAM_AUTOATTACK_STANDARD = 5
STREAM_VOTE_SCORE = 6
STREAM_MODULE_CALL = 7

_MASK64 = (1 << 64) - 1

SurrogateFn = Callable[..., Tensor]
"""`f(x, *, draw: int) -> logits [B, classes]`, differentiable w.r.t. x [B, ...] in [0, 1]."""


@runtime_checkable
class DefendedModel(Protocol):
    """A defended classifier as attacks see it."""

    def logits(self, x: Tensor, *, sample_ids: Tensor) -> Tensor:
        """No-grad logits [B, classes] of the defence exactly as it is evaluated (its base seed)."""
        ...

    def surrogate(self, x: Tensor, *, sample_ids: Tensor, iteration: int) -> SurrogateFn:
        """The differentiable logits used for gradients at the iterate `x` of attack iteration `iteration`.

        Any state the defence derives from its input (SSNI's per-sample t) is computed here from `x`, without
        gradient, and held fixed for every EOT draw of the returned function.
        """
        ...


def _splitmix64(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def derive_seed(seed: int, stream: int, index: int) -> int:
    """A seed in [0, 2**63) for draw `index` of `stream` under base `seed` (splitmix64 chain; no overlaps)."""
    h = _splitmix64(seed & _MASK64)
    h = _splitmix64(h ^ (stream & _MASK64))
    h = _splitmix64(h ^ (index & _MASK64))
    return h >> 1


@dataclass(frozen=True)
class EotGradient:
    """EOT statistics at one iterate: the mean over draws of the input gradient, per-sample loss and logits."""

    grad: Tensor  # [B, ...], d(Σ_b loss_b)/dx averaged over draws
    loss: Tensor  # [B]
    logits: Tensor  # [B, classes]


def eot_gradient(
    surrogate: SurrogateFn,
    x: Tensor,
    y: Tensor,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    *,
    eot: int,
    iteration: int,
) -> EotGradient:
    """Average over EOT draws `iteration·eot + j`, j < eot, of ∇_x Σ_b loss_fn(f(x, draw), y)_b.

    Draws run one after another, so memory is that of one differentiable forward pass. A NaN/Inf loss or gradient
    raises FloatingPointError rather than silently poisoning the iterate.
    """
    grad = torch.zeros_like(x)
    loss = torch.zeros(x.shape[0], dtype=torch.float32, device=x.device)
    logits_sum = None
    for j in range(eot):
        x_var = x.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = surrogate(x_var, draw=iteration * eot + j)
            per_sample = loss_fn(logits, y)
            (g,) = torch.autograd.grad(per_sample.sum(), x_var)
        grad += g
        loss += per_sample.detach()
        logits_sum = logits.detach() if logits_sum is None else logits_sum + logits.detach()
    if not (torch.isfinite(grad).all() and torch.isfinite(loss).all()):
        raise FloatingPointError(f"non-finite loss or input gradient from the defended model at iteration {iteration}")
    return EotGradient(grad=grad / eot, loss=loss / eot, logits=logits_sum / eot)


def surrogate_logits(model: DefendedModel, x: Tensor, *, sample_ids: Tensor, iteration: int) -> Tensor:
    """No-grad logits [B, classes] of the surrogate at attack iteration `iteration`, with EOT draw `iteration`.

    The attack-side forward pass (fresh defence noise, never the evaluation seed) for attacks that query the model
    without a gradient; for a plain classifier it is the classifier.
    """
    with torch.no_grad():
        return model.surrogate(x, sample_ids=sample_ids, iteration=iteration)(x, draw=iteration)
