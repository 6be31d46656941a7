"""The embedded MNIST default's architectures: a small CNN classifier and the small ε-prediction DDPM UNet.

Both models take images [B, 1, 28, 28] in [0, 1] (see `ssni.data.mnist`); the diffusion model works in model space
x_s = 2x − 1 like every ssni purifier. The trained weights ship in `ssni/weights/` and load through the registry
(`ssni.models.load("mnist-ddpm")`, `ssni.models.load("mnist-classifier")`); how they were made is `ssni.zoo.mnist`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ssni.data.mnist import MNIST_NATIVE_SIZE, NUM_CLASSES
from ssni.models.ddpm import DDPMUNet, build_ddpm

__all__ = ["MNISTClassifier", "MNISTClassifierConfig", "MNISTDiffusionConfig", "build_mnist_diffusion"]

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

    28 → 14 → 7 with one residual block per level, widths 16/32/32, GroupNorm with 8 groups and attention only in
    the middle block: 0.27M parameters and 93 MFLOP per sample, narrow enough that the CPU demo can evaluate
    hundreds of images with attacks in minutes.
    """

    in_channels: int = 1
    out_ch: int = 1
    ch: int = 16
    ch_mult: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1
    attn_resolutions: tuple[int, ...] = ()
    dropout: float = 0.0
    resamp_with_conv: bool = True
    resolution: int = MNIST_NATIVE_SIZE
    norm_groups: int = 8


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


def build_mnist_diffusion(config: MNISTDiffusionConfig = MNISTDiffusionConfig()) -> DDPMUNet:
    """The MNIST ε-prediction UNet (untrained). forward(x_s [B,1,28,28], t float32 [B]) → ε̂ [B,1,28,28]; t is a
    real-valued label (sinusoidal embedding): the DDPM index 0..999 in the walks, fractional 999·t_k in the score
    norm (`ssni.models.interface`)."""
    return build_ddpm(**asdict(config))
