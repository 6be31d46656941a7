"""Classifiers used by DBP evaluations, with the original parameter names (state dicts load with strict=True).

All take images in [0, 1] (N, 3, H, W). Input normalisation, where the original applies one, is an
`InputNormalization` submodule whose mean/std are non-persistent buffers, so it adds no state-dict keys.

- `WideResNet(depth, num_classes, widen_factor, sub_block1, dropRate, bias_last, normalization=None)`:
  RobustBench `model_zoo/architectures/wide_resnet.py` (no normalisation; "Standard" WRN-28-10). With
  `normalization="cifar10"` and `dropRate=0.3` it is DiffPure's `classifiers/cifar10_resnet.py::WideResNet`
  (`WideResNet_70_16_dropout`: CIFAR-10 mean/std inside forward, dropout between the two convs of a block).
  Keys: `conv1`, `block{1,2,3}.layer.<i>.{bn1,conv1,bn2,conv2,convShortcut}`, [`sub_block1.*`], `bn1`, `fc`.
- `CifarResNet50()`: DiffPure's CIFAR-10 `ResNet50` (3×3 stem, no max-pool, CIFAR mean/std inside forward).
  Keys: `conv1, bn1, layer<k>.<i>.{conv1,bn1,conv2,bn2,conv3,bn3,shortcut.0,shortcut.1}, linear`.
- `ResNet50()`: torchvision `resnet50` (stride on the 3×3 conv of each bottleneck, as torchvision), wrapped with
  ImageNet mean/std normalisation as DiffPure's `_Wrapper_ResNet` does. Keys as torchvision:
  `conv1, bn1, layer<k>.<i>.{conv1,bn1,conv2,bn2,conv3,bn3,downsample.0,downsample.1}, fc`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CifarResNet50",
    "InputNormalization",
    "ResNet50",
    "WideResNet",
    "build_cifar_resnet50",
    "build_resnet50",
    "build_wrn",
    "build_wrn_diffpure",
]

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2471, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_NORMALIZATIONS = {"cifar10": (CIFAR10_MEAN, CIFAR10_STD), "imagenet": (IMAGENET_MEAN, IMAGENET_STD)}


class InputNormalization(nn.Module):
    """(x − mean) / std per channel; mean/std are non-persistent buffers (no state-dict entries)."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(-1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


def _normalization(name: str | None) -> nn.Module:
    if name is None:
        return nn.Identity()
    if name not in _NORMALIZATIONS:
        raise ValueError(f"normalization must be None or one of {sorted(_NORMALIZATIONS)}, got {name!r}")
    return InputNormalization(*_NORMALIZATIONS[name])


# --------------------------------------------------------------------------- WideResNet (RobustBench / DiffPure)


