"""CIFAR-10 from the user's "python version" batches folder (`data_batch_1..5`, `test_batch`), nothing downloaded.

Images come out as float32 [N, 3, 32, 32] in [0, 1] (ToTensor: pixel k/255), labels int64 [N]. The protocol
subsets (spec §3, §8) are in `ssni.data.subsets`.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from ssni.errors import SSNIUserError

TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)


def _find_root(folder: Path) -> Path:
    for candidate in (folder, folder / "cifar-10-batches-py"):
        if (candidate / "test_batch").is_file():
            return candidate
    raise SSNIUserError(
        f"{folder} is not a CIFAR-10 python batches folder (expected test_batch and data_batch_1..5, as in "
        "cifar-10-python.tar.gz)"
    )


def load_cifar10(folder: str | Path, split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
    """(images [N, 3, 32, 32] float32 in [0, 1], labels [N] int64) of the "train" (50k) or "test" (10k) split."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = _find_root(Path(folder))
    images, labels = [], []
    for name in TRAIN_FILES if split == "train" else TEST_FILES:
        path = root / name
        try:
            with open(path, "rb") as f:
                # The batches are the dataset's own pickles of numpy arrays (the only published format).
                batch = pickle.load(f, encoding="latin1")
            images.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.append(np.asarray(batch["labels"], dtype=np.int64))
        except (OSError, pickle.UnpicklingError, KeyError, ValueError, EOFError) as e:
            raise SSNIUserError(f"{path}: not a readable CIFAR-10 batch ({type(e).__name__}: {e})") from None
    x = torch.from_numpy(np.concatenate(images)).to(torch.float32) / 255.0
    return x, torch.from_numpy(np.concatenate(labels))
