"""Image files: ImageNet class folders with the real set's oddities, every Pillow mode read to [0, 1] by its own
bit depth, and empty / unreadable folders and decompression bombs refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import standins
import torch

from ssni.data.imagenet import list_imagenet_val, load_imagenet_image, load_imagenet_subset
from ssni.data.images import image_to_array, load_images, open_image
from ssni.errors import SSNIUserError


@pytest.fixture(scope="module")
def val(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet") / "val"
    files = standins.write_imagenet_folder(root, classes=3, per_class=3)
    return root, files


def test_val_folder_lists_sorted_files_with_class_index_labels(val):
    root, files = val
    items = list_imagenet_val(root)
    assert [p for p, _ in items] == files
    assert [label for _, label in items] == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_every_variant_loads_at_224_in_unit_range(val):
    root, files = val
    x, y = load_imagenet_subset(root, list(range(len(files))))
    assert x.shape == (9, 3, 224, 224) and x.dtype == torch.float32 and y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    kinds = [kind for kind, _ in standins.image_variants()]
    grey = load_imagenet_image(files[kinds.index("grey")])
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])  # greyscale replicated to RGB


def test_a_png_named_jpeg_and_a_cmyk_jpeg_read_like_their_rgb(tmp_path):
    from PIL import Image

    kinds = dict(standins.image_variants())
    png = kinds["png"]
    png.save(tmp_path / "disguised.JPEG", format="PNG")
    assert torch.equal(load_imagenet_image(tmp_path / "disguised.JPEG"), _reference_crop(png))
    cmyk = kinds["cmyk"]
    cmyk.save(tmp_path / "cmyk.JPEG", format="JPEG", quality=95)
    with Image.open(tmp_path / "cmyk.JPEG") as decoded:
        assert decoded.mode == "CMYK"
        expected = _reference_crop(decoded.convert("RGB"))
    assert torch.equal(load_imagenet_image(tmp_path / "cmyk.JPEG"), expected)


def _reference_crop(im) -> torch.Tensor:
    """torchvision's Resize(256) + CenterCrop(224) + ToTensor on an RGB PIL image (the reference's transform)."""
    from torchvision import transforms

    return transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()])(im)


@pytest.mark.parametrize("size", [(500, 375), (500, 366), (640, 427), (366, 500), (256, 256)])
def test_resize_truncates_as_torchvision(tmp_path, size):
    """Resize(256) sets the long side to int(256·long/short): 500×366 → 349×256 and 640×427 → 383×256
    (rounding would give 350 and 384 and a different crop)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    im.save(tmp_path / "x.png")
    torch.testing.assert_close(load_imagenet_image(tmp_path / "x.png"), _reference_crop(im), rtol=0, atol=0)


@pytest.mark.parametrize("channels", [1, 3])
def test_every_mode_reads_to_unit_range_by_its_bit_depth(tmp_path, channels):
    for name, (path, expected) in standins.write_odd_images(tmp_path).items():
        got = image_to_array(open_image(path), channels)
        assert got.shape == (channels, 32, 32) and got.dtype == np.float32, name
        if expected.ndim == 2:  # greyscale sources: every channel is the grey value
            np.testing.assert_allclose(got, np.broadcast_to(expected, got.shape), atol=1e-6, err_msg=name)
        elif channels == 3:
            np.testing.assert_allclose(got, expected.transpose(2, 0, 1), atol=1e-6, err_msg=name)
        else:  # colour to grey: Pillow's ITU-R 601-2 luma of the expected RGB, within one 8-bit step
            luma = expected @ np.array([0.299, 0.587, 0.114])
            np.testing.assert_allclose(got[0], luma, atol=1.5 / 255, err_msg=name)


def test_sixteen_bit_greyscale_is_not_clipped(tmp_path):
    path, expected = standins.write_odd_images(tmp_path)["grey16"]
    got = image_to_array(open_image(path), 1)[0]
    assert (got == 1.0).mean() < 0.01  # clipping to 8 bits would make almost every pixel 1.0
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_a_folder_of_sixteen_bit_pngs_loads_for_purify(tmp_path):
    from PIL import Image

    values = np.linspace(0, 65535, 28 * 28).astype(np.uint16).reshape(28, 28)
    for i in range(2):
        Image.fromarray(values).save(tmp_path / f"{i}.png")
    x = load_images(tmp_path, channels=1, size=28)
    assert x.shape == (2, 1, 28, 28)
    np.testing.assert_allclose(x[0, 0].numpy(), values / 65535.0, atol=1e-6)


def test_a_decompression_bomb_is_refused_in_one_line(tmp_path):
    path = standins.write_decompression_bomb(tmp_path / "bomb.png")
    with pytest.raises(SSNIUserError) as err:
        open_image(path)
    message = str(err.value)
    assert message.startswith(f"{path}: refused, a possible decompression bomb") and "\n" not in message
    with pytest.raises(SSNIUserError, match="decompression bomb"):
        load_images(tmp_path, channels=1, size=28)


def test_empty_and_unreadable_folders_are_refused(tmp_path):
    (tmp_path / "val").mkdir()
    with pytest.raises(SSNIUserError, match="has no class folders"):
        list_imagenet_val(tmp_path / "val")
    (tmp_path / "val" / "n00000000").mkdir()
    (tmp_path / "val" / "n00000000" / "notes.txt").write_text("no images here")
    with pytest.raises(SSNIUserError, match=r"no images in its 1 class folders"):
        list_imagenet_val(tmp_path / "val")
    with pytest.raises(SSNIUserError, match="does not exist"):
        list_imagenet_val(tmp_path / "missing")
    broken = tmp_path / "val" / "n00000000" / "broken.JPEG"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(SSNIUserError) as err:
        load_imagenet_subset(tmp_path / "val", [0])
    assert str(err.value).startswith(f"{broken}: cannot read image") and "\n" not in str(err.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SSNIUserError, match="no image files"):
        load_images(empty, channels=3, size=32)


def test_a_truncated_jpeg_is_refused_naming_the_file(val, tmp_path):
    _, files = val
    data = files[0].read_bytes()
    cut = tmp_path / "cut.JPEG"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(SSNIUserError) as err:
        load_imagenet_image(cut)
    assert str(err.value).startswith(f"{cut}: cannot read image")


def test_tensor_and_array_files_refuse_code_and_empty_files_in_one_line(tmp_path):
    marker = tmp_path / "the-payload-ran"
    torch.save({"x": standins.CodePayload(str(marker))}, tmp_path / "images.pt")
    with pytest.raises(SSNIUserError) as err:
        load_images(tmp_path / "images.pt", channels=1, size=28)
    assert "refused" in str(err.value) and "\n" not in str(err.value) and not marker.exists()
    (tmp_path / "empty.npy").touch()
    with pytest.raises(SSNIUserError, match="empty.npy: cannot load an array"):
        load_images(tmp_path / "empty.npy", channels=1, size=28)
    torch.save(torch.rand(2, 28, 28), tmp_path / "grey.pt")
    assert load_images(tmp_path / "grey.pt", channels=1, size=28).shape == (2, 1, 28, 28)
