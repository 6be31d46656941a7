"""The embedded MNIST default: a small CNN classifier and the preset of the small ε-prediction DDPM UNet.

Both models take images [B, 1, 28, 28] in [0, 1] (see `ssni.data.mnist`); the diffusion model works in model space
x_s = 2x − 1 like every ssni purifier (spec §1). The trained weights ship in `ssni/weights/` as safetensors whose
metadata records the config; loading checks that config and the tensor names/shapes strictly.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import nn

from ssni.data.mnist import MNIST_NATIVE_SIZE, NUM_CLASSES

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
MNIST_CLASSIFIER_WEIGHTS = WEIGHTS_DIR / "mnist_classifier.safetensors"
MNIST_DIFFUSION_WEIGHTS = WEIGHTS_DIR / "mnist_ddpm.safetensors"
MNIST_CALIBRATION = WEIGHTS_DIR / "mnist_calibration.json"
MNIST_CLASSIFIER_KIND = "mnist-classifier"
MNIST_DIFFUSION_KIND = "mnist-ddpm"

# Normalisation statistics of the MNIST training images in [0, 1]; applied inside the classifier's forward.
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081


@dataclass(frozen=True)
class MNISTClassifierConfig:
    """Three stages of (3×3 conv, ReLU, 2×2 max-pool): 28 → 14 → 7 → 3, then a hidden linear layer and the logits.

    One conv per stage rather than two: a 32-channel conv at 28×28 dominates CPU training time (measured 7×).
    """

    channels: tuple[int, ...] = (32, 64, 128)
    hidden: int = 128
    dropout: float = 0.3
    image_size: int = MNIST_NATIVE_SIZE
    num_classes: int = NUM_CLASSES


@dataclass(frozen=True)
class MNISTDiffusionConfig:
    """Keyword arguments of `ssni.models.ddpm.build_ddpm` (pytorch_diffusion names) for the MNIST UNet.

    28 → 14 → 7 with one residual block per level and self-attention at 7×7: 1.11M parameters.
    """

    in_channels: int = 1
    out_ch: int = 1
    ch: int = 32
    ch_mult: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1
    attn_resolutions: tuple[int, ...] = (7,)
    dropout: float = 0.0
    resamp_with_conv: bool = True
    resolution: int = MNIST_NATIVE_SIZE


class MNISTClassifier(nn.Module):
    """Small CNN for MNIST. forward: x [B, 1, S, S] float in [0, 1] → logits [B, num_classes] (S = image_size)."""

    def __init__(self, config: MNISTClassifierConfig = MNISTClassifierConfig()):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        side, in_ch = config.image_size, 1
        for out_ch in config.channels:
            layers += [nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            side, in_ch = side // 2, out_ch
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_ch * side * side, config.hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, config.num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = self.config.image_size
        if x.dim() != 4 or x.shape[1] != 1 or x.shape[2] != size or x.shape[3] != size:
            raise ValueError(f"x must have shape [B, 1, {size}, {size}], got {list(x.shape)}")
        return self.head(self.features((x - MNIST_MEAN) / MNIST_STD))


def build_mnist_diffusion(config: MNISTDiffusionConfig = MNISTDiffusionConfig()) -> nn.Module:
    """The MNIST ε-prediction UNet (untrained). forward(x_s [B,1,28,28], t int64 [B] in 0..999) → ε̂ [B,1,28,28]."""
    from ssni.models.ddpm import build_ddpm

    return build_ddpm(**asdict(config))


def save_weights(model: nn.Module, path: Path, kind: str, config, extra: dict[str, str] | None = None) -> None:
    """Write `model.state_dict()` (float32, contiguous) as safetensors; metadata: model kind, config JSON, `extra`."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().to(torch.float32).contiguous() for k, v in model.state_dict().items()}
    metadata = {"ssni_model": kind, "config": json.dumps(asdict(config), sort_keys=True)} | (extra or {})
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)


def read_weights(path: Path, kind: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(state dict, metadata) of an ssni safetensors file; FileNotFoundError/ValueError naming the path."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{kind} weights not found at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
        state = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path} is not a readable safetensors file: {err}") from err
    if metadata.get("ssni_model") != kind or "config" not in metadata:
        raise ValueError(f"{path} holds model kind {metadata.get('ssni_model')!r}, expected {kind!r} with a config")
    return state, metadata


def _config_from_metadata(cls, metadata: dict[str, str]):
    values = json.loads(metadata["config"])
    names = {f.name for f in fields(cls)}
    if set(values) != names:
        raise ValueError(f"stored config keys {sorted(values)} do not match {cls.__name__} fields {sorted(names)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def weights_id(path: Path, kind: str) -> str:
    """Identity of a weights file for calibrations: '<kind>:<first 16 hex digits of its SHA-256>'."""
    from ssni.data.mnist import file_sha256

    return f"{kind}:{file_sha256(Path(path))[:16]}"


def mnist_diffusion_id(path: Path | None = None) -> str:
    """The `model_id` that MNIST calibrations record for the shipped (or given) diffusion weights."""
    return weights_id(path or MNIST_DIFFUSION_WEIGHTS, MNIST_DIFFUSION_KIND)


def load_mnist_classifier(path: Path | None = None) -> MNISTClassifier:
    """The shipped (or given) trained MNIST classifier in eval mode, built from the config stored in the file."""
    state, metadata = read_weights(path or MNIST_CLASSIFIER_WEIGHTS, MNIST_CLASSIFIER_KIND)
    model = MNISTClassifier(_config_from_metadata(MNISTClassifierConfig, metadata))
    model.load_state_dict(state, strict=True)
    return model.eval()


def load_mnist_diffusion(path: Path | None = None) -> nn.Module:
    """The shipped (or given) trained MNIST ε-prediction UNet in eval mode, built from the config stored in the file."""
    state, metadata = read_weights(path or MNIST_DIFFUSION_WEIGHTS, MNIST_DIFFUSION_KIND)
    model = build_mnist_diffusion(_config_from_metadata(MNISTDiffusionConfig, metadata))
    model.load_state_dict(state, strict=True)
    return model.eval()
