"""Registry: names and specs, strict loading with readable errors, safetensors conversion and round trip."""

from __future__ import annotations

import pickle
import sys

import pytest
import torch
from safetensors.torch import load_file

import ssni.models as zoo
from ssni.models.checkpoint import CheckpointError, read_safetensors_metadata
from ssni.models.convert import main
from ssni.models.edm import build_edm
from ssni.models.formats.edm_pickle import convert_edm_pickle
from ssni.models.ncsnpp import NCSNpp, NCSNppConfig

TINY_WRN = dict(depth=10, widen_factor=1)
SMALL_EDM = dict(model_channels=16, channel_mult=[1, 2], num_blocks=1)


class NotATensor:
    """A picklable object that torch.load(weights_only=True) must refuse."""


def test_every_preset_has_a_family_and_a_consistent_spec():
    for name, s in zoo.PRESETS.items():
        assert s.name == name and s.family in zoo.FAMILIES
        assert (s.label is None) == (s.kind == "classifier")
    assert zoo.spec("cifar10-ddpmpp-deep-continuous").label == "999t"
    assert zoo.spec("imagenet-adm-256-uncond").out_channels == 6
    assert zoo.spec("cifar10-edm-uncond-vp").kind == "denoiser"


def test_unknown_names_are_errors():
    with pytest.raises(ValueError, match="unknown"):
        zoo.build("cifar100-nothing")
    with pytest.raises(ValueError, match="unknown model"):
        zoo.load("cifar100-nothing", "x.pt")


def test_build_family_with_original_arguments():
    model = zoo.build(
        "ncsnpp", {"data": {"image_size": 16, "num_channels": 3, "centered": True}, "model": _ncsnpp_model()}
    )
    assert isinstance(model, NCSNpp) and model.config.nf == 16
    assert zoo.build("wrn", **TINY_WRN).fc.in_features == 64


def _ncsnpp_model() -> dict:
    cfg = NCSNppConfig(nf=16, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(8,), image_size=16)
    return {k: v for k, v in vars(cfg).items() if k not in ("image_size", "num_channels", "centered", "continuous")}


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        zoo.load("cifar10-wrn-28-10", tmp_path / "absent.pt", **TINY_WRN)


def test_truncated_and_corrupt_files(tmp_path):
    path = tmp_path / "Standard.pt"
    torch.save(zoo.build("wrn", **TINY_WRN).state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        zoo.load("cifar10-wrn-28-10", path, **TINY_WRN)
    path.write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        zoo.load("cifar10-wrn-28-10", path, **TINY_WRN)
    st = tmp_path / "w.safetensors"
    st.write_bytes(b"{garbage")
    with pytest.raises(CheckpointError):
        zoo.load("cifar10-wrn-28-10", st, **TINY_WRN)


def test_mismatched_keys_and_shapes_are_listed(tmp_path):
    state_dict = dict(zoo.build("wrn", **TINY_WRN).state_dict())
    state_dict["extra.weight"] = state_dict.pop("fc.weight")
    state_dict["conv1.weight"] = torch.zeros(16, 3, 5, 5)
    torch.save(state_dict, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError) as info:
        zoo.load("cifar10-wrn-28-10", tmp_path / "bad.pt", **TINY_WRN)
    message = str(info.value)
    assert "missing keys (1): fc.weight" in message
    assert "unexpected keys (1): extra.weight" in message
    assert "conv1.weight: checkpoint [16, 3, 5, 5] vs model [16, 3, 3, 3]" in message
    assert "\n" not in message and str(tmp_path / "bad.pt") in message


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickled_code_is_refused_with_a_conversion_hint(tmp_path):
    with open(tmp_path / "edm.pkl", "wb") as f:
        pickle.dump({"ema": NotATensor()}, f)
    with pytest.raises(CheckpointError, match="refused: its pickle holds.*--edm-repo"):
        zoo.load("cifar10-edm-uncond-vp", tmp_path / "edm.pkl")


def test_weights_option_is_score_sde_only(tmp_path):
    with pytest.raises(ValueError, match="ncsnpp family only"):
        zoo.load("cifar10-wrn-28-10", tmp_path / "x.pt", weights="model")


def test_safetensors_round_trip_and_metadata_check(tmp_path):
    source = zoo.build("wrn", **TINY_WRN)
    torch.save({"state_dict": source.state_dict()}, tmp_path / "Standard.pt")
    dst = zoo.convert_to_safetensors(
        "cifar10-wrn-28-10", tmp_path / "Standard.pt", tmp_path / "wrn.safetensors", **TINY_WRN
    )
    assert read_safetensors_metadata(dst)["ssni_model"] == "cifar10-wrn-28-10"
    loaded = zoo.load("cifar10-wrn-28-10", dst, **TINY_WRN)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in source.state_dict().items())
    with pytest.raises(CheckpointError, match="written for 'cifar10-wrn-28-10'"):
        zoo.load("cifar10-wrn-70-16-dropout", dst, **TINY_WRN)


