"""Toy classifiers, data and fake purifiers / SSNI objects for the attack tests (no diffusion model needed)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ssni_kernels.reference import normal_noise

SHAPE = (3, 4, 4)
NUM_CLASSES = 10


def _frozen(net: nn.Module) -> nn.Module:
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


class FakePurifier:
    """A stochastic, differentiable stand-in for a DBP purifier, honouring the (seed, sample id) contract.

    p(x) = 0.5 + 0.8·(x − 0.5) + 0.05·sin(6x) + noise_scale·z(seed, sample id), unclamped; records its calls.
    """

    def __init__(self, noise_scale: float = 0.05):
        self.noise_scale = noise_scale
        self.calls: list[tuple[str, object, int, torch.Tensor]] = []

    def _apply(self, x, seed, sample_ids):
        z = normal_noise(x.shape[1:], seed, sample_ids, 0, 0, dtype=x.dtype)
        return 0.5 + 0.8 * (x - 0.5) + 0.05 * torch.sin(6.0 * x) + self.noise_scale * z

    def purify(self, x, t=None, *, seed, sample_ids, surrogate=False, num_steps=None):
        self.calls.append(("purify-surrogate" if surrogate else "purify", t, seed, sample_ids.clone()))
        with torch.no_grad():
            return self._apply(x, seed, sample_ids)

    def purify_grad(self, x, t=None, *, seed, sample_ids, num_steps=None):
        self.calls.append(("purify_grad", t, seed, sample_ids.clone()))
        return self._apply(x, seed, sample_ids)


class FakeSSNI(FakePurifier):
    """FakePurifier plus `timesteps`: t = round(100·mean(x)) per sample; records each timesteps input."""

    def __init__(self, noise_scale: float = 0.05):
        super().__init__(noise_scale)
        self.timesteps_inputs: list[torch.Tensor] = []
        self.timesteps_outputs: list[torch.Tensor] = []

    def timesteps(self, x, *, seed, sample_ids):
        assert not torch.is_grad_enabled(), "SSNI's t must be computed without gradient"
        self.timesteps_inputs.append(x.clone())
        e = x.flatten(1).mean(dim=1)
        t = torch.round(100.0 * e).to(torch.int64)
        self.timesteps_outputs.append(t)
        return t, e


@pytest.fixture
def linear_net() -> nn.Module:
    torch.manual_seed(0)
    return _frozen(nn.Sequential(nn.Flatten(), nn.Linear(48, NUM_CLASSES)))


@pytest.fixture
def mlp_net() -> nn.Module:
    torch.manual_seed(0)
    return _frozen(nn.Sequential(nn.Flatten(), nn.Linear(48, 64), nn.Tanh(), nn.Linear(64, NUM_CLASSES)))


@pytest.fixture
def batch():
    """(x [16, 3, 4, 4] in [0, 1], sample ids) — labels are set per test from the clean predictions."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(16, *SHAPE, generator=g)
    return x, torch.arange(100, 116)


@pytest.fixture
def fake_purifier() -> FakePurifier:
    return FakePurifier()


@pytest.fixture
def fake_ssni() -> FakeSSNI:
    return FakeSSNI()
