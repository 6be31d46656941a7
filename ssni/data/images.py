"""User images for `ssni purify`: a folder of image files, a .pt tensor or a .npy array, checked before use.

Every loader returns float32 [N, C, H, W] in [0, 1]. `check_images` is the one place the CLI's input rules live:
4-D, the model's channels and size, finite, inside [0, 1]. Failures are `SSNIUserError`s naming the source.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ssni.errors import SSNIUserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def check_images(x: torch.Tensor, *, channels: int, size: int, source: str = "images") -> torch.Tensor:
    """Validate a batch of images [N, C, H, W] in [0, 1] for a model of `channels` × `size` × `size`."""
    if not isinstance(x, torch.Tensor):
        raise SSNIUserError(f"{source}: expected a tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise SSNIUserError(f"{source}: expected float values in [0, 1], got dtype {x.dtype} (divide uint8 by 255)")
    if x.dim() != 4:
        raise SSNIUserError(f"{source}: expected shape [N, C, H, W], got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise SSNIUserError(f"{source}: no images")
    if x.shape[1] != channels:
        hint = " (looks like [N, H, W, C]: permute to [N, C, H, W])" if x.shape[3] == channels else ""
        raise SSNIUserError(
            f"{source}: expected {channels} channel(s), got {x.shape[1]} (shape {tuple(x.shape)}){hint}"
        )
    if tuple(x.shape[2:]) != (size, size):
        raise SSNIUserError(f"{source}: expected images of {size}×{size}, got {x.shape[2]}×{x.shape[3]}")
    if not torch.isfinite(x).all():
        raise SSNIUserError(f"{source}: contains NaN or Inf values")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise SSNIUserError(f"{source}: values must lie in [0, 1], found [{lo:.4g}, {hi:.4g}]")
    return x.to(torch.float32)


def _load_folder(folder: Path, channels: int) -> torch.Tensor:
    try:
        from PIL import Image
    except ImportError:
        raise SSNIUserError("reading image files needs Pillow: pip install pillow") from None
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SSNIUserError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    mode = "L" if channels == 1 else "RGB"
    arrays = []
    for p in files:
        try:
            with Image.open(p) as im:
                arrays.append(np.asarray(im.convert(mode), dtype=np.float32) / 255.0)
        except OSError as e:
            raise SSNIUserError(f"{p}: cannot read image ({e})") from None
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise SSNIUserError(f"{folder}: images have different sizes {sorted(shapes)}")
    x = torch.from_numpy(np.stack(arrays))
    return x[:, None] if channels == 1 else x.permute(0, 3, 1, 2).contiguous()


def load_images(path: str | Path, *, channels: int, size: int) -> torch.Tensor:
    """Load and validate images from a folder, a .pt file (a tensor) or a .npy file. Returns [N, C, H, W]."""
    path = Path(path)
    if not path.exists():
        raise SSNIUserError(f"input {path} does not exist")
    if path.is_dir():
        x = _load_folder(path, channels)
    elif path.suffix == ".pt":
        try:
            x = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises many types for a corrupt or non-tensor file
            raise SSNIUserError(f"{path}: cannot load a tensor ({type(e).__name__}: {e})") from None
    elif path.suffix == ".npy":
        try:
            x = torch.from_numpy(np.load(path, allow_pickle=False))
        except ValueError as e:
            raise SSNIUserError(f"{path}: cannot load an array ({e})") from None
    else:
        raise SSNIUserError(f"{path}: expected a folder of images, a .pt or a .npy file")
    if isinstance(x, torch.Tensor) and x.dim() == 3 and channels == 1 and x.shape[1:] == (size, size):
        x = x[:, None]  # [N, H, W] grayscale
    return check_images(x, channels=channels, size=size, source=str(path))
