"""Tiny random ε-networks for the algorithm tests (fast on a loaded 2-core CPU: one thread, small shapes)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

torch.set_num_threads(1)


class TinyEps(nn.Module):
    """A 2-layer conv ε-network of (x, t): the label enters as an extra input plane (t/1000)."""

    def __init__(self, channels: int = 1, hidden: int = 8, out_channels: int | None = None, scale: float = 0.3):
        super().__init__()
        self.c1 = nn.Conv2d(channels + 1, hidden, 3, padding=1)
        self.c2 = nn.Conv2d(hidden, out_channels or channels, 3, padding=1)
        self.scale = scale
        self.labels: list[torch.Tensor] = []  # every label batch seen, for tests of the label convention

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.labels.append(t.detach().clone())
        plane = (t.to(x.dtype) / 1000).reshape(-1, 1, 1, 1).expand(-1, 1, *x.shape[2:])
        return self.scale * self.c2(torch.tanh(self.c1(torch.cat([x, plane], dim=1))))


@pytest.fixture
def tiny_eps():
    def make(channels: int = 1, seed: int = 0, **kwargs) -> TinyEps:
        torch.manual_seed(seed)
        return TinyEps(channels, **kwargs)

    return make


@pytest.fixture
def images():
    def make(batch: int = 4, channels: int = 1, size: int = 6, seed: int = 0) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.rand(batch, channels, size, size, generator=g)

    return make
