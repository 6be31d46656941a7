"""The shipped MNIST weights: registry entries like every model, strict loading into their configs, classifier
accuracy, and loader errors."""

from __future__ import annotations

import pytest
import torch

import ssni.models as zoo
from ssni.data.mnist import load_mnist
from ssni.data.subsets import mnist_test_subset
from ssni.models.checkpoint import CheckpointError, read_checkpoint, read_safetensors_metadata
from ssni.models.mnist import MNISTClassifier, MNISTClassifierConfig, MNISTDiffusionConfig, build_mnist_diffusion
from ssni.models.registry import EMBEDDED_WEIGHTS_DIR, save_weights
from ssni.zoo.mnist import CALIBRATION
from ssni.zoo.mnist.train import classifier_accuracy

DIFFUSION = zoo.spec("mnist-ddpm").embedded
CLASSIFIER = zoo.spec("mnist-classifier").embedded


def test_shipped_weights_fit_the_size_budget():
    total = sum(p.stat().st_size for p in EMBEDDED_WEIGHTS_DIR.iterdir() if p.is_file())
    assert CLASSIFIER.is_file() and DIFFUSION.is_file()
    assert total <= 20 * 2**20


def test_registry_entries_describe_the_embedded_models():
    ddpm, cnn = zoo.spec("mnist-ddpm"), zoo.spec("mnist-classifier")
    assert (ddpm.kind, ddpm.label, ddpm.in_channels, ddpm.out_channels, ddpm.resolution) == ("eps", "index", 1, 1, 28)
    assert (cnn.kind, cnn.label, cnn.out_channels, cnn.resolution) == ("classifier", None, 10, 28)
    assert set(zoo.build("mnist-ddpm").state_dict()) == set(build_mnist_diffusion().state_dict())
    assert zoo.build("mnist-classifier", hidden=16).head[1].out_features == 16


def test_classifier_loads_strict_and_reaches_99_percent():
    model = zoo.load("mnist-classifier")
    assert isinstance(model, MNISTClassifier) and model.config == MNISTClassifierConfig() and not model.training
    assert set(read_checkpoint(CLASSIFIER)) == set(MNISTClassifier().state_dict())
    test = load_mnist("test").subset(mnist_test_subset(1000))
    torch.manual_seed(0)
    assert classifier_accuracy(model, test.images, test.labels) >= 0.99


def test_diffusion_loads_strict_into_the_preset():
    model = zoo.load("mnist-ddpm")
    assert set(read_checkpoint(DIFFUSION)) == set(build_mnist_diffusion(MNISTDiffusionConfig()).state_dict())
    assert read_safetensors_metadata(DIFFUSION)["valid_timesteps"].startswith("0..")
    x = 2 * load_mnist("test").images[:4] - 1
    with torch.no_grad():
        eps = model(x, torch.tensor([0, 10, 100, 200]))
    assert eps.shape == x.shape and torch.isfinite(eps).all()


def test_weights_id_names_the_file_content():
    model_id = zoo.weights_id("mnist-ddpm")
    assert model_id.startswith("mnist-ddpm:") and len(model_id) == len("mnist-ddpm:") + 16
    assert zoo.weights_id("mnist-ddpm", DIFFUSION) == model_id
    with pytest.raises(ValueError, match="no embedded weights"):
        zoo.weights_id("cifar10-ddpm")


def test_a_written_file_loads_with_its_own_config(tmp_path):
    tiny = MNISTDiffusionConfig(ch=32, ch_mult=(1,), num_res_blocks=1, attn_resolutions=())
    source = build_mnist_diffusion(tiny)
    path = save_weights("mnist-ddpm", source, tmp_path / "tiny.safetensors", tiny, extra={"steps": "3"})
    loaded = zoo.load("mnist-ddpm", path)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in source.state_dict().items())
    with pytest.raises(TypeError, match="MNISTDiffusionConfig"):
        save_weights("mnist-ddpm", source, tmp_path / "x.safetensors", MNISTClassifierConfig())


def test_loader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        zoo.load("mnist-classifier", tmp_path / "missing.safetensors")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="cannot read the safetensors header"):
        zoo.load("mnist-classifier", corrupt)
    with pytest.raises(CheckpointError, match="holds mnist-classifier, not mnist-ddpm"):
        zoo.load("mnist-ddpm", CLASSIFIER)
    with pytest.raises(ValueError, match="records its own config"):
        zoo.load("mnist-ddpm", DIFFUSION, ch=16)


def test_shipped_calibration_matches_the_shipped_model():
    from ssni.calibration import Calibration, CalibrationMismatchError

    calibration = Calibration.load(CALIBRATION, model_id=zoo.weights_id("mnist-ddpm"), resolution=(28, 28))
    assert calibration.num_samples >= 1000 and calibration.seed == 121
    assert 0 < calibration.min <= calibration.mean <= calibration.max and calibration.tau > 0
    with pytest.raises(CalibrationMismatchError):
        Calibration.load(CALIBRATION, num_levels=calibration.num_levels + 1)
