"""The shipped MNIST weights: strict loading into their configs, classifier accuracy, and loader errors."""

from __future__ import annotations

import pytest
import torch

from ssni.data.mnist import load_mnist
from ssni.data.subsets import mnist_test_subset
from ssni.models.mnist import (
    MNIST_CLASSIFIER_WEIGHTS,
    MNIST_DIFFUSION_WEIGHTS,
    WEIGHTS_DIR,
    MNISTClassifier,
    MNISTClassifierConfig,
    MNISTDiffusionConfig,
    build_mnist_diffusion,
    load_mnist_classifier,
    load_mnist_diffusion,
    mnist_diffusion_id,
    read_weights,
)
from ssni.training import classifier_accuracy


def test_shipped_weights_fit_the_size_budget():
    total = sum(p.stat().st_size for p in WEIGHTS_DIR.iterdir() if p.is_file())
    assert MNIST_CLASSIFIER_WEIGHTS.is_file() and MNIST_DIFFUSION_WEIGHTS.is_file()
    assert total <= 20 * 2**20


def test_classifier_loads_strict_and_reaches_99_percent():
    model = load_mnist_classifier()
    assert model.config == MNISTClassifierConfig()
    state, _ = read_weights(MNIST_CLASSIFIER_WEIGHTS, "mnist-classifier")
    assert set(state) == set(MNISTClassifier().state_dict())
    test = load_mnist("test").subset(mnist_test_subset(1000))
    torch.manual_seed(0)
    assert classifier_accuracy(model, test.images, test.labels) >= 0.99


def test_diffusion_loads_strict_into_the_preset():
    model = load_mnist_diffusion()
    state, metadata = read_weights(MNIST_DIFFUSION_WEIGHTS, "mnist-ddpm")
    assert set(state) == set(build_mnist_diffusion(MNISTDiffusionConfig()).state_dict())
    assert metadata["valid_timesteps"].startswith("0..")
    x = 2 * load_mnist("test").images[:4] - 1
    with torch.no_grad():
        eps = model(x, torch.tensor([0, 10, 100, 200]))
    assert eps.shape == x.shape and torch.isfinite(eps).all()


def test_diffusion_id_names_the_file_content():
    model_id = mnist_diffusion_id()
    assert model_id.startswith("mnist-ddpm:") and len(model_id) == len("mnist-ddpm:") + 16


def test_loader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_mnist_classifier(tmp_path / "missing.safetensors")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_mnist_classifier(corrupt)
    with pytest.raises(ValueError, match="expected 'mnist-ddpm'"):
        load_mnist_diffusion(MNIST_CLASSIFIER_WEIGHTS)


def test_shipped_calibration_matches_the_shipped_model():
    from ssni.calibration import Calibration, CalibrationMismatchError
    from ssni.models.mnist import MNIST_CALIBRATION

    calibration = Calibration.load(MNIST_CALIBRATION, model_id=mnist_diffusion_id(), resolution=(28, 28))
    assert calibration.num_samples >= 1000 and calibration.seed == 121
    assert 0 < calibration.min <= calibration.mean <= calibration.max and calibration.tau > 0
    with pytest.raises(CalibrationMismatchError):
        Calibration.load(MNIST_CALIBRATION, num_levels=calibration.num_levels + 1)
