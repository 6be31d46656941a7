"""Intervals of the evaluation statistics: coverage of known values, agreement with scipy, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from ssni.eval import stats


def test_accuracy_interval_is_over_images_and_deterministic():
    rng = np.random.default_rng(1)
    correct = rng.random((300, 3)) < 0.8
    est = stats.accuracy(correct)
    assert est.value == pytest.approx(100 * correct.mean())
    assert est.low < est.value < est.high and est.high - est.low < 12
    assert stats.accuracy(correct) == est  # fixed bootstrap seed: the same report every time
    # Averaging over seeds first: an image counts once however many seeds saw it.
    assert stats.accuracy(np.repeat(correct[:, :1], 3, axis=1)).value == pytest.approx(100 * correct[:, 0].mean())


def test_bootstrap_interval_covers_the_true_accuracy():
    rng = np.random.default_rng(2)
    hits = sum(
        (lambda e: e.low <= 70 <= e.high)(stats.accuracy(rng.random((256, 1)) < 0.7, resamples=500, seed=k))
        for k in range(60)
    )
    assert hits >= 50  # nominal 95 %: 57 of 60 expected; far fewer would mean a broken interval


def test_paired_difference_removes_the_shared_variance():
    rng = np.random.default_rng(3)
    base = rng.random((200, 3)) < 0.5
    better = base.copy()
    better[:20] = True  # 20 images (10 %) fixed, the rest identical
    diff = stats.paired_difference(better, base)
    assert diff.value == pytest.approx(100 * (better.mean() - base.mean()))
    assert diff.low > 0  # the paired interval excludes 0 ...
    unpaired = stats.accuracy(better).low - stats.accuracy(base).high
    assert unpaired < 0  # ... where two separate intervals overlap
    assert stats.paired_difference(base, base) == stats.Estimate(0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="same images"):
        stats.paired_difference(base, base[:10])


def test_auroc_equals_mann_whitney_with_ties():
    rng = np.random.default_rng(4)
    pos, neg = rng.normal(1, 1, 70).round(1), rng.normal(0, 1, 50).round(1)
    expected = scipy_stats.mannwhitneyu(pos, neg).statistic / (70 * 50)
    est = stats.auroc(pos, neg)
    assert est.value == pytest.approx(expected)
    assert est.low < est.value < est.high
    assert stats.auroc([5.0, 6.0], [1.0, 2.0]).value == 1.0
    assert stats.auroc([1.0, 1.0], [1.0, 1.0]).value == 0.5
    with pytest.raises(ValueError, match="at least one"):
        stats.auroc([], [1.0])


def test_wilson_interval():
    est = stats.wilson(8, 10)
    assert est.value == 80.0
    assert est.low == pytest.approx(49.0, abs=0.1) and est.high == pytest.approx(94.3, abs=0.1)
    assert stats.wilson(0, 5).low == 0.0 and stats.wilson(5, 5).high == 100.0
    with pytest.raises(ValueError):
        stats.wilson(3, 2)
