"""Protocol subsets (spec §3, §8): RandomState(seed).choice(population, size, replace=False), deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from ssni.data.subsets import (
    calibration_subset,
    cifar10_test_subset,
    imagenet_val_subset,
    mnist_test_subset,
    protocol_subset,
)


def test_cifar10_subset_is_the_reference_draw():
    idx = cifar10_test_subset()
    assert idx.shape == (512,) and idx.dtype == np.int64
    assert idx[:5].tolist() == [9394, 898, 2398, 5906, 2343]
    assert np.array_equal(idx, np.random.RandomState(0).choice(10000, 512, replace=False))
    assert len(np.unique(idx)) == 512


def test_subsets_are_deterministic_and_seeded():
    assert np.array_equal(imagenet_val_subset(7), imagenet_val_subset(7))
    assert not np.array_equal(imagenet_val_subset(7), imagenet_val_subset(8))
    assert np.array_equal(imagenet_val_subset(3), np.random.RandomState(3).choice(50000, 128, replace=False))
    assert np.array_equal(mnist_test_subset(1000)[:512], np.random.RandomState(0).choice(10000, 1000, False)[:512])


def test_calibration_subset_draws_from_the_training_split():
    idx = calibration_subset(50_000)
    assert idx.shape == (5000,) and int(idx.max()) < 50_000 and len(np.unique(idx)) == 5000
    assert idx[:5].tolist() == [11841, 19602, 45519, 25747, 42642]


@pytest.mark.parametrize(
    "args, error",
    [
        ((0, 1), ValueError),
        ((10, 11), ValueError),
        ((10, 0), ValueError),
        ((10, 5, -1), ValueError),
        ((10.0, 5), TypeError),
        ((10, True), TypeError),
    ],
)
def test_bad_arguments(args, error):
    with pytest.raises(error):
        protocol_subset(*args)
