"""`ssni calibrate`, `ssni eval`, `ssni purify` end to end on tiny random models in the embedded MNIST format."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image
from product_fixtures import write_tiny_models

from ssni.cli import build_parser, main
from ssni.eval.records import read_results

SUMMARY_KEYS = (
    "clean_accuracy",
    "robust_accuracy",
    "mean_t",
    "score_norm_clean_mean",
    "score_norm_adv_mean",
    "network_calls",
)


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path, monkeypatch):
    """Default outputs (ssni-results/) of a command land in a temporary folder, never in the repository."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    diffusion, classifier = write_tiny_models(folder)
    cal = folder / "cal.json"
    argv = [
        "calibrate",
        "--diffusion-checkpoint",
        str(diffusion),
        "--out",
        str(cal),
        "--num-samples",
        "8",
        "--num-levels",
        "2",
    ]
    assert main(argv) == 0
    models = [
        "--diffusion-checkpoint",
        str(diffusion),
        "--calibration",
        str(cal),
        "--num-levels",
        "2",
        "--t-star",
        "10",
    ]
    return {"dir": folder, "models": models, "classifier": ["--classifier-checkpoint", str(classifier)]}


def _eval_argv(tiny, out) -> list[str]:
    return [
        "eval",
        "--smoke",
        *tiny["models"],
        *tiny["classifier"],
        "--num-samples",
        "2",
        "--batch-size",
        "2",
        "--out",
        str(out),
        "--no-progress",
        "--json",
    ]


def test_calibration_file(tiny):
    cal = json.loads((tiny["dir"] / "cal.json").read_text())
    assert cal["num_levels"] == 2 and cal["num_samples"] == 8 and cal["resolution"] == [28, 28]
    assert cal["model_id"].startswith("mnist-ddpm:") and cal["tau"] > 0 and cal["min"] <= cal["mean"] <= cal["max"]


def test_eval_json_records_and_resume(tiny, tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    assert main(_eval_argv(tiny, out)) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    for key in SUMMARY_KEYS:
        assert key in summary
    methods = {"constant", "ssni-n", "ssni-l", "constant@100", "constant@200"}  # the mnist preset's
    assert set(summary["clean_accuracy"]) == methods
    assert set(summary["robust_accuracy"]["ssni-n"]) == {"pgd-linf"}
    assert summary["network_calls"]["total"] > 0 and summary["complete"]
    assert "smoke" in summary["note"]
    log = read_results(out)
    assert len(log.records) == 2 * len(methods) * 2  # samples × methods × (clean, pgd-linf)
    for r in log.records:
        assert {"sample_id", "label", "pred", "correct", "t", "score_norm", "seed", "method", "attack"} <= set(r)
        if r["method"] == "constant":
            assert r["t"] == 10
        if r["attack"] == "pgd-linf":
            assert r["perturbation_linf"] <= 0.3 + 1e-6
    # the clean score norm of a sample does not depend on the method (same seed, same sample id)
    clean = {}
    for r in log.records:
        if r["method"].startswith("constant"):
            assert r["score_norm"] is None  # a constant t needs no score norm
        elif r["attack"] == "none":
            clean.setdefault(r["sample_id"], set()).add(round(r["score_norm"], 3))
    assert all(len(v) == 1 for v in clean.values())
    # rerunning the finished command computes nothing and leaves the file as it was
    before = out.read_bytes()
    assert main(_eval_argv(tiny, out)) == 0
    assert out.read_bytes() == before


def _png_folder(folder, names: list[str]):
    folder.mkdir()
    pixels = np.random.default_rng(0).integers(0, 256, (len(names), 28, 28), dtype=np.uint8)
    for name, image in zip(names, pixels):
        Image.fromarray(image).save(folder / name)
    return folder


def test_purify_folder_and_scores(tiny, tmp_path, capsys):
    images = torch.rand(3, 1, 28, 28)
    torch.save(images, tmp_path / "x.pt")
    out = tmp_path / "p.pt"
    argv = [
        "purify",
        str(tmp_path / "x.pt"),
        "--out",
        str(out),
        *tiny["models"],
        *tiny["classifier"],
        "--method",
        "ssni-l",
    ]
    assert main(argv) == 0
    purified = torch.load(out)
    assert purified.shape == images.shape and torch.isfinite(purified).all()
    with open(out.with_suffix(".csv")) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["sample_id"]) for r in rows] == [0, 1, 2]
    assert [r["filename"] for r in rows] == ["x.pt[0]", "x.pt[1]", "x.pt[2]"]
    assert all(5 <= int(r["t"]) <= 9 + 5 and float(r["score_norm"]) > 0 for r in rows)
    scores = tmp_path / "s.json"
    argv = [
        "purify",
        "--out",
        str(out),
        "--scores",
        str(scores),
        *tiny["models"],
        *tiny["classifier"],
        "--method",
        "constant@20",
        "--num-samples",
        "2",
    ]
    assert main(argv) == 0
    payload = json.loads(scores.read_text())
    assert [s["t"] for s in payload["samples"]] == [20, 20] and "label" in payload["samples"][0]


