"""`ssni calibrate`, `ssni eval`, `ssni purify` end to end on tiny random models in the embedded MNIST format."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from product_fixtures import write_tiny_models

from ssni.cli import main
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
    assert set(summary["clean_accuracy"]) == {"constant", "ssni-n", "ssni-l"}
    assert set(summary["robust_accuracy"]["ssni-n"]) == {"pgd-linf"}
    assert summary["network_calls"]["total"] > 0 and summary["complete"]
    assert "smoke" in summary["note"]
    log = read_results(out)
    assert len(log.records) == 2 * 3 * 2  # samples × methods × (clean, pgd-linf)
    for r in log.records:
        assert {"sample_id", "label", "pred", "correct", "t", "score_norm", "seed", "method", "attack"} <= set(r)
        if r["method"] == "constant":
            assert r["t"] == 10
        if r["attack"] == "pgd-linf":
            assert r["perturbation_linf"] <= 0.3 + 1e-6
    # the clean score norm of a sample does not depend on the method (same seed, same sample id)
    clean = {}
    for r in log.records:
        if r["method"] == "constant":
            assert r["score_norm"] is None  # a constant t* needs no score norm
        elif r["attack"] == "none":
            clean.setdefault(r["sample_id"], set()).add(round(r["score_norm"], 3))
    assert all(len(v) == 1 for v in clean.values())
    # rerunning the finished command computes nothing and leaves the file as it was
    before = out.read_bytes()
    assert main(_eval_argv(tiny, out)) == 0
    assert out.read_bytes() == before


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
