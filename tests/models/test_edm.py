"""EDM (EDMPrecond + SongUNet): the test vector, the edm-cifar10-32x32-uncond-vp manifest, the ε-adapter."""

from __future__ import annotations

import math

import pytest
import torch
from reference_data import VECTORS, load_vector, manifest, read_manifest, state_dict_signature

import ssni.models as zoo
from ssni.models.edm import EDMEpsAdapter, build_edm
from ssni_kernels.reference import VP_BETA_MAX, VP_BETA_MIN

VECTOR = "edm_songunet_small"
MANIFEST = "edm_cifar10_32x32_uncond_vp.ema_state_dict"
NAME = "cifar10-edm-uncond-vp"


@pytest.fixture(scope="module")
def vector():
    config, state_dict, io = load_vector(VECTOR)
    model = build_edm(**{k: v for k, v in config.items() if k != "class_name"})
    model.load_state_dict(state_dict, strict=True)
    return model.eval(), io


def test_vector_denoiser_and_score(vector):
    model, io = vector
    with torch.no_grad():
        denoised = model(io["x"], io["sigma"])
    assert (denoised - io["D"]).abs().max() <= 1e-4
    score = (denoised - io["x"]) / io["sigma"].reshape(-1, 1, 1, 1) ** 2
    assert (score - io["score"]).abs().max() <= 1e-5 * io["score"].abs().max()


def test_small_state_dict_matches_vector_manifest(vector):
    model, _ = vector
    assert state_dict_signature(model) == read_manifest(VECTORS / VECTOR / "state_dict_manifest.jsonl.gz")


def test_preset_matches_manifest():
    with torch.device("meta"):
        model = zoo.build(NAME)
    assert state_dict_signature(model) == manifest(MANIFEST)
    assert sum(p.numel() for p in model.parameters()) == 55_733_891


def _vp_time_for_edm_sigma(sigma: float) -> float:
    """t with σ_VP(t)/m(t) = σ, i.e. ¼t²Δβ + ½tβ0 = ½·ln(1 + σ²) (positive root)."""
    a, b, c = 0.25 * (VP_BETA_MAX - VP_BETA_MIN), 0.5 * VP_BETA_MIN, -0.5 * math.log1p(sigma**2)
    return (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)


def test_eps_adapter_maps_vp_time_to_edm_sigma(vector):
    """x_vp = m·x_edm at the VP time whose σ/m equals the vector's σ: ε̂ must be (x_vp − m·D)/s with the vector's D."""
    model, io = vector
    sigma = io["sigma"].double()
    t = torch.tensor([_vp_time_for_edm_sigma(float(s)) for s in sigma], dtype=torch.float64)
    m = 1 / torch.sqrt(1 + sigma**2)
    s = sigma * m
    x_vp = (m.reshape(-1, 1, 1, 1) * io["x"].double()).float()
    with torch.no_grad():
        eps = EDMEpsAdapter(model)(x_vp, (999 * t).float())
    expected = (x_vp.double() - m.reshape(-1, 1, 1, 1) * io["D"].double()) / s.reshape(-1, 1, 1, 1)
    assert eps.dtype == torch.float32
    assert (eps.double() - expected).abs().max() <= 1e-3 * expected.abs().max()


@pytest.mark.slow
def test_full_size_preset_forward_is_finite():
    torch.manual_seed(0)
    model = zoo.build(NAME).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 32, 32), torch.tensor([0.5]))
    assert out.shape == (1, 3, 32, 32)
    assert torch.isfinite(out).all()


def test_bad_inputs_raise(vector):
    model, _ = vector
    with pytest.raises(ValueError, match="sigma must be"):
        model(torch.zeros(2, 3, 32, 32), torch.ones(3))
    with pytest.raises(ValueError, match="x must be"):
        model(torch.zeros(2, 1, 32, 32), torch.ones(2))
    with pytest.raises(NotImplementedError, match="SongUNet"):
        build_edm(img_resolution=32, img_channels=3, model_type="DhariwalUNet")


def test_gradients_reach_the_input():
    torch.manual_seed(0)
    model = build_edm(img_resolution=16, img_channels=3, model_channels=16, channel_mult=[1, 2], num_blocks=1).eval()
    x = torch.randn(2, 3, 16, 16, requires_grad=True)
    EDMEpsAdapter(model)(x, torch.tensor([10.0, 900.0])).square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
