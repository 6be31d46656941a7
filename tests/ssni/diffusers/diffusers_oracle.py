"""Oracles for the ssni.diffusers tests: diffusers' own schedulers run in float64 on given noise."""

from __future__ import annotations

import copy

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from diffusers.schedulers import scheduling_ddpm  # noqa: E402


def float64_copy(scheduler):
    """A copy of a stock diffusers scheduler whose schedule tensors are float64 (the same ᾱ values)."""
    oracle = copy.deepcopy(scheduler)
    oracle.alphas_cumprod = oracle.alphas_cumprod.double()
    oracle.one = torch.tensor(1.0, dtype=torch.float64)
    if hasattr(oracle, "final_alpha_cumprod"):
        oracle.final_alpha_cumprod = oracle.final_alpha_cumprod.double()
    return oracle


def oracle_step(scheduler, model_output, timestep: int, sample, noise, monkeypatch, **kwargs):
    """diffusers' scalar step in float64 on float64 copies of the inputs, with z = noise (DDPM: its randn_tensor
    patched to return noise; DDIM: variance_noise). Returns (prev_sample, pred_original_sample) in float64."""
    oracle = float64_copy(scheduler)
    model_output, sample, noise = model_output.double(), sample.double(), noise.double()
    if isinstance(oracle, diffusers.DDIMScheduler):
        out = oracle.step(model_output, timestep, sample, variance_noise=noise, **kwargs)
    else:
        with monkeypatch.context() as patch:
            patch.setattr(scheduling_ddpm, "randn_tensor", lambda shape, **_: noise.reshape(shape))
            out = oracle.step(model_output, timestep, sample, **kwargs)
    return out.prev_sample, out.pred_original_sample


def model_outputs(batch: int, channels: int, size: int, *, variance: str | None = None, seed: int = 0):
    """(sample, model_output, noise), float32; model_output has 2C channels with a predicted variance when
    variance is 'learned' (a variance in (0, 0.02)) or 'learned_range' (a fraction in [−1, 1])."""
    g = torch.Generator().manual_seed(seed)
    shape = (batch, channels, size, size)
    sample, eps, noise = (torch.randn(shape, generator=g) for _ in range(3))
    if variance == "learned":
        eps = torch.cat([eps, 0.02 * torch.rand(shape, generator=g) + 1e-4], dim=1)
    elif variance == "learned_range":
        eps = torch.cat([eps, 2 * torch.rand(shape, generator=g) - 1], dim=1)
    return sample, eps, noise
