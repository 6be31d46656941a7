"""`ssni.models.load(name, path)` on stand-ins of the users' checkpoint files in their real formats (tests/standins.py:
key names, nesting, shapes and dtypes from the manifests of the original classes; random values), full size; and
every kind of bad file refused with one line that names the file and says what is wrong.

The largest networks (ADM 552M parameters, WRN-70-16 267M) and the dense safetensors formats are `slow`."""

from __future__ import annotations

import json
import pickle

import pytest
import standins
import torch

import ssni.models as zoo
from ssni.models.checkpoint import CheckpointError
from ssni.models.convert import main as convert_main


def _assert_loaded(model: torch.nn.Module, expected: dict[str, torch.Tensor], prefix: str = "") -> None:
    """Every entry of the file reached the model unchanged (same values, the model's dtype)."""
    got = model.state_dict()
    assert set(got) == {k.removeprefix(prefix) for k in expected}
    for key, value in expected.items():
        assert torch.equal(got[key.removeprefix(prefix)], value.to(got[key.removeprefix(prefix)].dtype)), key


def _assert_one_line_naming(err: pytest.ExceptionInfo, path) -> str:
    message = str(err.value)
    assert "\n" not in message and "\x1b" not in message and str(path) in message
    return message


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The cheap (broadcast-storage) stand-ins, written once: {name: (path, what was saved)}."""
    root = tmp_path_factory.mktemp("checkpoints")
    return {
        "score_sde": (root / "checkpoint_8.pth", standins.write_score_sde_checkpoint(root / "checkpoint_8.pth")),
        "ddpm": (root / "model-790000.ckpt", standins.write_ddpm_checkpoint(root / "model-790000.ckpt")),
        "standard": (root / "Standard.pt", standins.write_robustbench_standard(root / "Standard.pt")),
        "resnet50_cifar": (
            root / "resnet-50" / "weights.pt",
            standins.write_diffpure_classifier(root / "resnet-50" / "weights.pt", "resnet-50"),
        ),
    }


def test_score_sde_checkpoint_loads_the_ema_by_position_or_the_raw_model(files):
    path, saved = files["score_sde"]
    ema = zoo.load("cifar10-ddpmpp-deep-continuous", path)
    trainable = [p for p in ema.parameters() if p.requires_grad]
    assert len(trainable) == len(saved["ema"]["shadow_params"]) == 956
    assert all(torch.equal(p, s) for p, s in zip(trainable, saved["ema"]["shadow_params"]))
    raw = zoo.load("cifar10-ddpmpp-deep-continuous", path, weights="model")
    _assert_loaded(raw, saved["model"], prefix="module.")
    assert raw.sigmas.dtype == torch.float64 and not raw.training


def test_a_checkpoint_in_the_legacy_torch_format_loads(files, tmp_path):
    _, saved = files["standard"]
    legacy = tmp_path / "Standard.pt"
    torch.save(saved, legacy, _use_new_zipfile_serialization=False)  # torch < 1.6 wrote this format
    _assert_loaded(zoo.load("cifar10-wrn-28-10", legacy), saved)


def test_pytorch_diffusion_ddpm_checkpoint_loads(files):
    path, saved = files["ddpm"]
    _assert_loaded(zoo.load("cifar10-ddpm", path), saved)


@pytest.mark.parametrize("wrapped", [False, True], ids=["bare", "state_dict-module"])
def test_robustbench_standard_loads_bare_or_wrapped(files, tmp_path, wrapped):
    path = tmp_path / "Standard.pt"
    saved = standins.write_robustbench_standard(path, wrapped=wrapped)
    _assert_loaded(zoo.load("cifar10-wrn-28-10", path), saved)


def test_diffpure_resnet50_loads_with_the_module_prefix_stripped(files):
    path, saved = files["resnet50_cifar"]
    _assert_loaded(zoo.load("cifar10-resnet-50", path), saved)


def test_torchvision_resnet50_loads(tmp_path):
    pytest.importorskip("torchvision")
    saved = standins.write_torchvision_resnet50(tmp_path / "resnet50-0676ba61.pth")
    _assert_loaded(zoo.load("imagenet-resnet50", tmp_path / "resnet50-0676ba61.pth"), saved)


# --------------------------------------------------------------------------------------------- bad files
@pytest.mark.parametrize(
    ("name", "file", "holds"),
    [
        ("cifar10-ddpmpp-deep-continuous", "standard", "cifar10-wrn-28-10"),
        ("cifar10-wrn-28-10", "score_sde", "cifar10-ddpmpp-deep-continuous"),
        ("imagenet-resnet50", "resnet50_cifar", "cifar10-resnet-50"),
        ("cifar10-edm-uncond-vp", "ddpm", "cifar10-ddpm"),
    ],
)
def test_a_checkpoint_of_another_model_is_named(files, name, file, holds):
    path, _ = files[file]
    with pytest.raises(CheckpointError) as err:
        zoo.load(name, path)
    message = _assert_one_line_naming(err, path)
    assert f"holds the {holds} network, not {name}" in message


def test_a_truncated_checkpoint_is_refused(files, tmp_path):
    data = files["score_sde"][0].read_bytes()
    path = tmp_path / "checkpoint_8.pth"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as err:
        zoo.load("cifar10-ddpmpp-deep-continuous", path)
    assert "truncated or corrupt" in _assert_one_line_naming(err, path)


def test_an_empty_checkpoint_is_refused(tmp_path):
    path = tmp_path / "Standard.pt"
    path.touch()
    with pytest.raises(CheckpointError) as err:
        zoo.load("cifar10-wrn-28-10", path)
    assert "empty" in _assert_one_line_naming(err, path)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_a_pickle_holding_code_is_refused_without_running_it(tmp_path, writer):
    marker = tmp_path / "the-payload-ran"
    path = tmp_path / "checkpoint_8.pth"
    payload = {"model": {"conv.weight": torch.zeros(1)}, "x": standins.CodePayload(str(marker))}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=4))
    with pytest.raises(CheckpointError) as err:
        zoo.load("cifar10-ddpmpp-deep-continuous", path)
    message = _assert_one_line_naming(err, path)
    assert "refused" in message and "posix.mkdir" in message and "nothing in the file was run" in message
    assert not marker.exists()


def test_a_corrupt_safetensors_file_is_refused(tmp_path):
    path = tmp_path / "edm.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(CheckpointError) as err:
        zoo.load("cifar10-edm-uncond-vp", path)
    assert "safetensors header" in _assert_one_line_naming(err, path)


def test_a_diffusers_folder_of_another_architecture_is_refused(tmp_path):
    config = dict(standins.GOOGLE_DDPM_CIFAR10_CONFIG, attention_head_dim=8)  # multi-head: another network
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as err:
        zoo.load("cifar10-ddpm", tmp_path)
    assert "does not describe the DDPM UNet" in _assert_one_line_naming(err, tmp_path / "config.json")


def test_the_convert_command_reports_a_bad_file_in_one_line(files, tmp_path, capsys):
    path, _ = files["standard"]
    assert convert_main(["cifar10-ddpmpp-deep-continuous", str(path), str(tmp_path / "out.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: ") and "cifar10-wrn-28-10" in err
    assert not (tmp_path / "out.safetensors").exists()


# --------------------------------------------------------------------------------------------- slow: largest / dense
@pytest.mark.slow  # builds the 552M-parameter network (~2.2 GB) twice
def test_guided_diffusion_256_uncond_loads_and_converts_its_torso_to_fp16(tmp_path):
    path = tmp_path / "256x256_diffusion_uncond.pt"
    saved = standins.write_adm_checkpoint(path)
    fp32 = zoo.load("imagenet-adm-256-uncond", path, use_fp16=False)
    _assert_loaded(fp32, saved)
    del fp32
    fp16 = zoo.load("imagenet-adm-256-uncond", path)
    assert fp16.torso_dtype == torch.float16
    assert fp16.time_embed[0].weight.dtype == torch.float32


@pytest.mark.slow  # 267M parameters
def test_diffpure_wrn_70_16_dropout_loads(tmp_path):
    path = tmp_path / "wrn-70-16-dropout" / "weights.pt"
    saved = standins.write_diffpure_classifier(path, "wrn-70-16-dropout")
    _assert_loaded(zoo.load("cifar10-wrn-70-16-dropout", path), saved)


@pytest.mark.slow  # 223 MB of dense safetensors
def test_edm_converted_file_loads_and_another_preconditioning_is_refused(tmp_path):
    path = tmp_path / "edm.safetensors"
    saved = standins.write_edm_converted(path)
    _assert_loaded(zoo.load("cifar10-edm-uncond-vp", path), saved)
    standins.write_edm_converted(path, edm_class="VPPrecond")
    with pytest.raises(CheckpointError) as err:
        zoo.load("cifar10-edm-uncond-vp", path)
    assert "VPPrecond" in _assert_one_line_naming(err, path)


@pytest.mark.slow  # 143 MB of dense weights per layout
@pytest.mark.parametrize(
    ("layout", "weights", "legacy"),
    [("model", "safetensors", False), ("pipeline", "bin", True)],
    ids=["model-safetensors", "pipeline-bin-legacy-names"],
)
def test_diffusers_ddpm_folder_loads(tmp_path, layout, weights, legacy):
    from ssni.models.formats.diffusers import ddpm_state_dict_from_diffusers

    saved = standins.write_diffusers_ddpm_folder(
        tmp_path, layout=layout, weights=weights, legacy_attention_names=legacy
    )
    model = zoo.load("cifar10-ddpm", tmp_path)
    _assert_loaded(model, ddpm_state_dict_from_diffusers(saved))
