"""NCSN++ / DDPM++ (score_sde): the test vector, the checkpoint_8.pth manifests, configs and checkpoint layouts."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import pytest
import torch
from reference_data import (
    VECTORS,
    load_vector,
    manifest,
    manifest_entries,
    randomize_,
    read_manifest,
    state_dict_signature,
)

import ssni.models as zoo
from ssni.models.checkpoint import CheckpointError
from ssni.models.ncsnpp import DDPMPP_DEEP_CONTINUOUS_CIFAR10, NCSNpp, NCSNppConfig, build_ncsnpp
from ssni_kernels.reference import vp_sigma

VECTOR = "score_sde_ncsnpp_small"
MANIFEST = "score_sde_cifar10_ddpmpp_deep_continuous"
NAME = "cifar10-ddpmpp-deep-continuous"


@pytest.fixture(scope="module")
def vector():
    return load_vector(VECTOR)


@pytest.fixture(scope="module")
def small_model(vector):
    config, state_dict, _ = vector
    model = build_ncsnpp(config)
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def test_vector_out_and_score(vector, small_model):
    _, _, io = vector
    with torch.no_grad():
        out = small_model(io["x"], io["labels"])
    assert (out - io["out"]).abs().max() <= 1e-4
    assert (out.double() - io["out_fp64"]).abs().max() <= 1e-4
    score = -out / vp_sigma(io["t"]).reshape(-1, 1, 1, 1)
    assert (score - io["score"]).abs().max() <= 1e-5 * io["score"].abs().max()


def test_vector_float64_matches_fp64_reference(vector, small_model):
    _, _, io = vector
    model64 = build_ncsnpp(vector[0]).double()
    model64.load_state_dict(small_model.state_dict())
    with torch.no_grad():
        out = model64.eval()(io["x"].double(), io["labels"])
    assert out.dtype == torch.float64
    assert (out - io["out_fp64"]).abs().max() <= 1e-10


def test_sigmas_buffer_is_score_sde_get_sigmas(vector):
    built = build_ncsnpp(vector[0]).sigmas  # fresh: not loaded from the vector's state dict
    assert built.dtype == torch.float64
    assert torch.allclose(built, vector[1]["sigmas"], rtol=1e-13, atol=0)


def test_config_as_attribute_namespace(vector):
    config = json.loads(json.dumps(vector[0]), object_hook=lambda d: SimpleNamespace(**d))
    assert NCSNppConfig.from_score_sde(config) == NCSNppConfig.from_score_sde(vector[0])


def test_small_state_dict_matches_vector_manifest(vector):
    model = build_ncsnpp(vector[0])
    assert state_dict_signature(model) == read_manifest(VECTORS / VECTOR / "state_dict_manifest.jsonl.gz")


@pytest.fixture(scope="module")
def meta_preset():
    with torch.device("meta"):
        return zoo.build(NAME)


def test_preset_matches_model_manifest(meta_preset):
    assert state_dict_signature(meta_preset) == manifest(f"{MANIFEST}.model_state_dict")
    assert sum(p.numel() for p in meta_preset.parameters()) == 106_632_579


def test_preset_matches_module_prefixed_manifest(meta_preset):
    prefixed = [(f"module.{k}", s, d) for k, s, d in state_dict_signature(meta_preset)]
    assert prefixed == manifest(f"{MANIFEST}.checkpoint_model_key_module_prefixed")


def test_positional_parameter_order_matches_ema_manifest(meta_preset):
    expected = [(e["index"], e["key"], e["shape"]) for e in manifest_entries(f"{MANIFEST}.ema_shadow_params_order")]
    trainable = [(n, list(p.shape)) for n, p in meta_preset.named_parameters() if p.requires_grad]
    assert [(i, n, s) for i, (n, s) in enumerate(trainable)] == expected


@pytest.mark.slow
def test_full_size_preset_forward_is_finite():
    torch.manual_seed(0)
    model = zoo.build(NAME).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 32, 32), torch.tensor([499.5]))
    assert out.shape == (1, 3, 32, 32)
    assert torch.isfinite(out).all()


# --------------------------------------------------------------------------- checkpoint_8.pth layouts (tiny config)

TINY = dict(nf=16, ch_mult=(1, 2), num_res_blocks=1)  # overrides of the preset: still attention at 16×16


@pytest.fixture(scope="module")
def tiny_model():
    return randomize_(NCSNpp(dataclasses.replace(DDPMPP_DEEP_CONTINUOUS_CIFAR10, **TINY))).eval()


def _score_sde_checkpoint(model: NCSNpp, perturb_model: bool) -> dict:
    """A score_sde `save_checkpoint` dict: DataParallel-prefixed 'model' and the positional EMA list."""
    shadow = [p.detach().clone() for p in model.parameters() if p.requires_grad]
    raw = {f"module.{k}": (v + 1 if perturb_model and k != "sigmas" else v).clone()
           for k, v in model.state_dict().items()}  # fmt: skip
    return {
        "optimizer": {},
        "model": raw,
        "ema": {"decay": 0.9999, "num_updates": 3, "shadow_params": shadow},
        "step": 3,
    }


def test_load_checkpoint_ema_by_position_and_model_prefixed(tiny_model, tmp_path):
    path = tmp_path / "checkpoint_8.pth"
    torch.save(_score_sde_checkpoint(tiny_model, perturb_model=True), path)
    x, labels = torch.randn(2, 3, 32, 32), torch.tensor([99.9, 499.5])

    ema_model = zoo.load(NAME, path, **TINY)
    with torch.no_grad():
        assert torch.equal(ema_model(x, labels), tiny_model(x, labels))  # the EMA list holds tiny_model's weights

    raw_model = zoo.load(NAME, path, weights="model", **TINY)
    got = raw_model.state_dict()
    assert all(torch.equal(got[k], v + 1) for k, v in tiny_model.state_dict().items() if k != "sigmas")


def test_load_checkpoint_ema_wrong_length_is_an_error(tiny_model, tmp_path):
    ckpt = _score_sde_checkpoint(tiny_model, perturb_model=False)
    ckpt["ema"]["shadow_params"] = ckpt["ema"]["shadow_params"][:-1]
    torch.save(ckpt, tmp_path / "ckpt.pth")
    with pytest.raises(CheckpointError, match="by position"):
        zoo.load(NAME, tmp_path / "ckpt.pth", **TINY)


def test_load_checkpoint_ema_shape_mismatch_names_the_parameter(tiny_model, tmp_path):
    ckpt = _score_sde_checkpoint(tiny_model, perturb_model=False)
    ckpt["ema"]["shadow_params"][4] = torch.zeros(7)
    torch.save(ckpt, tmp_path / "ckpt.pth")
    with pytest.raises(CheckpointError, match=r"#4 all_modules\.2\.weight"):
        zoo.load(NAME, tmp_path / "ckpt.pth", **TINY)


def test_unsupported_configs_raise():
    with pytest.raises(NotImplementedError, match="fir=True"):
        NCSNppConfig(fir=True)
    with pytest.raises(NotImplementedError, match="progressive"):
        NCSNppConfig(progressive="output_skip")
    with pytest.raises(ValueError, match="config.model.nf"):
        NCSNppConfig.from_score_sde({"data": {"image_size": 32, "num_channels": 3, "centered": True}, "model": {}})


def test_bad_inputs_raise(tiny_model):
    with pytest.raises(ValueError, match="x must be"):
        tiny_model(torch.zeros(1, 3, 16, 16), torch.zeros(1))
    with pytest.raises(ValueError, match="x must be"):
        tiny_model(torch.zeros(0, 3, 32, 32), torch.zeros(0))
    with pytest.raises(ValueError, match="labels must have shape"):
        tiny_model(torch.zeros(2, 3, 32, 32), torch.zeros(3))


def test_gradients_reach_the_input(tiny_model):
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0), requires_grad=True)
    tiny_model(x, torch.tensor([10.0, 900.0])).square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
