"""Purifying at the model's resolution (DiffPure ImageNet: 224 → 256 → 224, spec §8)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssni import DDPMPurifier


class SizeRecorder(nn.Module):
    """ε̂ = 0.1·x; records the spatial sizes it is called with."""

    def __init__(self):
        super().__init__()
        self.sizes = []

    def forward(self, x, t):
        self.sizes.append(tuple(x.shape[-2:]))
        return 0.1 * x


def test_purify_runs_at_resolution_and_returns_input_size():
    net = SizeRecorder()
    purifier = DDPMPurifier(net, t_star=3)
    purifier.resolution = 16
    x = torch.rand(2, 3, 12, 12)
    ids = torch.arange(2)
    out = purifier.purify(x, seed=1, sample_ids=ids)
    assert out.shape == x.shape
    assert set(net.sizes) == {(16, 16)}

    # the same as resizing by hand around a purifier without a resolution
    plain = DDPMPurifier(SizeRecorder(), t_star=3)
    up = F.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False)
    expected = F.interpolate(plain.purify(up, seed=1, sample_ids=ids), size=(12, 12), mode="bilinear")
    torch.testing.assert_close(out, expected)


def test_purify_grad_at_resolution_reaches_input():
    purifier = DDPMPurifier(SizeRecorder(), t_star=3)
    purifier.resolution = 16
    x = torch.rand(2, 3, 12, 12, requires_grad=True)
    out = purifier.purify_grad(x, seed=1, sample_ids=torch.arange(2), num_steps=2)
    assert out.shape == x.shape
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_input_already_at_resolution_is_not_resized():
    net = SizeRecorder()
    purifier = DDPMPurifier(net, t_star=2)
    purifier.resolution = 8
    x = torch.rand(1, 3, 8, 8)
    ref = DDPMPurifier(SizeRecorder(), t_star=2).purify(x, seed=3, sample_ids=torch.arange(1))
    torch.testing.assert_close(purifier.purify(x, seed=3, sample_ids=torch.arange(1)), ref)
