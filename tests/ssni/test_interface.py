"""The ε-model adapter: plain modules, learned-σ outputs, diffusers-style outputs, shape errors."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from ssni.models.interface import EpsModel, as_eps_model


class Fixed(nn.Module):
    def __init__(self, out):
        super().__init__()
        self.out = out

    def forward(self, x, t):
        return self.out(x)


def test_plain_module_and_learned_sigma():
    x = torch.randn(2, 3, 4, 4)
    assert torch.equal(as_eps_model(Fixed(lambda v: v * 2))(x, torch.zeros(2)), x * 2)
    six = Fixed(lambda v: torch.cat([v, -v], dim=1))
    assert torch.equal(EpsModel(six)(x, torch.zeros(2)), x)
    assert torch.equal(EpsModel(Fixed(lambda v: torch.cat([v, v, v], 1)), out_channels=3)(x, torch.zeros(2)), x)
    wrapped = EpsModel(six)
    assert as_eps_model(wrapped) is wrapped


def test_diffusers_style_and_tuple_outputs():
    x = torch.randn(2, 1, 4, 4)
    assert torch.equal(EpsModel(Fixed(lambda v: SimpleNamespace(sample=v + 1)))(x, torch.zeros(2)), x + 1)
    assert torch.equal(EpsModel(Fixed(lambda v: (v - 1, None)))(x, torch.zeros(2)), x - 1)


def test_shape_errors():
    x = torch.randn(2, 3, 4, 4)
    with pytest.raises(ValueError, match="channels"):
        EpsModel(Fixed(lambda v: v[:, :2]))(x, torch.zeros(2))
    with pytest.raises(ValueError, match="shaped like x"):
        EpsModel(Fixed(lambda v: v.flatten(1)))(x, torch.zeros(2))
    with pytest.raises(ValueError, match="out_channels"):
        EpsModel(Fixed(lambda v: v), out_channels=0)
