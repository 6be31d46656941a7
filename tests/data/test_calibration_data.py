"""Calibration images (spec §3): ImageNet from a TRAIN folder with the reference's horizontal flip, their source
recorded, and a calibration that shares images with the evaluated subset refused."""

from __future__ import annotations

import numpy as np
import pytest
import standins
import torch

from ssni import Calibration
from ssni.data import subsets
from ssni.data.datasets import calibration_images, calibration_overlap
from ssni.data.imagenet import load_imagenet_subset
from ssni.errors import SSNIUserError
from ssni.eval.loading import check_calibration_disjoint
from ssni.eval.presets import get_preset


@pytest.fixture(scope="module")
def train(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet") / "train"
    standins.write_imagenet_folder(root, classes=3, per_class=4)
    return root


def test_imagenet_calibration_reads_the_given_folder_with_a_seeded_flip(train):
    images, source = calibration_images("imagenet", 6, train, image_size=224)
    index = subsets.calibration_subset(12, 6)
    plain = load_imagenet_subset(train, index)[0]
    flip = np.random.RandomState(0).rand(6) < 0.5
    assert 0 < flip.sum() < 6  # both cases occur
    for b in range(6):
        torch.testing.assert_close(images[b], plain[b].flip(-1) if flip[b] else plain[b], rtol=0, atol=0)
    assert source == {
        "dataset": "imagenet", "split": "folder", "folder": str(train.resolve()), "num_files": 12,
        "num_samples": 6, "flip": True,
    }  # fmt: skip


def test_reference_leak_is_refused():
    """Drawing both sets from one 50,000-image folder with data seed 0: the 128 evaluation images are the first
    128 of the 5,000 calibration images (choice(50000, 5000)[:128] == choice(50000, 128))."""
    evaluated = subsets.imagenet_val_subset(0)
    assert np.array_equal(subsets.calibration_subset(50_000)[:128], evaluated)
    folder = "/data/ILSVRC/val"
    source = {"dataset": "imagenet", "split": "folder", "folder": folder, "num_files": 50_000, "num_samples": 5000}
    assert calibration_overlap(source, "imagenet", folder, evaluated) == 128
    assert calibration_overlap(source, "imagenet", "/data/ILSVRC/train", evaluated) == 0
    assert calibration_overlap(None, "imagenet", folder, evaluated) == 0  # files that predate the record
    cifar = {**source, "dataset": "cifar10", "split": "train", "folder": None}
    assert calibration_overlap(cifar, "cifar10", folder, evaluated) == 0  # train batches vs the test batch
    cal = Calibration.from_norms(torch.tensor([1.0, 2.0]), model_id="m", num_levels=50, resolution=(224, 224), seed=121)
    cal.source = source
    with pytest.raises(SSNIUserError, match="--calibration was made from 128 of the 128 images"):
        check_calibration_disjoint(cal, get_preset("imagenet-diffpure"), folder, torch.as_tensor(evaluated))


def test_source_survives_save_and_load(tmp_path, train):
    _, source = calibration_images("imagenet", 4, train, image_size=224)
    cal = Calibration.from_norms(torch.tensor([1.0, 2.0, 4.0]), model_id="m", num_levels=3, resolution=(8, 8), seed=1)
    cal.source = source
    assert Calibration.load(cal.with_tau(2.0).save(tmp_path / "c.json")).source == source
