"""Every non-MNIST preset end to end through the public CLI, on stand-ins of the files users bring (tests/standins.py:
the real formats, full-size networks with random weights), at the smallest budget the preset allows:

    ssni calibrate → ssni eval --smoke (1 image, 1 PGD iteration, EOT 1, 1 surrogate step) → ssni purify

and every kind of bad file a user can pass refused in one line (`ssni: error: …`, exit status 2) naming it.

The budget. Flags shrink what they can: 1 image, batch 1, T' 2 (ImageNet 1), t* 1 (`--t-star`, single-stage hosts),
network batch 1. What remains is the networks themselves, full size on the CPU: an evaluation of NCSN++ deep costs
37 GFLOP at 32×32, of ADM 256 about 1 TFLOP (tens of seconds on 2 cores), and SSNI-N's bias b = 5 adds up to 5 steps
to every walk whatever t* is (SSNI-L at t* 1 walks min(n, t) = 1 step). So ImageNet evaluates SSNI-L only and
purifies at the constant t*; GNS evaluates constant and SSNI-L. Two presets stay out of reach of any flag: GNS
purifies in 8 stages (t* 30…125: 470 evaluations) and votes over 10 runs, GDMP in 4 repeats of 36 steps over 10
paths, and `--t-star` applies to single-stage hosts only: one clean evaluation of one image costs 4,700 (GNS) and
1,440 (GDMP) network evaluations per method. For them the test installs a reduced copy of the preset (`_REDUCED`:
the same host, sampler, models, files, attacks and vote mechanism; 2 stages of t* 1, 2 votes) under its own name.

Network evaluations are checked against the records: a clean group of a method costs
votes · Σ_samples Σ_stages min(n, max(t, 1)) walk steps (n: the host's steps, + b for SSNI-N) plus, for SSNI, T'
score levels per sample (per vote when the preset rescores every vote); a constant t makes no score evaluations.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import pytest
import standins
import torch

from ssni.cli import EXIT_USER_ERROR, main
from ssni.eval import presets as preset_table
from ssni.eval.records import CLEAN, read_results
from ssni.eval.requests import Overrides

BIAS = 5  # SSNI's b (every preset's `Preset.bias`)
LEVELS = 2
CLASSES = {"cifar10": 10, "imagenet": 1000}


@dataclass(frozen=True)
class Case:
    """How one preset runs here: its diffusion stand-in, T', the methods it evaluates, the method it purifies with,
    and a reduced purifier when no flag reaches the preset's own budget."""

    diffusion: str
    levels: int = LEVELS
    methods: str = "constant,ssni-n,ssni-l"
    purify_method: str = "ssni-n"
    t_star_flag: bool = True


CASES = {
    "cifar10-diffpure": Case("score_sde", purify_method="ssni-l"),
    "cifar10-gns": Case("score_sde", methods="constant,ssni-l", purify_method="constant", t_star_flag=False),
    "cifar10-gdmp": Case("ddpm", t_star_flag=False),
    "imagenet-diffpure": Case("adm", levels=1, methods="ssni-l", purify_method="constant"),
}

#: Multi-stage presets at a budget CI can run: the preset's host and vote mechanism with every stage at t* 1.
_REDUCED = {
    "cifar10-gns": dict(stages=((1, 1), (1, 1)), surrogate_stages=((1, 1),), votes=2),
    "cifar10-gdmp": dict(stages=((1, 1), (1, 1)), surrogate_stages=((1, 1), (1, 1)), votes=2),
}


def test_every_preset_but_mnist_has_an_end_to_end_case():
    assert set(CASES) == set(preset_table.PRESETS) - {"mnist"}
    for name, changes in _REDUCED.items():  # the reduction keeps the preset's shape: several stages, a vote
        purifier = preset_table.PRESETS[name].purifier
        assert len(purifier.stages) > 1 and purifier.votes > 1 and changes["votes"] > 1
        assert len(changes["stages"]) > 1 and len(changes["surrogate_stages"]) <= len(purifier.surrogate_stages)


# --------------------------------------------------------------------------------------------------- the files
@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path, monkeypatch):
    """Default outputs of a command land in a temporary folder, never in the repository."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """The users' files, written once: checkpoints (broadcast storage: kilobytes for any size) and the data."""
    root = tmp_path_factory.mktemp("user-files")
    paths = {
        "score_sde": root / "checkpoint_8.pth",
        "ddpm": root / "ema_diffusion_cifar10_model" / "model-790000.ckpt",
        "adm": root / "256x256_diffusion_uncond.pt",
        "cifar10-classifier": root / "Standard.pt",
        "imagenet-classifier": root / "resnet50-0676ba61.pth",
    }
    standins.write_score_sde_checkpoint(paths["score_sde"])
    standins.write_ddpm_checkpoint(paths["ddpm"])
    standins.write_adm_checkpoint(paths["adm"])
    standins.write_robustbench_standard(paths["cifar10-classifier"])
    standins.write_torchvision_resnet50(paths["imagenet-classifier"])
    paths["cifar10"] = standins.write_cifar10_batches(root / "cifar10")
    return paths


