"""DDPM CIFAR-10 UNet (pytorch_diffusion naming): manifests, small configs, diffusers folders."""

from __future__ import annotations

import pytest
import torch
from reference_data import manifest, randomize_, state_dict_signature
from standins import GOOGLE_DDPM_CIFAR10_CONFIG

from ssni.models.ddpm import DDPM_CIFAR10, DDPMConfig, build_ddpm
from ssni.models.formats.diffusers import (
    ddpm_config_from_diffusers,
    ddpm_state_dict_from_diffusers,
    load_diffusers_folder,
)

PD_MANIFEST = "ddpm_cifar10_ema_model-790000_pytorch_diffusion.state_dict"
DIFFUSERS_MANIFEST = "diffusers_google_ddpm_cifar10_32.unet2dmodel_state_dict"

SMALL = dict(ch=32, out_ch=1, ch_mult=(1, 2, 2), num_res_blocks=1, in_channels=1)


@pytest.mark.parametrize(("resolution", "attn"), [(28, (7,)), (32, (8,))])
def test_small_config_forward(resolution, attn):
    model = build_ddpm(**SMALL, attn_resolutions=attn, resolution=resolution).eval()
    randomize_(model)
    assert len(model.down[2].attn) == 1 and len(model.down[0].attn) == 0
    x = torch.randn(3, 1, resolution, resolution, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0, 250, 999])
    with torch.no_grad():
        out = model(x, t)
        single = model(x[1:2], t[1:2])
        other_t = model(x, torch.tensor([0, 251, 999]))
    assert out.shape == (3, 1, resolution, resolution)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(single, out[1:2], atol=1e-5, rtol=1e-5)  # batch-invariant
    assert (other_t[1] - out[1]).abs().max() > 1e-4  # t is used
    torch.testing.assert_close(other_t[0], out[0], atol=1e-5, rtol=1e-5)


def test_scalar_and_float_t_match_integer_t():
    model = build_ddpm(**SMALL, attn_resolutions=(8,), resolution=32).eval()
    randomize_(model)
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        ref = model(x, torch.tensor([17, 17]))
        torch.testing.assert_close(model(x, 17), ref, atol=0, rtol=0)
        torch.testing.assert_close(model(x, torch.tensor(17.0)), ref, atol=0, rtol=0)


def test_preset_matches_pytorch_diffusion_manifest():
    model = build_ddpm(**DDPM_CIFAR10)
    assert state_dict_signature(model) == manifest(PD_MANIFEST)
    assert sum(p.numel() for p in model.parameters()) == 35_746_307


def test_diffusers_manifest_maps_onto_pytorch_diffusion_manifest():
    diffusers = manifest(DIFFUSERS_MANIFEST)
    pd = manifest(PD_MANIFEST)
    fake = {key: torch.empty(shape, device="meta") for key, shape, _ in diffusers}
    mapped = ddpm_state_dict_from_diffusers(fake)
    assert {k: list(v.shape) for k, v in mapped.items()} == {key: shape for key, shape, _ in pd}
    assert ddpm_config_from_diffusers(GOOGLE_DDPM_CIFAR10_CONFIG) == DDPMConfig(**{**DDPM_CIFAR10, "dropout": 0.0})


def test_full_preset_forward_is_finite():
    model = build_ddpm(**DDPM_CIFAR10).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 32, 32), torch.tensor([500]))
    assert out.shape == (1, 3, 32, 32) and torch.isfinite(out).all()


@pytest.fixture(scope="module")
def diffusers_unet():
    diffusers = pytest.importorskip("diffusers")
    # google/ddpm-cifar10-32 at a quarter of its width.
    config = {k: v for k, v in GOOGLE_DDPM_CIFAR10_CONFIG.items() if not k.startswith("_")}
    config["block_out_channels"] = [32, 64, 64, 64]
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(**config).eval()
    randomize_(unet, seed=3)
    return unet


def test_diffusers_folder_loads_and_matches(diffusers_unet, tmp_path):
    diffusers_unet.save_pretrained(tmp_path, safe_serialization=True)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").is_file()
    model = load_diffusers_folder(tmp_path)
    assert not model.training
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    t = torch.tensor([10, 500])
    with torch.no_grad():
        ref = diffusers_unet(x, t).sample
        out = model(x, t)
    assert ref.abs().max() > 0.1
    err = (out - ref).abs().max().item()
    print(f"max|Δ| vs diffusers = {err:.3g}")
    assert err <= 1e-4


