"""Tiny random MNIST-format models for CLI tests (real code paths, no training): weights files in a folder."""

from __future__ import annotations

from pathlib import Path

import torch

from ssni.models.mnist import MNISTClassifier, MNISTClassifierConfig, MNISTDiffusionConfig, build_mnist_diffusion
from ssni.models.registry import save_weights

TINY_DIFFUSION = MNISTDiffusionConfig(ch=32, ch_mult=(1,), num_res_blocks=1, attn_resolutions=())
TINY_CLASSIFIER = MNISTClassifierConfig(channels=(4, 8), hidden=16)


def write_tiny_models(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """(diffusion, classifier) safetensors of random tiny models (initialised from `seed`) in the MNIST format."""
    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    diffusion, classifier = folder / "tiny_ddpm.safetensors", folder / "tiny_classifier.safetensors"
    save_weights("mnist-ddpm", build_mnist_diffusion(TINY_DIFFUSION), diffusion, TINY_DIFFUSION)
    save_weights("mnist-classifier", MNISTClassifier(TINY_CLASSIFIER), classifier, TINY_CLASSIFIER)
    return diffusion, classifier
