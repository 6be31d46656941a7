"""CIFAR-10 python batches: the stand-in folder in the real format loads; bad batches are refused in one line."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import standins
import torch

from ssni.data.cifar10 import load_cifar10, read_cifar10_batch
from ssni.errors import SSNIUserError


@pytest.fixture(scope="module")
def batches(tmp_path_factory):
    """A full-size test batch (10,000 rows, 30 MB, as published) and small train batches."""
    folder = tmp_path_factory.mktemp("cifar")
    root = standins.write_cifar10_batches(folder, rows_per_batch=100)
    full = standins.write_cifar10_batches(tmp_path_factory.mktemp("cifar-full"))
    return folder, root, full


def test_the_real_format_loads_as_channel_major_pixels_over_255(batches):
    _, _, full = batches
    x, y = load_cifar10(full.parent, "test")
    assert x.shape == (10_000, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    raw = pickle.load(open(full / "test_batch", "rb"), encoding="latin1")
    data = raw["data"]
    # row 7, pixel (row 3, col 5): red at 3·32+5, green 1024 later, blue 2048 later
    expected = torch.tensor([data[7, c * 1024 + 3 * 32 + 5] for c in range(3)], dtype=torch.float32) / 255
    assert torch.equal(x[7, :, 3, 5], expected)
    assert torch.equal(y, torch.tensor(raw["labels"]))
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0


def test_train_split_concatenates_the_five_batches_and_the_folder_or_its_parent_works(batches):
    folder, root, _ = batches
    x, y = load_cifar10(folder, "train")
    assert x.shape == (500, 3, 32, 32) and y.shape == (500,)
    assert torch.equal(load_cifar10(root, "train")[0], x)


def test_the_stand_in_batches_are_python_2_pickles_like_the_real_ones(batches):
    import pickletools

    _, root, _ = batches
    opcodes = {op.name for op, _, _ in pickletools.genops((root / "batches.meta").read_bytes())}
    assert "SHORT_BINSTRING" in opcodes and "BINUNICODE" not in opcodes  # Python 2 str, as cPickle wrote
    meta = pickle.load(open(root / "batches.meta", "rb"), encoding="latin1")
    assert meta["label_names"][0] == "airplane" and meta["num_vis"] == 3072


def _rewrite(path, **changes):
    batch = pickle.load(open(path, "rb"), encoding="latin1")
    batch.update(changes)
    standins.write_python2_pickle(path, batch)


def test_a_batch_with_the_wrong_shape_is_refused(tmp_path):
    root = standins.write_cifar10_batches(tmp_path, rows_per_batch=10)
    _rewrite(root / "test_batch", data=np.zeros((10, 3000), dtype=np.uint8))
    with pytest.raises(SSNIUserError, match=r"test_batch: 'data' is uint8 \[10, 3000\], expected uint8 \[N, 3072\]"):
        load_cifar10(root, "test")
    _rewrite(root / "test_batch", data=np.zeros((10, 3072), dtype=np.uint8), labels=[0] * 9)
    with pytest.raises(SSNIUserError, match="'labels' must be 10 integers"):
        read_cifar10_batch(root / "test_batch")
    _rewrite(root / "test_batch", labels=[10] * 10)
    with pytest.raises(SSNIUserError, match=r"labels outside 0\.\.9"):
        read_cifar10_batch(root / "test_batch")


def test_truncated_missing_and_foreign_batches_are_refused(tmp_path):
    root = standins.write_cifar10_batches(tmp_path, rows_per_batch=10)
    data = (root / "data_batch_2").read_bytes()
    (root / "data_batch_2").write_bytes(data[: len(data) // 2])
    with pytest.raises(SSNIUserError) as err:
        load_cifar10(root, "train")
    assert str(err.value).startswith(f"{root / 'data_batch_2'}: not a readable CIFAR-10 batch")
    (root / "data_batch_2").unlink()
    with pytest.raises(SSNIUserError, match="data_batch_2: missing"):
        load_cifar10(root, "train")
    standins.write_python2_pickle(root / "test_batch", ["not", "a", "batch"])
    with pytest.raises(SSNIUserError, match="expected a dict with 'data' and 'labels'"):
        load_cifar10(root, "test")
    with pytest.raises(SSNIUserError, match="not a CIFAR-10 python batches folder"):
        load_cifar10(tmp_path / "elsewhere", "test")


def test_a_batch_holding_code_is_refused_without_running_it(tmp_path):
    root = standins.write_cifar10_batches(tmp_path, rows_per_batch=10)
    marker = tmp_path / "the-payload-ran"
    with open(root / "test_batch", "wb") as f:
        pickle.dump({"data": standins.CodePayload(str(marker)), "labels": []}, f, protocol=2)
    with pytest.raises(SSNIUserError) as err:
        load_cifar10(root, "test")
    message = str(err.value)
    assert "posix.mkdir" in message and "\n" not in message and not marker.exists()
