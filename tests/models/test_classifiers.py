"""Classifiers: RobustBench WRN-28-10, DiffPure WRN-70-16-dropout and ResNet-50, torchvision ResNet-50."""

from __future__ import annotations

import pytest
import torch
from reference_data import manifest, state_dict_signature

import ssni.models as zoo
from ssni.models.classifiers import CIFAR10_MEAN, CIFAR10_STD, IMAGENET_MEAN, IMAGENET_STD, build_wrn

MANIFESTS = {
    "cifar10-wrn-28-10": ("robustbench_cifar10_Standard_WideResNet-28-10.state_dict", 36_479_194),
    "cifar10-wrn-70-16-dropout": ("diffpure_cifar10_WideResNet-70-16-dropout.state_dict", 266_796_506),
    "cifar10-resnet-50": ("diffpure_cifar10_ResNet-50.state_dict", 23_520_842),
}


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_preset_matches_manifest(name):
    manifest_name, params = MANIFESTS[name]
    with torch.device("meta"):
        model = zoo.build(name)
    assert state_dict_signature(model) == manifest(manifest_name)
    assert sum(p.numel() for p in model.parameters()) == params


def _normalized(x, mean, std):
    return (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def test_wrn_diffpure_is_wrn_on_cifar_normalized_input():
    torch.manual_seed(0)
    kwargs = dict(depth=10, widen_factor=2, dropRate=0.3)
    plain, diffpure = build_wrn(**kwargs).eval(), zoo.build("wrn-diffpure", **kwargs).eval()
    diffpure.load_state_dict(plain.state_dict(), strict=True)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(diffpure(x), plain(_normalized(x, CIFAR10_MEAN, CIFAR10_STD)), atol=1e-5)
    diffpure.train()  # dropout between the convs is active in training mode only
    assert not torch.equal(diffpure(x), diffpure(x))


def test_imagenet_resnet50_equals_torchvision_on_normalized_input():
    torchvision = pytest.importorskip("torchvision")
    reference = torchvision.models.resnet50().eval()
    model = zoo.build("imagenet-resnet50").eval()
    assert state_dict_signature(model) == state_dict_signature(reference)
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(model(x), reference(_normalized(x, IMAGENET_MEAN, IMAGENET_STD)), atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cifar10-wrn-28-10", "cifar10-wrn-70-16-dropout", "cifar10-resnet-50"])
def test_full_size_cifar_preset_forward_is_finite(name):
    torch.manual_seed(0)
    model = zoo.build(name).eval()
    with torch.no_grad():
        logits = model(torch.rand(1, 3, 32, 32))
    assert logits.shape == (1, 10)
    assert torch.isfinite(logits).all()
    assert zoo.spec(name).kind == "classifier"


def test_full_size_imagenet_resnet50_forward_is_finite():
    torch.manual_seed(0)
    with torch.no_grad():
        logits = zoo.build("imagenet-resnet50").eval()(torch.rand(1, 3, 224, 224))
    assert logits.shape == (1, 1000)
    assert torch.isfinite(logits).all()


def test_robustbench_prefixes_and_wrapper_are_accepted(tmp_path):
    small = dict(depth=10, widen_factor=1)
    source = build_wrn(**small)
    wrapped = {"state_dict": {f"module.model.{k}": v for k, v in source.state_dict().items()}}
    torch.save(wrapped, tmp_path / "Standard.pt")
    loaded = zoo.load("cifar10-wrn-28-10", tmp_path / "Standard.pt", **small)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in source.state_dict().items())
    assert not loaded.training


def test_diffpure_module_prefix_is_stripped(tmp_path):
    small = dict(depth=10, widen_factor=1)
    source = zoo.build("wrn-diffpure", **small)
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, tmp_path / "weights.pt")
    loaded = zoo.load("cifar10-wrn-70-16-dropout", tmp_path / "weights.pt", **small)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in source.state_dict().items())
