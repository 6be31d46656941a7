"""CIFAR-10 from the user's "python version" batches folder (`data_batch_1..5`, `test_batch`), nothing downloaded.

Each batch file is a pickle of `{'batch_label', 'labels': [N ints], 'data': uint8 ndarray [N, 3072], 'filenames'}`
(pixels channel-major: 1024 red, 1024 green, 1024 blue, each row-major 32×32). They are read with an unpickler that
builds numpy arrays and nothing else, so a doctored file cannot run code. Images come out as float32
[N, 3, 32, 32] in [0, 1] (ToTensor: pixel k/255), labels int64 [N]. The protocol subsets are in
`ssni.data.subsets`.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from ssni.errors import SSNIUserError, one_line

TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
PIXELS = 3 * 32 * 32
NUM_CLASSES = 10

# What a numpy array in a pickle needs (numpy 1 and 2 module names; `_codecs.encode` carries Python 3 bytes).
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays; any other global is refused before it is imported."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"it refers to {module}.{name}, which a CIFAR-10 batch never holds")
        return super().find_class(module, name)


def _find_root(folder: Path) -> Path:
    for candidate in (folder, folder / "cifar-10-batches-py"):
        if (candidate / "test_batch").is_file():
            return candidate
    raise SSNIUserError(
        f"{folder} is not a CIFAR-10 python batches folder (expected test_batch and data_batch_1..5, as in "
        "cifar-10-python.tar.gz)"
    )


def read_cifar10_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(pixels uint8 [N, 3, 32, 32], labels int64 [N]) of one batch file; SSNIUserError (one line) if it is not one."""
    try:
        with open(path, "rb") as f:
            batch = _ArrayUnpickler(f, encoding="latin1").load()
    except FileNotFoundError:
        raise SSNIUserError(f"{path}: missing (the folder needs data_batch_1..5 and test_batch)") from None
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
        reason = one_line(e)[:160] or type(e).__name__
        raise SSNIUserError(f"{path}: not a readable CIFAR-10 batch ({reason})") from None
    if not isinstance(batch, dict) or "data" not in batch or "labels" not in batch:
        found = sorted(map(str, batch)) if isinstance(batch, dict) else type(batch).__name__
        raise SSNIUserError(f"{path}: not a CIFAR-10 batch (expected a dict with 'data' and 'labels', found {found})")
    data, labels = batch["data"], np.asarray(batch["labels"])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != PIXELS:
        shape = f"{data.dtype} {list(data.shape)}" if isinstance(data, np.ndarray) else type(data).__name__
        raise SSNIUserError(f"{path}: 'data' is {shape}, expected uint8 [N, {PIXELS}] (3×32×32 pixels per row)")
    if labels.shape != (data.shape[0],) or labels.dtype.kind not in "iu":
        raise SSNIUserError(f"{path}: 'labels' must be {data.shape[0]} integers (one per row of 'data')")
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise SSNIUserError(f"{path}: labels outside 0..{NUM_CLASSES - 1}")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def load_cifar10(folder: str | Path, split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
    """(images [N, 3, 32, 32] float32 in [0, 1], labels [N] int64) of the "train" (50k) or "test" (10k) split."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = _find_root(Path(folder))
    batches = [read_cifar10_batch(root / name) for name in (TRAIN_FILES if split == "train" else TEST_FILES)]
    x = torch.from_numpy(np.concatenate([b[0] for b in batches])).to(torch.float32) / 255.0
    return x, torch.from_numpy(np.concatenate([b[1] for b in batches]))