def test_cli_converts_a_checkpoint(tmp_path, capsys):
    source = zoo.build("cifar10-resnet-50")
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, tmp_path / "weights.pt")
    assert main(["cifar10-resnet-50", str(tmp_path / "weights.pt"), str(tmp_path / "r50.safetensors")]) == 0
    assert "r50.safetensors" in capsys.readouterr().out
    loaded = zoo.load("cifar10-resnet-50", tmp_path / "r50.safetensors")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in source.state_dict().items())


def test_edm_pickle_conversion_is_explicit_and_restores_sys_path(tmp_path):
    repo = tmp_path / "edm"
    for package in ("dnnlib", "torch_utils"):
        (repo / package).mkdir(parents=True)
    network = build_edm(img_resolution=32, img_channels=3, augment_dim=9, **SMALL_EDM)
    with open(tmp_path / "net.pkl", "wb") as f:
        pickle.dump({"ema": network, "dataset_kwargs": {}}, f)
    path_before = list(sys.path)
    dst = convert_edm_pickle(tmp_path / "net.pkl", tmp_path / "edm.safetensors", edm_repo=repo)
    assert sys.path == path_before
    loaded = zoo.load("cifar10-edm-uncond-vp", dst, **SMALL_EDM)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in network.state_dict().items())
    assert read_safetensors_metadata(dst)["edm_class"] == "EDMPrecond"
    with pytest.raises(ValueError, match="edm_repo"):
        convert_edm_pickle(tmp_path / "net.pkl", tmp_path / "x.safetensors", edm_repo=tmp_path)


@pytest.mark.parametrize(("name", "params"), [("imagenet-adm-256-uncond", 552_814_086), ("cifar10-ddpm", 35_746_307)])
def test_diffusion_presets_of_other_families_are_wired(name, params):
    with torch.device("meta"):
        model = zoo.build(name)
    assert sum(p.numel() for p in model.parameters()) == params


TINY_ADM = dict(image_size=32, num_channels=32, num_res_blocks=1, channel_mult="1,2", attention_resolutions="2",
                num_head_channels=32)  # fmt: skip


def test_adm_load_converts_the_torso_to_fp16_like_the_reference(tmp_path):
    source = zoo.build("imagenet-adm-256-uncond", **TINY_ADM)
    torch.save(source.state_dict(), tmp_path / "adm.pt")
    half = zoo.load("imagenet-adm-256-uncond", tmp_path / "adm.pt", **TINY_ADM)  # the preset has use_fp16=True
    assert half.torso_dtype == torch.float16
    full = zoo.load("imagenet-adm-256-uncond", tmp_path / "adm.pt", **TINY_ADM, use_fp16=False)
    assert full.torso_dtype == torch.float32
    assert all(torch.equal(full.state_dict()[k], v) for k, v in source.state_dict().items())


def test_ddpm_folder_goes_to_the_diffusers_loader(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        zoo.load("cifar10-ddpm", tmp_path)


def test_adm_conversion_keeps_the_file_fp32(tmp_path):
    source = zoo.build("imagenet-adm-256-uncond", **TINY_ADM)
    torch.save(source.state_dict(), tmp_path / "adm.pt")
    dst = zoo.convert_to_safetensors(
        "imagenet-adm-256-uncond", tmp_path / "adm.pt", tmp_path / "adm.safetensors", **TINY_ADM
    )
    assert {v.dtype for v in load_file(str(dst)).values()} == {torch.float32}
    assert zoo.load("imagenet-adm-256-uncond", dst, **TINY_ADM).torso_dtype == torch.float16


class VPPrecond(torch.nn.Module):
    """Stands in for NVlabs/edm's VPPrecond: same keys as EDMPrecond, another function."""

    def __init__(self, network):
        super().__init__()
        self.model = network.model


def test_edm_other_preconditioning_is_refused(tmp_path):
    repo = tmp_path / "edm"
    for package in ("dnnlib", "torch_utils"):
        (repo / package).mkdir(parents=True)
    network = VPPrecond(build_edm(img_resolution=32, img_channels=3, augment_dim=9, **SMALL_EDM))
    with open(tmp_path / "net.pkl", "wb") as f:
        pickle.dump({"ema": network}, f)
    dst = convert_edm_pickle(tmp_path / "net.pkl", tmp_path / "edm.safetensors", edm_repo=repo)
    with pytest.raises(CheckpointError, match="VPPrecond"):
        zoo.load("cifar10-edm-uncond-vp", dst, **SMALL_EDM)
