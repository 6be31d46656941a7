"""User images for `ssni purify`: a folder of image files, a .pt tensor or a .npy array, checked before use; and
the one image-file reader every dataset uses (`open_image`, `image_to_array`).

Every loader returns float32 [N, C, H, W] in [0, 1]. `check_images` is the one place the CLI's input rules live:
4-D, the model's channels and size, finite, inside [0, 1]. Failures are `SSNIUserError`s of one line naming the
source.

Image files are read with Pillow in any mode, mapped to [0, 1] by their own bit depth: 8-bit greyscale and RGB as
k/255; 16-bit greyscale (PNG `I;16`, `I`) as k/65535; 1-bit as 0/1; palette, CMYK, YCbCr and LAB through Pillow's
RGB conversion; alpha channels (LA, RGBA, PA) are dropped, as torchvision's ImageFolder does. An image whose header
claims more pixels than Pillow's decompression-bomb limit is refused before it is decoded.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from ssni.errors import SSNIUserError, one_line

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
_SIXTEEN_BIT = 65535.0


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        raise SSNIUserError("reading image files needs Pillow: pip install pillow") from None
    return Image


def open_image(path: str | Path):
    """The decoded image at `path` as a Pillow image of mode "RGB", "L" (8 bits) or "F" (greyscale of more than
    8 bits, already scaled to [0, 1]). SSNIUserError (one line, naming the file) for an unreadable file, a
    decompression bomb, or a floating-point image outside [0, 1]."""
    Image = _pillow()
    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as im:
                im.load()
                return _to_standard_mode(im, path)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise SSNIUserError(f"{path}: refused, a possible decompression bomb ({one_line(e)[:200]})") from None
        except (OSError, SyntaxError, ValueError) as e:  # Pillow reports broken files with any of these
            raise SSNIUserError(f"{path}: cannot read image ({one_line(e)[:200]})") from None


def _to_standard_mode(im, path: Path):
    Image = _pillow()
    if im.mode in ("RGB", "L"):
        return im.copy()
    if im.mode == "1":
        return im.convert("L")
    if im.mode.startswith("I"):  # I;16, I;16B, I;16L (16-bit PNG/TIFF) and I (32-bit integer)
        values = np.asarray(im, dtype=np.float64)
        if values.size and (values.min() < 0 or values.max() > _SIXTEEN_BIT):
            raise SSNIUserError(
                f"{path}: {im.mode} integer image with values in [{values.min():g}, {values.max():g}]; only "
                "8- and 16-bit images are supported"
            )
        return Image.fromarray((values / _SIXTEEN_BIT).astype(np.float32))  # float32 → mode "F"
    if im.mode == "F":
        values = np.asarray(im, dtype=np.float32)
        if values.size and not (np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1):
            raise SSNIUserError(f"{path}: floating-point image with values outside [0, 1]")
        return im.copy()
    if im.mode in ("LA", "La"):
        return im.convert("L")
    if im.mode == "P" and "transparency" in im.info:
        return im.convert("RGBA").convert("RGB")
    return im.convert("RGB")  # P, PA, RGBA, RGBa, RGBX, CMYK, YCbCr, LAB, HSV


def image_to_array(im, channels: int) -> np.ndarray:
    """float32 [channels, H, W] in [0, 1] from an `open_image` result: RGB → grey by Pillow's luma (ITU-R 601-2)
    when channels == 1; grey replicated when channels == 3."""
    if im.mode == "RGB" and channels == 1:
        im = im.convert("L")
    array = np.asarray(im, dtype=np.float32)
    if im.mode in ("RGB", "L"):
        array = array / 255.0
    if array.ndim == 2:
        array = np.repeat(array[None], channels, axis=0)
    else:
        array = array.transpose(2, 0, 1)
    return np.ascontiguousarray(array)


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


def _load_folder(folder: Path, channels: int) -> tuple[torch.Tensor, list[str]]:
    try:
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    except OSError as e:
        raise SSNIUserError(f"{folder}: cannot list the folder ({one_line(e)[:200]})") from None
    if not files:
        raise SSNIUserError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    arrays = [image_to_array(open_image(p), channels) for p in files]
    shapes = {a.shape[1:] for a in arrays}
    if len(shapes) > 1:
        raise SSNIUserError(f"{folder}: images have different sizes {sorted(shapes)}")
    return torch.from_numpy(np.stack(arrays)), [p.name for p in files]


def load_images(path: str | Path, *, channels: int, size: int) -> torch.Tensor:
    """Load and validate images from a folder, a .pt file (a tensor) or a .npy file. Returns [N, C, H, W]."""
    return load_named_images(path, channels=channels, size=size)[0]


def load_named_images(path: str | Path, *, channels: int, size: int) -> tuple[torch.Tensor, list[str]]:
    """`load_images` and the name of every image: its file name in a folder (sorted by name, the order of the
    images), `<file>[i]` for row i of a .pt or .npy file."""
    path = Path(path)
    if not path.exists():
        raise SSNIUserError(f"input {path} does not exist")
    names = None
    if path.is_dir():
        x, names = _load_folder(path, channels)
    elif path.suffix == ".pt":
        from ssni.models.checkpoint import CheckpointError, read_checkpoint

        try:
            x = read_checkpoint(path)  # tensors only: a pickle holding code is refused, never run
        except (CheckpointError, OSError) as e:
            raise SSNIUserError(str(e)) from None
    elif path.suffix == ".npy":
        try:
            x = torch.from_numpy(np.load(path, allow_pickle=False))
        except (ValueError, OSError, EOFError) as e:  # EOFError: an empty file
            raise SSNIUserError(f"{path}: cannot load an array ({one_line(e)[:200] or type(e).__name__})") from None
    else:
        raise SSNIUserError(f"{path}: expected a folder of images, a .pt or a .npy file")
    if isinstance(x, torch.Tensor) and x.dim() == 3 and channels == 1 and x.shape[1:] == (size, size):
        x = x[:, None]  # [N, H, W] grayscale
    x = check_images(x, channels=channels, size=size, source=str(path))
    return x, names or [f"{path.name}[{i}]" for i in range(x.shape[0])]
