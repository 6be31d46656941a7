"""Uncertainty of the evaluation's numbers: confidence intervals over images, paired differences, AUROC.

The unit of resampling is the image: every accuracy in ssni is measured on a fixed subset of images, each seen
under every seed, so a 95% interval says how much the number could move with another draw of images of the same
distribution. Each function takes per-image data and returns a point estimate with a percentile-bootstrap
interval (B resamples of the images with replacement, a fixed seed, so reports are reproducible):

- `accuracy(correct)`: correct is bool [N, S] (images × seeds); the estimate is the mean over images and seeds
  (in %), resampled over images (an image keeps its S seeds).
- `paired_difference(a, b)`: a − b for two methods on the same images and seeds (in percentage points), with
  the images resampled jointly (the pairing removes the between-image variance both share).
- `auroc(positive, negative)`: P(e_pos > e_neg) + ½·P(e_pos = e_neg) (Mann–Whitney), resampling each group.
- `wilson(k, n)`: the Wilson score interval of a single proportion (one seed, no resampling).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Estimate", "accuracy", "paired_difference", "auroc", "wilson", "BOOTSTRAP_RESAMPLES", "BOOTSTRAP_SEED"]

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    """A number with its 95% interval [low, high]."""

    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.1f} [{self.low:.1f}, {self.high:.1f}]"

    def format(self, digits: int = 1) -> str:
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def _percentiles(samples: np.ndarray) -> tuple[float, float]:
    tail = 100 * (1 - LEVEL) / 2
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def _image_resamples(n: int, resamples: int, seed: int) -> np.ndarray:
    """[resamples, n] image indices drawn with replacement."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _per_image(values) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or values.shape[0] == 0:
        raise ValueError(f"expected per-image values [N] or [N, S] with N > 0, got shape {values.shape}")
    return values


def accuracy(correct, *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> Estimate:
    """Accuracy in % of correct [N] or [N, S] (bool), with a bootstrap interval over images."""
    per_image = _per_image(correct).mean(axis=1)
    boot = per_image[_image_resamples(per_image.size, resamples, seed)].mean(axis=1)
    return Estimate(100 * float(per_image.mean()), *(100 * v for v in _percentiles(boot)))


def paired_difference(a, b, *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> Estimate:
    """Accuracy of a minus accuracy of b, in percentage points, for correct [N] or [N, S] on the same images."""
    a, b = _per_image(a), _per_image(b)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"paired_difference needs the same images, got {a.shape[0]} and {b.shape[0]}")
    diff = a.mean(axis=1) - b.mean(axis=1)
    boot = diff[_image_resamples(diff.size, resamples, seed)].mean(axis=1)
    return Estimate(100 * float(diff.mean()), *(100 * v for v in _percentiles(boot)))


def _auc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Mann–Whitney AUC of every row pair of pos [R, P] and neg [R, Q] (ties count one half)."""
    scores = np.concatenate([pos, neg], axis=1)
    order = np.argsort(scores, axis=1, kind="stable")
    ranks = np.empty_like(scores)
    rows = np.arange(scores.shape[0])[:, None]
    ranks[rows, order] = np.arange(1, scores.shape[1] + 1, dtype=np.float64)
    # Average the ranks of ties (exactly, per row) so that equal scores count one half.
    sorted_scores = np.take_along_axis(scores, order, axis=1)
    for r in range(scores.shape[0]):
        values, start, counts = np.unique(sorted_scores[r], return_index=True, return_counts=True)
        for s, c in zip(start[counts > 1], counts[counts > 1]):
            ranks[r, order[r, s : s + c]] = s + (c + 1) / 2
    p, q = pos.shape[1], neg.shape[1]
    return (ranks[:, :p].sum(axis=1) - p * (p + 1) / 2) / (p * q)


def auroc(positive, negative, *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> Estimate:
    """How well a score separates `positive` (e.g. adversarial score norms) from `negative` (clean): the AUROC
    with a bootstrap interval (each group resampled on its own)."""
    pos, neg = np.asarray(positive, dtype=np.float64).ravel(), np.asarray(negative, dtype=np.float64).ravel()
    if pos.size == 0 or neg.size == 0:
        raise ValueError("auroc needs at least one positive and one negative score")
    rng = np.random.default_rng(seed)
    value = float(_auc(pos[None, :], neg[None, :])[0])
    boot = _auc(
        pos[rng.integers(0, pos.size, (resamples, pos.size))], neg[rng.integers(0, neg.size, (resamples, neg.size))]
    )
    return Estimate(value, *_percentiles(boot))


def wilson(k: int, n: int, z: float = 1.959963984540054) -> Estimate:
    """Proportion k/n in % with its Wilson score interval."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Estimate(100 * p, 100 * max(0.0, centre - half), 100 * min(1.0, centre + half))
