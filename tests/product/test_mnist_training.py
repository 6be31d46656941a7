"""The MNIST trainers' pieces: t sampling, shifts, the LR schedule, and resume = uninterrupted for the DDPM."""

from __future__ import annotations

import pytest
import torch

import ssni.models as zoo
from ssni.models.checkpoint import read_checkpoint, read_safetensors_metadata
from ssni.zoo.mnist import train as training
from ssni.zoo.mnist.train import (
    DiffusionTrainingConfig,
    random_shift,
    sample_timesteps,
    train_diffusion,
    train_diffusion_main,
    warmup_cosine,
)


def test_sample_timesteps_stays_in_range_and_favours_small_t():
    config = DiffusionTrainingConfig(t_max=300, small_t_max=50, small_t_fraction=0.5)
    t = sample_timesteps(20_000, config, torch.Generator().manual_seed(0))
    assert t.dtype == torch.int64 and int(t.min()) >= 0 and int(t.max()) < 300
    # P(t < 50) = 0.5 + 0.5·50/300 ≈ 0.583
    assert abs(float((t < 50).float().mean()) - 0.583) < 0.02


def test_random_shift_moves_pixels_by_whole_steps():
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 12:16, 12:16] = torch.rand(64, 1, 4, 4) + 0.1
    shifted = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert torch.allclose(shifted.sum((1, 2, 3)), x.sum((1, 2, 3)))  # the blob stays inside: mass preserved
    assert not torch.equal(shifted, x)
    assert torch.equal(random_shift(x, 0, torch.Generator()), x)


def test_warmup_cosine():
    assert warmup_cosine(0, 100, 10) == pytest.approx(0.1)
    assert warmup_cosine(10, 100, 10) == pytest.approx(1.0)
    assert warmup_cosine(100, 100, 10) == pytest.approx(0.0)


def test_diffusion_training_killed_and_restarted_equals_uninterrupted(tmp_path, monkeypatch):
    def config(name):
        return DiffusionTrainingConfig(
            out=str(tmp_path / f"{name}.safetensors"),
            checkpoint=str(tmp_path / name / "checkpoint.pt"),
            iterations=3,
            batch_size=2,
            warmup_steps=1,
            checkpoint_every=1,
            log_every=100,
            threads=1,
        )

    straight = train_diffusion(config("straight"))

    # Kill the second run inside step 3, after its optimizer step and before that step's checkpoint.
    calls = {"n": 0}
    real_update = training._ema_update

    def dying_update(*args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        real_update(*args)

    monkeypatch.setattr(training, "_ema_update", dying_update)
    with pytest.raises(KeyboardInterrupt):
        train_diffusion(config("resumed"))
    monkeypatch.setattr(training, "_ema_update", real_update)
    resumed = train_diffusion(config("resumed"))

    assert straight.steps == resumed.steps == 3
    a, b = read_checkpoint(straight.out), read_checkpoint(resumed.out)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert read_safetensors_metadata(resumed.out)["steps"] == "3"
    assert zoo.load("mnist-ddpm", resumed.out).training is False


def test_cli_flags_reach_the_config(tmp_path):
    out = tmp_path / "cli.safetensors"
    argv = ["--iterations", "1", "--batch-size", "2", "--threads", "1", "--out", str(out)]
    argv += ["--checkpoint", str(tmp_path / "ck" / "checkpoint.pt")]
    assert train_diffusion_main(argv) == 0
    metadata = read_safetensors_metadata(out)
    assert '"batch_size": 2' in metadata["training_config"]
    with pytest.raises(SystemExit):
        train_diffusion_main(["--no-such-flag"])