def test_purify_names_files_and_writes_pngs(tiny, tmp_path):
    """A folder's file names are the table's `filename` column; --png writes each purified image as an 8-bit PNG
    named after its input, the .pt values clamped to [0, 1] and rounded to k/255 (the .pt itself is not clamped)."""
    folder = _png_folder(tmp_path / "in", ["b.png", "a.png", "c.png"])
    out, png = tmp_path / "p.pt", tmp_path / "pngs"
    argv = ["purify", str(folder), "--out", str(out), "--png", str(png), *tiny["models"], *tiny["classifier"]]
    assert main([*argv, "--method", "constant"]) == 0
    with open(out.with_suffix(".csv")) as f:
        rows = list(csv.DictReader(f))
    assert [r["filename"] for r in rows] == ["a.png", "b.png", "c.png"]  # sorted by name, the order of the images
    assert sorted(p.name for p in png.iterdir()) == ["a.png", "b.png", "c.png"]
    purified = torch.load(out)
    for i, name in enumerate(["a.png", "b.png", "c.png"]):
        written = np.asarray(Image.open(png / name))
        expected = (purified[i, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        assert written.dtype == np.uint8 and np.array_equal(written, expected)


def test_calibrate_takes_images_positionally(tiny, tmp_path):
    """`ssni calibrate IMAGES` calibrates on the user's clean images (as `ssni purify IMAGES` purifies them), and
    the file records where they came from; eval then accepts it for the same model."""
    folder = _png_folder(tmp_path / "clean", [f"{i}.png" for i in range(4)])
    cal = tmp_path / "mine.json"
    argv = ["calibrate", str(folder), "--out", str(cal), "--num-levels", "2", *tiny["models"][:2]]
    assert main(argv) == 0
    stored = json.loads(cal.read_text())
    assert stored["num_samples"] == 4 and stored["source"]["split"] == "input"
    assert stored["source"]["folder"] == str(folder.resolve())


def test_eval_eps_and_step_size_reach_records_and_summary(tiny, tmp_path, capsys):
    """--eps and --step-size override the preset's attack: the records header stores what ran, the
    perturbations stay inside the new ε, and the summary's attack configuration (the report's table) shows both."""
    out = tmp_path / "r.jsonl"
    argv = [*_eval_argv(tiny, out), "--methods", "constant", "--eps", "0.05", "--step-size", "0.02"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["note"] == "smoke configuration (CI): not a meaningful robustness number"
    log = read_results(out)
    (attack,) = log.header["config"]["preset"]["attacks"]
    assert (attack["eps"], attack["step_size"]) == (0.05, 0.02)
    assert all(r["perturbation_linf"] <= 0.05 + 1e-6 for r in log.records if r["attack"] == "pgd-linf")
    (shown,) = summary["attack_config"]  # what report.md's configuration table shows
    assert (shown["eps"], shown["step_size"], shown["iterations"], shown["surrogate_steps"]) == (0.05, 0.02, 2, "2")


def _options(command: str) -> set[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    return {o for a in sub._actions for o in a.option_strings} | {a.dest for a in sub._actions if not a.option_strings}


def test_each_command_lists_only_the_options_it_uses():
    """calibrate runs no classifier and no defence: it offers none of their options; every option has help."""
    calibrate, purify, evaluate = _options("calibrate"), _options("purify"), _options("eval")
    unused = {"--classifier-checkpoint", "--calibration", "--t-star", "--data-seed", "--network-batch"}
    assert not unused & calibrate and {"input", "--tau", "--seed", "--num-levels"} <= calibrate
    assert {"input", "--png", "--seed", "--tau", "--t-star"} <= purify
    assert not {"--eps", "--step-size", "--iterations", "--attacks"} & purify
    assert {"--eps", "--step-size", "--t-sweep"} <= evaluate
    parser = build_parser()
    for name, sub in next(a for a in parser._actions if a.dest == "command").choices.items():
        if name.startswith("train-"):
            continue
        assert all(a.help for a in sub._actions), name