@pytest.fixture(scope="module")
def imagenet(tmp_path_factory) -> dict[str, Path]:
    """ILSVRC's val/ (1000 class folders of 50: the evaluation subset indexes all 50,000 files) and a small train/."""
    root = tmp_path_factory.mktemp("imagenet")
    standins.write_imagenet_folder(root / "val", classes=1000, per_class=50)
    standins.write_imagenet_folder(root / "train", classes=3, per_class=2, seed=1)
    return {"val": root / "val", "train": root / "train"}


def _dataset(name: str) -> str:
    return preset_table.PRESETS[name].dataset


def _sources(name: str, files, imagenet, *, data: str = "val") -> list[str]:
    case = CASES[name]
    dataset = _dataset(name)
    return [
        "--preset", name, "--device", "cpu",
        "--diffusion-checkpoint", str(files[case.diffusion]),
        "--data", str(imagenet[data] if dataset == "imagenet" else files["cifar10"]),
    ]  # fmt: skip


# --------------------------------------------------------------------------------------------------- the runs
def _walk(t: int, n: int | None) -> int:
    """Network evaluations of one discrete walk from t with n steps (None, or n >= t: every index once)."""
    return max(t, 1) if n is None else min(n, max(t, 1))


def _stage_steps(preset, method: str) -> list[int | None]:
    """The step count of each stage a purification of `method` runs: the preset's n (SSNI-N: n + b, as the authors'
    code); GDMP's sampler visits every index (None)."""
    if preset.purifier.host == "gdmp":
        return [None] * len(preset.purifier.stages)
    return [n + (BIAS if method == "ssni-n" else 0) for _, n in preset.purifier.stages]


def _t_range(preset, method: str) -> tuple[int, int]:
    """The t a record of `method` may hold (the largest stage's t for multi-stage hosts): constant t*; SSNI-N
    0..T+b, SSNI-L b..T+b with T = t* − 1."""
    top = preset.purifier.t_star
    if method == "constant":
        return top, top
    return (0 if method == "ssni-n" else BIAS), top - 1 + BIAS


def _check_calibration(path: Path, name: str, levels: int, samples: int) -> None:
    preset = preset_table.PRESETS[name]
    cal = json.loads(path.read_text())
    assert cal["num_levels"] == levels and cal["num_samples"] == samples
    assert cal["resolution"] == [preset.image_size] * 2
    assert cal["model_id"].startswith(f"{preset.diffusion}:")
    assert cal["source"]["dataset"] == preset.dataset
    assert 0 < cal["min"] <= cal["mean"] <= cal["max"] and cal["tau"] > 0
    assert path.with_name(path.name + ".norms.safetensors").is_file()


def _check_eval(out: Path, summary: dict, name: str, case: Case, preset) -> None:
    """Records and summary: shape, t range, accuracies, perturbation, and the network evaluation counts."""
    methods = case.methods.split(",")
    assert summary["preset"] == name and summary["complete"] and "smoke" in summary["note"]
    assert summary["num_samples"] == 1 and summary["seeds"] == [121]
    assert summary["methods"] == methods and summary["attacks"] == ["pgd-linf"]
    for m in methods:
        assert 0 <= summary["clean_accuracy"][m]["mean"] <= 100
        assert 0 <= summary["robust_accuracy"][m]["pgd-linf"]["mean"] <= 100
        low, high = _t_range(preset, m)
        assert low <= summary["mean_t"][m]["clean"] <= high
    log = read_results(out)
    assert len(log.records) == len(methods) * 2  # 1 image × methods × (clean, pgd-linf)
    assert len(log.commits) == len(methods) * 2
    eps = next(a.eps for a in preset.attacks if a.name == "pgd-linf")
    for r in log.records:
        low, high = _t_range(preset, r["method"])
        assert low <= r["t"] <= high, r
        assert 0 <= r["label"] < CLASSES[preset.dataset] and 0 <= r["pred"] < CLASSES[preset.dataset]
        assert (r["score_norm"] is None) == (r["method"] == "constant"), r
        assert r["score_norm"] is None or r["score_norm"] > 0
        if r["attack"] != CLEAN:
            assert 0 < r["perturbation_linf"] <= eps + 1e-6
    counted = {f"{c['method']}/{c['attack']}": c for c in log.commits}
    assert summary["samples_evaluated"]["total"] == sum(c["samples_evaluated"] for c in log.commits)
    assert summary["network_calls"]["total"] == sum(c["network_calls"] for c in log.commits)
    votes = preset.purifier.votes
    rescored = votes if preset.purifier.scores_per_vote else 1
    for r in log.records:
        method, steps = r["method"], _stage_steps(preset, r["method"])
        scores = 0 if method == "constant" else case.levels * rescored
        # every stage runs at the recorded t (the reduced multi-stage presets' stages share one t*)
        walks = votes * sum(_walk(r["t"], n) for n in steps)
        evaluated = counted[f"{method}/{r['attack']}"]["samples_evaluated"]
        if r["attack"] == CLEAN:
            assert evaluated == walks + scores, (r, evaluated)
        else:  # the attack's surrogate steps (and SSNI's score levels) come before the evaluation
            assert evaluated > walks + scores, (r, evaluated)