class BasicBlock(nn.Module):
    """Pre-activation wide block: BN-ReLU-conv3×3(stride)-BN-ReLU-[dropout]-conv3×3, plus identity or 1×1 conv."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, dropRate: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.droprate = dropRate
        self.equalInOut = in_planes == out_planes
        self.convShortcut = (
            None if self.equalInOut else nn.Conv2d(in_planes, out_planes, 1, stride=stride, padding=0, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        # A projecting block feeds the pre-activated input to the shortcut too (as the original).
        shortcut = x if self.equalInOut else self.convShortcut(pre)
        out = F.relu(self.bn2(self.conv1(pre)))
        if self.droprate > 0:
            out = F.dropout(out, p=self.droprate, training=self.training)
        return shortcut + self.conv2(out)


class NetworkBlock(nn.Module):
    def __init__(self, nb_layers: int, in_planes: int, out_planes: int, stride: int, dropRate: float):
        super().__init__()
        self.layer = nn.Sequential(
            *(
                BasicBlock(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1, dropRate)
                for i in range(nb_layers)
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class WideResNet(nn.Module):
    """WRN-depth-widen_factor for 32×32 inputs in [0, 1]; logits [N, num_classes]."""

    def __init__(
        self,
        depth: int = 28,
        num_classes: int = 10,
        widen_factor: int = 10,
        sub_block1: bool = False,
        dropRate: float = 0.0,
        bias_last: bool = True,
        normalization: str | None = None,
    ):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WideResNet depth must be 6n + 4, got {depth}")
        n = (depth - 4) // 6
        channels = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.normalize = _normalization(normalization)
        self.conv1 = nn.Conv2d(3, channels[0], 3, stride=1, padding=1, bias=False)
        self.block1 = NetworkBlock(n, channels[0], channels[1], 1, dropRate)
        if sub_block1:
            # Present in the original (unused in forward) so that such checkpoints load.
            self.sub_block1 = NetworkBlock(n, channels[0], channels[1], 1, dropRate)
        self.block2 = NetworkBlock(n, channels[1], channels[2], 2, dropRate)
        self.block3 = NetworkBlock(n, channels[2], channels[3], 2, dropRate)
        self.bn1 = nn.BatchNorm2d(channels[3])
        self.fc = nn.Linear(channels[3], num_classes, bias=bias_last)
        self.nChannels = channels[3]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)))
            elif isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.normalize(x))
        out = self.block3(self.block2(self.block1(out)))
        out = F.relu(self.bn1(out))
        out = F.avg_pool2d(out, 8).reshape(-1, self.nChannels)
        return self.fc(out)


def build_wrn(**kwargs) -> WideResNet:
    """RobustBench WideResNet from its keyword arguments (no input normalisation); defaults = WRN-28-10."""
    if "normalization" in kwargs:
        raise TypeError("build_wrn: RobustBench's WideResNet has no input normalisation; use 'wrn-diffpure'")
    return WideResNet(**kwargs)


def build_wrn_diffpure(**kwargs) -> WideResNet:
    """DiffPure's WideResNet (CIFAR-10 mean/std inside forward) from the same keyword arguments.

    Defaults give `WideResNet_70_16_dropout` (depth 70, widen_factor 16, dropRate 0.3)."""
    if "normalization" in kwargs:
        raise TypeError("build_wrn_diffpure: the CIFAR-10 normalisation is fixed")
    kwargs = {"depth": 70, "widen_factor": 16, "dropRate": 0.3, **kwargs}
    return WideResNet(normalization="cifar10", **kwargs)


# --------------------------------------------------------------------------- ResNet-50 (DiffPure CIFAR / torchvision)


class Bottleneck(nn.Module):
    """1×1 → 3×3(stride) → 1×1 (×4) bottleneck with a projecting shortcut when the shape changes.

    `shortcut_name` is the shortcut's attribute ("shortcut" in DiffPure's CIFAR ResNet, "downsample" in
    torchvision); a missing projection is an identity (DiffPure's empty `nn.Sequential`, torchvision's None)."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int, shortcut_name: str):
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        projection = None
        if stride != 1 or in_planes != out_planes:
            projection = nn.Sequential(
                nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False), nn.BatchNorm2d(out_planes)
            )
        self.shortcut_name = shortcut_name
        setattr(self, shortcut_name, projection)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        projection = getattr(self, self.shortcut_name)
        return F.relu(out + (x if projection is None else projection(x)))


def _resnet_layers(module: nn.Module, shortcut_name: str, blocks=(3, 4, 6, 3)) -> int:
    in_planes = 64
    for k, (planes, n) in enumerate(zip((64, 128, 256, 512), blocks), start=1):
        layers = []
        for i in range(n):
            stride = 2 if (i == 0 and k > 1) else 1
            layers.append(Bottleneck(in_planes, planes, stride, shortcut_name))
            in_planes = planes * Bottleneck.expansion
        setattr(module, f"layer{k}", nn.Sequential(*layers))
    return in_planes


class CifarResNet50(nn.Module):
    """DiffPure's CIFAR-10 ResNet-50: 3×3 stem, no max-pool, 4×4 average pool, CIFAR mean/std inside forward."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.normalize = _normalization("cifar10")
        self.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        features = _resnet_layers(self, "shortcut")
        self.linear = nn.Linear(features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(self.normalize(x))))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.avg_pool2d(out, 4).flatten(1)
        return self.linear(out)


class ResNet50(nn.Module):
    """torchvision ResNet-50 (7×7 stride-2 stem, 3×3 max-pool, global average pool) with ImageNet mean/std applied
    to the [0, 1] input first (DiffPure's `_Wrapper_ResNet`); 224×224 inputs for the published weights."""

    def __init__(self, num_classes: int = 1000, normalization: str | None = "imagenet"):
        super().__init__()
        self.normalize = _normalization(normalization)
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        features = _resnet_layers(self, "downsample")
        self.fc = nn.Linear(features, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(self.normalize(x))))
        out = F.max_pool2d(out, kernel_size=3, stride=2, padding=1)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


def build_cifar_resnet50(**kwargs) -> CifarResNet50:
    return CifarResNet50(**kwargs)


def build_resnet50(**kwargs) -> ResNet50:
    return ResNet50(**kwargs)
