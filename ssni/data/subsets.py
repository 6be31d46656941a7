"""Protocol subsets (spec §3, §8): fixed index sets drawn with `numpy.random.RandomState(seed).choice`.

The indices are those of the reference code, in the order `choice` returns them (not sorted), so per-sample
results line up with published per-sample tables.
"""

from __future__ import annotations

import numpy as np

CIFAR10_TEST_SIZE = 10_000
CIFAR10_EVAL_SUBSET = 512
IMAGENET_VAL_SIZE = 50_000
IMAGENET_EVAL_SUBSET = 128
MNIST_TEST_SIZE = 10_000
MNIST_EVAL_SUBSET = 512
CALIBRATION_SUBSET = 5_000
CALIBRATION_SEED = 0


def protocol_subset(population: int, size: int, seed: int = 0) -> np.ndarray:
    """`RandomState(seed).choice(population, size, replace=False)` as an int64 array of shape [size]."""
    for name, value in (("population", population), ("size", size), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if population <= 0:
        raise ValueError(f"population must be positive, got {population}")
    if not 0 < size <= population:
        raise ValueError(f"size must be in 1..population={population}, got {size}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    return np.random.RandomState(seed).choice(population, size, replace=False).astype(np.int64)


def cifar10_test_subset(size: int = CIFAR10_EVAL_SUBSET) -> np.ndarray:
    """The CIFAR-10 test evaluation subset: RandomState(0).choice(10000, 512, replace=False)."""
    return protocol_subset(CIFAR10_TEST_SIZE, size, seed=0)


def imagenet_val_subset(data_seed: int, size: int = IMAGENET_EVAL_SUBSET) -> np.ndarray:
    """The ImageNet val evaluation subset: RandomState(data_seed).choice(50000, 128, replace=False)."""
    return protocol_subset(IMAGENET_VAL_SIZE, size, seed=data_seed)


def mnist_test_subset(size: int = MNIST_EVAL_SUBSET) -> np.ndarray:
    """The MNIST test evaluation subset, drawn as for CIFAR-10: RandomState(0).choice(10000, size, replace=False)."""
    return protocol_subset(MNIST_TEST_SIZE, size, seed=0)


def calibration_subset(n_train: int, size: int = CALIBRATION_SUBSET) -> np.ndarray:
    """The clean reference set of §3: RandomState(0).choice(n_train, 5000, replace=False) training indices."""
    return protocol_subset(n_train, size, seed=CALIBRATION_SEED)
