"""Stand-ins for the files users download, in their real on-disk formats, filled with random values.

Each writer reproduces the container (torch zip pickle, python pickle, safetensors, folder layout), the key names,
the nesting, the dtypes and the shapes of the real file. Key names, shapes and dtypes come from the vendored
manifests (`tests/data/checkpoint-manifests`, made from the original classes), never from ssni's own models, so a
stand-in that loads proves ssni reads the real file. The nesting comes from the original saving code:

- score_sde `checkpoint_8.pth`: `utils.save_checkpoint` saves `{'optimizer': Adam.state_dict(), 'model':
  DataParallel(model).state_dict() (keys 'module.…'), 'ema': {'decay', 'num_updates', 'shadow_params': [tensor, …]
  in model.parameters() order}, 'step': int}`.
- guided-diffusion `256x256_diffusion_uncond.pt`, pytorch_diffusion `model-790000.ckpt`, DiffPure's classifier
  `weights.pt` files (keys with DataParallel's `module.`) and torchvision's `resnet50-0676ba61.pth`: bare state
  dicts. RobustBench's `Standard.pt`: a bare state dict or `{'state_dict': …}` (its loader takes both).
- diffusers `google/ddpm-cifar10-32`: `config.json` + `diffusion_pytorch_model.safetensors` (or `.bin`), at the
  top of the folder or in `unet/` of a pipeline folder.
- EDM: the safetensors file `python -m ssni.models.convert --edm-repo` writes from `edm-cifar10-32x32-uncond-vp.pkl`.
- CIFAR-10 `cifar-10-batches-py/`: pickles of `{'batch_label', 'labels', 'data': uint8 [N, 3072], 'filenames'}`
  plus `batches.meta`.
- ImageNet: `<root>/<wnid>/*.JPEG` class folders with the oddities of the real set (greyscale and CMYK JPEGs, a
  PNG named .JPEG, many sizes and aspect ratios).

`storage="broadcast"` (the default for torch files) stores one random value per output channel and expands it to
the full shape with stride 0: torch.save keeps the view, so a file with the real keys, shapes and dtypes of a
552M-parameter network takes kilobytes and writes in milliseconds. `storage="dense"` writes real-size random
tensors (gigabytes for the largest models). safetensors files are always dense (the format stores contiguous data).
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from reference_data import manifest, manifest_entries

Storage = Literal["broadcast", "dense"]

ADM_MANIFEST = "guided_diffusion_256x256_diffusion_uncond.state_dict"
SCORE_SDE_MANIFEST = "score_sde_cifar10_ddpmpp_deep_continuous.model_state_dict"
SCORE_SDE_EMA_ORDER = "score_sde_cifar10_ddpmpp_deep_continuous.ema_shadow_params_order"
DDPM_MANIFEST = "ddpm_cifar10_ema_model-790000_pytorch_diffusion.state_dict"
DIFFUSERS_MANIFEST = "diffusers_google_ddpm_cifar10_32.unet2dmodel_state_dict"
EDM_MANIFEST = "edm_cifar10_32x32_uncond_vp.ema_state_dict"
WRN_28_10_MANIFEST = "robustbench_cifar10_Standard_WideResNet-28-10.state_dict"
WRN_70_16_MANIFEST = "diffpure_cifar10_WideResNet-70-16-dropout.state_dict"
RESNET50_CIFAR_MANIFEST = "diffpure_cifar10_ResNet-50.state_dict"

#: google/ddpm-cifar10-32 `config.json` (the fields that define the network, as published).
GOOGLE_DDPM_CIFAR10_CONFIG = {
    "_class_name": "UNet2DModel",
    "_diffusers_version": "0.0.4",
    "act_fn": "silu",
    "attention_head_dim": None,
    "block_out_channels": [128, 256, 256, 256],
    "center_input_sample": False,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
    "downsample_padding": 0,
    "flip_sin_to_cos": False,
    "freq_shift": 1,
    "in_channels": 3,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-06,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 32,
    "time_embedding_type": "positional",
    "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
}

#: EDM's `EDMPrecond` constructor arguments as `convert_edm_pickle` records them (`edm_init_kwargs`).
EDM_INIT_KWARGS = {
    "img_resolution": 32,
    "img_channels": 3,
    "label_dim": 0,
    "use_fp16": False,
    "sigma_min": 0,
    "sigma_max": float("inf"),
    "sigma_data": 0.5,
    "model_type": "SongUNet",
    "embedding_type": "positional",
    "encoder_type": "standard",
    "decoder_type": "standard",
    "channel_mult_noise": 1,
    "resample_filter": [1, 1],
    "model_channels": 128,
    "channel_mult": [2, 2, 2],
    "augment_dim": 9,
    "dropout": 0.13,
}

_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "int64": torch.int64}


# ---------------------------------------------------------------------------------------------------------------
# Tensors and state dicts from manifests
# ---------------------------------------------------------------------------------------------------------------
def random_tensor(
    shape: Iterable[int], dtype: str, generator: torch.Generator, storage: Storage, positive: bool = False
) -> torch.Tensor:
    """A tensor of `shape` and `dtype` (a manifest dtype name) with random values: N(0, 0.05²) floats (|·| when
    `positive`; integer tensors, i.e. BatchNorm's num_batches_tracked, get a small count). "broadcast": one value
    per leading index, expanded with stride 0."""
    shape, torch_dtype = list(shape), _DTYPES[dtype]
    if not torch_dtype.is_floating_point:
        return torch.randint(0, 1000, shape, generator=generator, dtype=torch_dtype)
    dense = storage == "dense" or len(shape) == 0
    values = 0.05 * torch.randn(shape if dense else shape[:1], generator=generator, dtype=torch.float32)
    values = (values.abs() if positive else values).to(torch_dtype)
    return values if dense else values.reshape(-1, *([1] * (len(shape) - 1))).expand(shape)


def random_entry(
    key: str, shape: Iterable[int], dtype: str, generator: torch.Generator, storage: Storage
) -> torch.Tensor:
    """The random value of state-dict entry `key`: `random_tensor`, except BatchNorm's `running_var`, which is
    1 + |N(0, 0.05²)| as a trained network's variances are positive (a negative one makes every output NaN) and
    near 1 (so a network of random weights keeps finite activations and gradients through its depth)."""
    if key.endswith("running_var"):
        return 1 + random_tensor(shape, dtype, generator, storage, positive=True)
    return random_tensor(shape, dtype, generator, storage)


def state_dict_from_manifest(
    name: str, *, seed: int = 0, storage: Storage = "broadcast", prefix: str = ""
) -> dict[str, torch.Tensor]:
    """{prefix + key: `random_entry`} with the keys, shapes and dtypes of vendored manifest `name`, in its order."""
    g = torch.Generator().manual_seed(seed)
    return {prefix + key: random_entry(key, shape, dtype, g, storage) for key, shape, dtype in manifest(name)}


def _save(obj: object, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    return path


# ---------------------------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------------------------
def write_score_sde_checkpoint(
    path: Path, *, seed: int = 0, storage: Storage = "broadcast", step: int = 800_001
) -> dict[str, object]:
    """score_sde's `checkpoint_8.pth` (vp/cifar10_ddpmpp_deep_continuous, what DiffPure purifies CIFAR-10 with).

    'model' carries DataParallel's `module.` keys; 'ema'['shadow_params'] holds the trainable parameters by position
    (the manifest's EMA order) with values of its own (the EMA differs from the raw weights); 'optimizer' is Adam's
    state dict over the same parameters (lr 2e-4, betas (0.9, 0.999), eps 1e-8: score_sde's CIFAR-10 config).
    Returns the saved object."""
    g = torch.Generator().manual_seed(seed)
    model = {f"module.{k}": random_tensor(s, d, g, storage) for k, s, d in manifest(SCORE_SDE_MANIFEST)}
    order = manifest_entries(SCORE_SDE_EMA_ORDER)
    shadow = [random_tensor(e["shape"], e["dtype"], g, storage) for e in order]
    adam_state = {
        i: {"step": step, "exp_avg": random_tensor(e["shape"], e["dtype"], g, storage),
            "exp_avg_sq": random_tensor(e["shape"], e["dtype"], g, storage, positive=True)}
        for i, e in enumerate(order)
    }  # fmt: skip
    optimizer = {
        "state": adam_state,
        "param_groups": [
            {"lr": 2e-4, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0, "amsgrad": False,
             "params": list(range(len(order)))}
        ],
    }  # fmt: skip
    checkpoint = {
        "optimizer": optimizer,
        "model": model,
        "ema": {"decay": 0.9999, "num_updates": step, "shadow_params": shadow},
        "step": step,
    }
    _save(checkpoint, path)
    return checkpoint


def write_adm_checkpoint(path: Path, *, seed: int = 0, storage: Storage = "broadcast") -> dict[str, torch.Tensor]:
    """guided-diffusion `256x256_diffusion_uncond.pt`: a bare fp32 state dict (552,814,086 parameters)."""
    state_dict = state_dict_from_manifest(ADM_MANIFEST, seed=seed, storage=storage)
    _save(state_dict, path)
    return state_dict


def write_ddpm_checkpoint(path: Path, *, seed: int = 0, storage: Storage = "broadcast") -> dict[str, torch.Tensor]:
    """pytorch_diffusion `ema_diffusion_cifar10_model/model-790000.ckpt` (what GDMP loads): a bare state dict."""
    state_dict = state_dict_from_manifest(DDPM_MANIFEST, seed=seed, storage=storage)
    _save(state_dict, path)
    return state_dict


def write_diffusers_ddpm_folder(
    folder: Path, *, seed: int = 0, layout: Literal["model", "pipeline"] = "model", weights: str = "safetensors",
    legacy_attention_names: bool = False,
) -> dict[str, torch.Tensor]:  # fmt: skip
    """google/ddpm-cifar10-32 as a diffusers folder (dense weights). layout "model": config.json and the weights at
    the top; "pipeline": model_index.json, scheduler/ and unet/. weights "safetensors" or "bin". Older hub files
    name attention `query/key/value/proj_attn` (legacy_attention_names) instead of `to_q/to_k/to_v/to_out.0`."""
    state_dict = state_dict_from_manifest(DIFFUSERS_MANIFEST, seed=seed, storage="dense")
    if legacy_attention_names:
        renames = {".to_q.": ".query.", ".to_k.": ".key.", ".to_v.": ".value.", ".to_out.0.": ".proj_attn."}
        for new, old in renames.items():
            state_dict = {k.replace(new, old): v for k, v in state_dict.items()}
    unet = folder / "unet" if layout == "pipeline" else folder
    unet.mkdir(parents=True, exist_ok=True)
    (unet / "config.json").write_text(json.dumps(GOOGLE_DDPM_CIFAR10_CONFIG, indent=2))
    if weights == "safetensors":
        from safetensors.torch import save_file

        save_file(state_dict, str(unet / "diffusion_pytorch_model.safetensors"))
    else:
        _save(state_dict, unet / "diffusion_pytorch_model.bin")
    if layout == "pipeline":
        (folder / "model_index.json").write_text(
            json.dumps({"_class_name": "DDPMPipeline", "scheduler": ["diffusers", "DDPMScheduler"],
                        "unet": ["diffusers", "UNet2DModel"]})
        )  # fmt: skip
        (folder / "scheduler").mkdir(exist_ok=True)
        (folder / "scheduler" / "scheduler_config.json").write_text(
            json.dumps({"_class_name": "DDPMScheduler", "beta_start": 0.0001, "beta_end": 0.02,
                        "beta_schedule": "linear", "num_train_timesteps": 1000, "variance_type": "fixed_small"})
        )  # fmt: skip
    return state_dict


def write_edm_converted(path: Path, *, seed: int = 0, edm_class: str = "EDMPrecond") -> dict[str, torch.Tensor]:
    """What `convert_edm_pickle` writes from `edm-cifar10-32x32-uncond-vp.pkl`: the EMA network's state dict
    (dense fp32; `resample_filter` buffers as EDM builds them) with the conversion's metadata."""
    from safetensors.torch import save_file

    state_dict = state_dict_from_manifest(EDM_MANIFEST, seed=seed, storage="dense")
    for key in state_dict:
        if key.endswith("resample_filter"):
            state_dict[key] = torch.full((1, 1, 2, 2), 0.25)  # [1, 1] ⊗ [1, 1] / 4, a fixed buffer
    metadata = {
        "ssni_model": "cifar10-edm-uncond-vp",
        "source": "edm-cifar10-32x32-uncond-vp.pkl",
        "edm_key": "ema",
        "edm_class": edm_class,
        "edm_init_kwargs": json.dumps(EDM_INIT_KWARGS),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state_dict, str(path), metadata=metadata)
    return state_dict


def write_robustbench_standard(
    path: Path, *, seed: int = 0, storage: Storage = "broadcast", wrapped: bool = False
) -> dict[str, torch.Tensor]:
    """RobustBench `models/cifar10/Linf/Standard.pt` (WRN-28-10): a bare state dict, or `{'state_dict': …}` with
    DataParallel's `module.` keys when `wrapped` (RobustBench's loader strips `module.` and takes both)."""
    state_dict = state_dict_from_manifest(WRN_28_10_MANIFEST, seed=seed, storage=storage)
    if wrapped:
        _save({"state_dict": {f"module.{k}": v for k, v in state_dict.items()}}, path)
    else:
        _save(state_dict, path)
    return state_dict


def write_diffpure_classifier(
    path: Path, which: Literal["wrn-70-16-dropout", "resnet-50"], *, seed: int = 0, storage: Storage = "broadcast"
) -> dict[str, torch.Tensor]:
    """DiffPure's `pretrained/cifar10/<which>/weights.pt`: a bare state dict whose keys carry `module.` (DiffPure
    strips 7 characters with `update_state_dict(..., idx_start=7)`). Returns it without the prefix."""
    name = WRN_70_16_MANIFEST if which == "wrn-70-16-dropout" else RESNET50_CIFAR_MANIFEST
    state_dict = state_dict_from_manifest(name, seed=seed, storage=storage)
    _save({f"module.{k}": v for k, v in state_dict.items()}, path)
    return state_dict


def write_torchvision_resnet50(path: Path, *, seed: int = 0, storage: Storage = "broadcast") -> dict[str, torch.Tensor]:
    """torchvision's `resnet50-0676ba61.pth` (IMAGENET1K_V1): a bare state dict with torchvision's keys, shapes and
    dtypes (taken from torchvision's own `resnet50()`, which is what wrote the real file)."""
    import torchvision

    with torch.device("meta"):
        reference = torchvision.models.resnet50().state_dict()
    g = torch.Generator().manual_seed(seed)
    dtypes = {k: str(v.dtype).removeprefix("torch.") for k, v in reference.items()}
    state_dict = {k: random_entry(k, v.shape, dtypes[k], g, storage) for k, v in reference.items()}
    _save(state_dict, path)
    return state_dict


# ---------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------
CIFAR10_LABEL_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_cifar10_batches(folder: Path, *, rows_per_batch: int = 10_000, seed: int = 0) -> Path:
    """`cifar-10-batches-py/` inside `folder`: data_batch_1..5, test_batch (pickles of dicts with uint8 'data'
    [rows, 3072] and int 'labels' [rows]) and batches.meta, with random pixels. Returns the batches folder."""
    root = folder / "cifar-10-batches-py"
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        label = f"training batch {i + 1} of 5" if name != "test_batch" else "testing batch 1 of 1"
        batch = {
            "batch_label": label,
            "labels": [int(v) for v in rng.integers(0, 10, rows_per_batch)],
            "data": np.frombuffer(rng.bytes(rows_per_batch * 3072), dtype=np.uint8).reshape(rows_per_batch, 3072),
            "filenames": [f"stand_in_{i}_{j}.png" for j in range(rows_per_batch)],
        }
        write_python2_pickle(root / name, batch)
    write_python2_pickle(root / "batches.meta", {"num_cases_per_batch": rows_per_batch,
                                                 "label_names": CIFAR10_LABEL_NAMES, "num_vis": 3072})  # fmt: skip
    return root


class _Python2Pickler(pickle._Pickler):
    """Protocol 2 with Python 2's string opcodes: `str` and `bytes` (numpy's raw data included) are written as
    (SHORT_)BINSTRING, as Python 2's cPickle wrote the CIFAR-10 batches; Python 3 reads them back as latin-1
    strings (`encoding="latin1"`), exactly as it reads the real files."""

    def save_binstring(self, obj: str | bytes) -> None:
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + len(data).to_bytes(4, "little") + data)
        self.memoize(obj)

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[bytes] = save_binstring
    dispatch[str] = save_binstring


def write_python2_pickle(path: Path, obj: object) -> Path:
    """`obj` pickled as Python 2 wrote the CIFAR-10 batches (protocol 2, byte strings; text must be latin-1)."""
    with open(path, "wb") as f:
        _Python2Pickler(f, protocol=2).dump(obj)
    return path


def _image(rng: np.random.Generator, width: int, height: int, channels: int) -> np.ndarray:
    """Smooth random colours (low-resolution noise upsampled), so JPEG sizes stay realistic and small."""
    coarse = rng.integers(0, 256, (max(2, height // 16), max(2, width // 16), channels), dtype=np.uint8)
    rows = np.linspace(0, coarse.shape[0] - 1, height).round().astype(int)
    cols = np.linspace(0, coarse.shape[1] - 1, width).round().astype(int)
    return coarse[rows][:, cols]


def image_variants(seed: int = 0) -> list[tuple[str, object]]:
    """(kind, PIL image) pairs with the variety of ImageNet: landscape, portrait, square, tiny and extreme aspect
    RGB, greyscale ("L"), CMYK and a PNG-encoded image (written under a .JPEG name by `write_imagenet_folder`)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    rgb = [(500, 375), (375, 500), (256, 256), (100, 80), (1000, 200), (333, 500)]
    variants = [("rgb", Image.fromarray(_image(rng, w, h, 3), "RGB")) for w, h in rgb]
    variants.append(("grey", Image.fromarray(_image(rng, 400, 300, 1)[..., 0], "L")))
    variants.append(("cmyk", Image.fromarray(_image(rng, 300, 400, 4), "CMYK")))
    variants.append(("png", Image.fromarray(_image(rng, 320, 240, 3), "RGB")))
    return variants


def write_imagenet_folder(
    root: Path, *, classes: int = 10, per_class: int = 5, seed: int = 0, link: bool = True
) -> list[Path]:
    """`root/<wnid>/<wnid>_<k>.JPEG` class folders (ILSVRC naming, wnids n00000000, n00000001, …) cycling through
    `image_variants`; the "png" variant is PNG data under a .JPEG name, as in the real set. `link`: the distinct
    images are written once (next to `root`) and hard-linked, so a 50,000-image val/ costs 9 files of disk.
    Returns the files in the loader's order (sorted by class, then name)."""
    variants = image_variants(seed)
    root.mkdir(parents=True, exist_ok=True)
    originals = root.parent / f".{root.name}-originals"
    originals.mkdir(parents=True, exist_ok=True)
    sources = []
    for i, (kind, im) in enumerate(variants):
        source = originals / f"{i}.JPEG"
        im.save(source, format="PNG" if kind == "png" else "JPEG", quality=90)
        sources.append(source)
    files = []
    for c in range(classes):
        wnid = f"n{c:08d}"
        (root / wnid).mkdir(exist_ok=True)
        for k in range(per_class):
            target = root / wnid / f"{wnid}_{k:05d}.JPEG"
            source = sources[(c * per_class + k) % len(sources)]
            if target.exists():
                target.unlink()
            if link:
                target.hardlink_to(source)
            else:
                target.write_bytes(source.read_bytes())
            files.append(target)
    return files


def write_odd_images(folder: Path, size: int = 32) -> dict[str, tuple[Path, np.ndarray]]:
    """Images of the modes users' files come in, each with the [0, 1] values a correct reader must return
    (greyscale [H, W] or RGB [H, W, 3]): 16-bit greyscale PNG, palette PNG (with and without transparency), LA,
    RGBA, 1-bit, CMYK TIFF. {name: (path, expected)}."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    out: dict[str, tuple[Path, np.ndarray]] = {}

    grey16 = rng.integers(0, 65536, (size, size), dtype=np.uint16)
    Image.fromarray(grey16).save(folder / "grey16.png")
    out["grey16"] = (folder / "grey16.png", grey16 / 65535.0)

    palette = rng.integers(0, 256, (256, 3), dtype=np.uint8)
    index = rng.integers(0, 256, (size, size), dtype=np.uint8)
    pal = Image.fromarray(index, "P")
    pal.putpalette(palette.flatten().tolist())
    pal.save(folder / "palette.png")
    out["palette"] = (folder / "palette.png", palette[index] / 255.0)
    pal.save(folder / "palette_transparent.png", transparency=0)
    out["palette_transparent"] = (folder / "palette_transparent.png", palette[index] / 255.0)

    grey, alpha = (rng.integers(0, 256, (size, size), dtype=np.uint8) for _ in range(2))
    Image.fromarray(np.stack([grey, alpha], -1), "LA").save(folder / "la.png")
    out["la"] = (folder / "la.png", grey / 255.0)

    rgb = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(np.concatenate([rgb, alpha[..., None]], -1), "RGBA").save(folder / "rgba.png")
    out["rgba"] = (folder / "rgba.png", rgb / 255.0)

    bits = rng.integers(0, 2, (size, size)).astype(bool)
    Image.fromarray(bits).convert("1").save(folder / "bilevel.png")
    out["bilevel"] = (folder / "bilevel.png", bits.astype(np.float64))

    cmyk = rng.integers(0, 256, (size, size, 4), dtype=np.uint8)
    Image.fromarray(cmyk, "CMYK").save(folder / "cmyk.tif")
    k = 255 - cmyk[..., 3:].astype(np.int64)  # Pillow's conversion: R = (255 − C)·(255 − K)/255, rounded
    rgb_from_cmyk = np.clip(((255 - cmyk[..., :3].astype(np.int64)) * k + 127) // 255, 0, 255)
    out["cmyk"] = (folder / "cmyk.tif", rgb_from_cmyk / 255.0)
    return out


def write_decompression_bomb(path: Path, width: int = 30_000, height: int = 30_000) -> Path:
    """A 1-bit PNG whose header claims width × height pixels (over Pillow's limit) with almost no data."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    data = zlib.compress(b"\x00" * (1 + (width + 7) // 8) * 16)  # a few rows; the rest is never reached
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


class CodePayload:
    """A pickle payload, as a doctored file would carry: unpickling it runs `os.mkdir(marker)`."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.mkdir, (self.marker,))
