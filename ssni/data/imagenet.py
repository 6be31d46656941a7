"""ImageNet images from the user's class-folder trees (`val/<wnid>/*.JPEG`, `train/<wnid>/*.JPEG`), nothing
downloaded.

Labels are the positions of the class folders in sorted order (the torchvision ImageFolder convention, which
matches the 1000-class index of torchvision's ResNet-50 when the folders are the wnids). The file list is sorted
by (class, file name), and the protocol subsets (`RandomState(data_seed).choice(50000, 128)` for evaluation,
`RandomState(0).choice(n_train, 5000)` for calibration) index into it.
Preprocessing (spec §8), torchvision's `Resize(256)` → `CenterCrop(224)` → `ToTensor()` exactly: the shorter side
to 256 and the longer to int(256·long/short) (truncated, as torchvision), bilinear (PIL), then the centre crop;
float32 [3, 224, 224] in [0, 1]. Calibration images are also flipped horizontally with probability 1/2 (the
reference's `RandomHorizontalFlip`), each flip drawn from RandomState(0) so that the set is reproducible.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ssni.data.images import image_to_array, open_image
from ssni.errors import SSNIUserError, one_line

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")


def list_imagenet_val(folder: str | Path) -> list[tuple[Path, int]]:
    """All (file, label) pairs of a class-folder tree, sorted by class then name (hidden folders are not classes)."""
    root = Path(folder)
    if not root.is_dir():
        raise SSNIUserError(f"ImageNet folder {root} {'is a file' if root.exists() else 'does not exist'}")
    try:
        classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not classes:
            raise SSNIUserError(f"{root} has no class folders (expected <wnid>/*.JPEG inside)")
        items = [
            (f, label)
            for label, c in enumerate(classes)
            for f in sorted(c.iterdir())
            if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()
        ]
    except OSError as e:
        raise SSNIUserError(f"ImageNet folder {root}: cannot list it ({one_line(e)})") from None
    if not items:
        raise SSNIUserError(f"{root}: no images in its {len(classes)} class folders (expected <wnid>/*.JPEG)")
    return items


def load_imagenet_image(path: Path, resize: int = 256, crop: int = 224) -> torch.Tensor:
    """One image as RGB float32 [3, crop, crop] in [0, 1]: shorter side resized to `resize` (bilinear), then
    centre-cropped to `crop`. Any mode Pillow reads is accepted (`ssni.data.images.open_image`)."""
    from PIL import Image

    im = open_image(path)
    w, h = im.size
    short, long = min(w, h), max(w, h)
    size_long = int(resize * long / short)  # torchvision's Resize(int): truncation, not rounding
    im = im.resize((resize, size_long) if w <= h else (size_long, resize), Image.BILINEAR)
    w, h = im.size
    left, top = int(round((w - crop) / 2.0)), int(round((h - crop) / 2.0))
    im = im.crop((left, top, left + crop, top + crop))
    return torch.from_numpy(image_to_array(im, channels=3))


def load_imagenet_subset(folder: str | Path, indices, items=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(images [n, 3, 224, 224], labels [n]) of the rows `indices` of the sorted file list (`items`, listed from
    `folder` when not given)."""
    items = list_imagenet_val(folder) if items is None else items
    if max(int(i) for i in indices) >= len(items):
        raise SSNIUserError(f"{folder}: the protocol subset needs {max(indices) + 1} images, found {len(items)}")
    picked = [items[int(i)] for i in indices]
    x = torch.stack([load_imagenet_image(p) for p, _ in picked])
    return x, torch.tensor([label for _, label in picked], dtype=torch.int64)


def random_horizontal_flip(images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """images [n, C, H, W] with each image flipped left-right with probability 1/2, the coins
    `RandomState(seed).rand(n) < 0.5` (the reference flips with torch's global RNG in a DataLoader worker, which
    cannot be reproduced; the distribution is the same)."""
    import numpy as np

    flip = torch.from_numpy(np.random.RandomState(seed).rand(images.shape[0]) < 0.5)
    return torch.where(flip[:, None, None, None], images.flip(-1), images)
