"""The architectures the GPU benchmarks run (ADM, NCSN++ / DDPM++) reproduce their reference vectors on CUDA, in
float32 and with ADM's float16 torso (test_adm.py and test_ncsnpp.py check the same on the CPU).
`python -m benchmarks.gpu` runs this file on a GPU."""

from __future__ import annotations

import pytest
import torch
from reference_data import load_vector

from ssni.models.adm import build_adm
from ssni.models.ncsnpp import build_ncsnpp

DEVICE = torch.device("cuda")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
BUILDERS = {
    "guided_diffusion_unet_small": lambda config: build_adm(**config),
    "score_sde_ncsnpp_small": build_ncsnpp,
}
TIME_INPUT = {"guided_diffusion_unet_small": "t", "score_sde_ncsnpp_small": "labels"}


@pytest.fixture(autouse=True)
def _exact_float32(monkeypatch):
    """cuDNN's default TF32 convolutions round to 10 mantissa bits (torch's matmuls stay float32 by default)."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)


def _model_and_io(name: str):
    config, state_dict, io = load_vector(name)
    model = BUILDERS[name](config)
    model.load_state_dict(state_dict, strict=True)
    return model.eval().to(DEVICE), {k: v.to(DEVICE) for k, v in io.items()}


@pytest.mark.parametrize("name", BUILDERS)
def test_vector_on_device(name):
    model, io = _model_and_io(name)
    with torch.no_grad():
        out = model(io["x"], io[TIME_INPUT[name]])
    assert out.device.type == DEVICE.type
    assert (out - io["out"]).abs().max().item() <= 1e-4


def test_adm_float16_torso_on_device():
    model, io = _model_and_io("guided_diffusion_unet_small")
    model.convert_to_fp16()
    with torch.no_grad():
        out = model(io["x"], io["t"])
    assert out.dtype == torch.float32
    assert (out - io["out"]).abs().max().item() <= 2e-2