def _check_purify(out: Path, name: str, method: str, preset, first_id: int) -> None:
    purified = torch.load(out)
    assert purified.shape == (1, preset.channels, preset.image_size, preset.image_size)
    assert purified.dtype == torch.float32 and torch.isfinite(purified).all()
    with open(out.with_suffix(".csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and int(rows[0]["sample_id"]) == first_id
    low, high = _t_range(preset, method)
    assert low <= int(rows[0]["t"]) <= high and float(rows[0]["score_norm"]) > 0
    assert 0 <= int(rows[0]["pred"]) < CLASSES[preset.dataset] and 0 <= int(rows[0]["label"]) < CLASSES[preset.dataset]


@pytest.mark.slow  # full-size networks on the CPU: see the module docstring for the budget
@pytest.mark.parametrize("name", list(CASES))
def test_preset_end_to_end(name, files, request, tmp_path, monkeypatch, capsys):
    case = CASES[name]
    if name in _REDUCED:
        original = preset_table.PRESETS[name]
        reduced = dataclasses.replace(original, purifier=dataclasses.replace(original.purifier, **_REDUCED[name]))
        monkeypatch.setitem(preset_table.PRESETS, name, reduced)
    preset = preset_table.PRESETS[name]
    imagenet = request.getfixturevalue("imagenet") if preset.dataset == "imagenet" else {}
    levels = ["--num-levels", str(case.levels)]
    t_star = ["--t-star", "1"] if case.t_star_flag else []
    classifier = ["--classifier-checkpoint", str(files[f"{preset.dataset}-classifier"])]

    cal = tmp_path / "calibration.json"
    argv = ["calibrate", *_sources(name, files, imagenet, data="train"), *levels, "--num-samples", "2"]
    assert main([*argv, "--out", str(cal)]) == 0, capsys.readouterr().err
    _check_calibration(cal, name, case.levels, 2)
    capsys.readouterr()

    out = tmp_path / "records.jsonl"
    argv = [
        "eval", *_sources(name, files, imagenet), *classifier, "--calibration", str(cal), *levels, *t_star,
        "--smoke", "--num-samples", "1", "--batch-size", "1", "--network-batch", "1", "--methods", case.methods,
        "--attacks", "pgd-linf", "--iterations", "1", "--eot", "1", "--surrogate-steps", "1",
        "--out", str(out), "--no-progress", "--json",
    ]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    resolved = preset_table.resolve_preset(name, Overrides(t_star=1 if t_star else None))
    _check_eval(out, json.loads(capsys.readouterr().out), name, case, resolved)

    purified = tmp_path / "purified.pt"
    argv = [
        "purify", *_sources(name, files, imagenet), *classifier, "--calibration", str(cal), *levels, *t_star,
        "--num-samples", "1", "--network-batch", "1", "--method", case.purify_method, "--out", str(purified),
    ]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    first_id = int(read_results(out).records[0]["sample_id"])
    _check_purify(purified, name, case.purify_method, resolved, first_id)


# --------------------------------------------------------------------------------------------------- bad files
def _refused(argv: list[str], capsys) -> str:
    """Run `ssni argv`; it must fail as a user error: exit status 2, one line on stderr, no traceback."""
    assert main(argv) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.startswith("ssni: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


def _eval_argv(name: str, files, *, data=None, diffusion=None, classifier=None, calibration=None) -> list[str]:
    """`ssni eval` of preset `name` on the stand-ins, with one of the files replaced."""
    case = CASES[name]
    return [
        "eval", "--preset", name, "--device", "cpu", "--smoke", "--num-samples", "1", "--num-levels", str(LEVELS),
        "--diffusion-checkpoint", str(diffusion or files[case.diffusion]),
        "--classifier-checkpoint", str(classifier or files["cifar10-classifier"]),
        "--data", str(data or files["cifar10"]),
        "--calibration", str(calibration or "calibration.json"),
    ]  # fmt: skip


def test_a_checkpoint_of_another_model(files, capsys):
    wrong = files["cifar10-classifier"]
    err = _refused(_eval_argv("cifar10-diffpure", files, diffusion=wrong), capsys)
    assert err.startswith(f"ssni: error: --diffusion-checkpoint {wrong}: ")
    assert "holds the cifar10-wrn-28-10 network, not cifar10-ddpmpp-deep-continuous" in err


def test_a_truncated_checkpoint(files, tmp_path, capsys):
    cut = tmp_path / "checkpoint_8.pth"
    data = files["score_sde"].read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    err = _refused(_eval_argv("cifar10-gns", files, diffusion=cut), capsys)
    assert f"--diffusion-checkpoint {cut}:" in err and "truncated or corrupt" in err


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_pt_holding_code_objects(files, tmp_path, capsys):
    marker = tmp_path / "the-payload-ran"
    doctored = tmp_path / "Standard.pt"
    torch.save({"conv1.weight": torch.zeros(1), "x": standins.CodePayload(str(marker))}, doctored)
    err = _refused(_eval_argv("cifar10-gdmp", files, classifier=doctored), capsys)
    assert f"--classifier-checkpoint {doctored}:" in err and "refused" in err and "posix.mkdir" in err
    assert not marker.exists()


def test_a_cifar_batch_with_the_wrong_shape(files, tmp_path, capsys):
    root = standins.write_cifar10_batches(tmp_path, rows_per_batch=10)
    with open(root / "test_batch", "rb") as f:
        batch = pickle.load(f, encoding="latin1")
    standins.write_python2_pickle(root / "test_batch", {**batch, "data": batch["data"][:, :3000]})
    err = _refused(_eval_argv("cifar10-diffpure", files, data=root), capsys)
    assert f"{root / 'test_batch'}: 'data' is uint8 [10, 3000], expected uint8 [N, 3072]" in err


def test_empty_and_unreadable_image_folders(files, tmp_path, capsys):
    empty = tmp_path / "val"
    empty.mkdir()
    imagenet = ["--preset", "imagenet-diffpure", "--device", "cpu", "--diffusion-checkpoint", str(files["adm"])]
    cal = ["calibrate", *imagenet, "--out", str(tmp_path / "c.json"), "--num-samples", "2"]
    err = _refused([*cal, "--data", str(empty)], capsys)
    assert f"{empty} has no class folders" in err
    (empty / "n01440764").mkdir()
    (empty / "n01440764" / "README.txt").write_text("not an image")
    err = _refused([*cal, "--data", str(empty)], capsys)
    assert f"{empty}: no images in its 1 class folders" in err
    good, broken = (empty / "n01440764" / f"n01440764_{k}.JPEG" for k in (10026, 10027))
    standins.image_variants()[0][1].save(good)
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    err = _refused([*cal, "--data", str(empty)], capsys)
    assert f"{broken}: cannot read image" in err


@pytest.mark.parametrize("other", ["model", "resolution"])
def test_a_calibration_made_with_another_model_or_resolution(files, tmp_path, capsys, other):
    from ssni import Calibration
    from ssni.eval.loading import file_identity

    model = "cifar10-ddpm" if other == "model" else "cifar10-ddpmpp-deep-continuous"
    path = files["ddpm"] if other == "model" else files["score_sde"]
    resolution = (32, 32) if other == "model" else (256, 256)
    calibration = Calibration.from_norms(
        torch.tensor([30.0, 31.0, 33.0]), model_id=f"{model}:{file_identity(path)}", num_levels=LEVELS,
        resolution=resolution, seed=121,
    ).save(tmp_path / "calibration.json")  # fmt: skip
    err = _refused(_eval_argv("cifar10-diffpure", files, calibration=calibration), capsys)
    assert err.startswith(f"ssni: error: calibration {calibration}: calibration mismatch: ")
    assert ("model_id" in err) == (other == "model") and ("resolution" in err) == (other == "resolution")


def test_adm_runs_its_torso_in_float32_on_the_cpu():
    """The reference's fp16 torso has no fast CPU kernels (ADM 256 would take hours per image): fp32 on the CPU."""
    from ssni.eval.loading import for_device
    from ssni.models.adm import build_adm

    tiny = dict(image_size=16, num_channels=32, num_res_blocks=1, channel_mult="1,2", attention_resolutions="8")
    model = build_adm(**tiny).convert_to_fp16()
    assert for_device(model, "cuda:0").torso_dtype == torch.float16
    assert for_device(model, "cpu").torso_dtype == torch.float32