def test_pipeline_folder_with_bin_weights_loads(diffusers_unet, tmp_path):
    diffusers_unet.save_pretrained(tmp_path / "unet", safe_serialization=False)
    assert (tmp_path / "unet" / "diffusion_pytorch_model.bin").is_file()
    model = load_diffusers_folder(tmp_path)
    expected = ddpm_state_dict_from_diffusers(diffusers_unet.state_dict())
    assert all(torch.equal(value, expected[key]) for key, value in model.state_dict().items())


def test_legacy_attention_names_map_the_same(diffusers_unet):
    current = diffusers_unet.state_dict()
    legacy_names = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    legacy = {}
    for key, value in current.items():
        for new, old in legacy_names.items():
            key = key.replace(f".{new}.", f".{old}.")
        legacy[key] = value
    assert legacy.keys() != current.keys()
    a = ddpm_state_dict_from_diffusers(current, num_levels=4)
    b = ddpm_state_dict_from_diffusers(legacy, num_levels=4)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_unknown_diffusers_key_is_named():
    with pytest.raises(ValueError, match="mid_block.extra.weight"):
        ddpm_state_dict_from_diffusers({"mid_block.extra.weight": torch.zeros(1)}, num_levels=4)


def test_diffusers_config_for_another_architecture_is_rejected():
    with pytest.raises(ValueError, match="attention_head_dim"):
        ddpm_config_from_diffusers({**GOOGLE_DDPM_CIFAR10_CONFIG, "attention_head_dim": 8})
    with pytest.raises(ValueError, match="flip_sin_to_cos"):
        ddpm_config_from_diffusers({**GOOGLE_DDPM_CIFAR10_CONFIG, "flip_sin_to_cos": True})


def test_diffusers_folder_errors(diffusers_unet, tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_diffusers_folder(tmp_path)
    diffusers_unet.save_pretrained(tmp_path, safe_serialization=True)
    weights = tmp_path / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_diffusers_folder(tmp_path)
    weights.unlink()
    with pytest.raises(FileNotFoundError, match="safetensors"):
        load_diffusers_folder(tmp_path)


def test_diffusers_folder_with_missing_key_fails(diffusers_unet, tmp_path):
    from safetensors.torch import save_file

    diffusers_unet.save_pretrained(tmp_path, safe_serialization=True)
    sd = {k: v.contiguous() for k, v in diffusers_unet.state_dict().items() if k != "conv_out.bias"}
    save_file(sd, str(tmp_path / "diffusion_pytorch_model.safetensors"))
    with pytest.raises(ValueError, match="missing keys.*conv_out.bias"):
        load_diffusers_folder(tmp_path)


def test_bad_inputs_are_rejected():
    model = build_ddpm(**SMALL, attn_resolutions=(8,), resolution=32)
    with pytest.raises(ValueError, match="shape"):
        model(torch.randn(2, 3, 32, 32), 5)
    with pytest.raises(ValueError, match="empty"):
        model(torch.randn(0, 1, 32, 32), 5)
    with pytest.raises(ValueError, match="t must"):
        model(torch.randn(2, 1, 32, 32), torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="NaN"):
        model(torch.randn(2, 1, 32, 32), torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="resolution"):
        build_ddpm(**{**SMALL, "ch_mult": (1, 2, 2, 2)}, attn_resolutions=(7,), resolution=28)
    with pytest.raises(ValueError, match="divisible"):
        build_ddpm(**{**SMALL, "ch": 24}, attn_resolutions=(8,), resolution=32)


def test_average_pool_resampling_without_conv():
    model = build_ddpm(**SMALL, attn_resolutions=(), resolution=32, resamp_with_conv=False).eval()
    assert not any("downsample" in k or "upsample" in k for k in model.state_dict())
    assert all(len(level.attn) == 0 for level in model.down) and hasattr(model.mid, "attn_1")
    with torch.no_grad():
        out = model(torch.randn(1, 1, 32, 32), 3)
    assert out.shape == (1, 1, 32, 32) and torch.isfinite(out).all()
