"""`ssni` rejects bad input with one clear line on stderr and exit status 2, never a traceback."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from product_fixtures import write_tiny_models

from ssni.cli import EXIT_USER_ERROR, main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path, monkeypatch):
    """Default outputs (ssni-results/) of a command land in a temporary folder, never in the repository."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    diffusion, classifier = write_tiny_models(folder)
    return {"diffusion": diffusion, "classifier": classifier, "dir": folder}


def _run(argv, capsys) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


def _purify_args(tiny, source: Path) -> list[str]:
    return ["purify", str(source), "--out", str(tiny["dir"] / "p.pt"), "--diffusion-checkpoint", str(tiny["diffusion"])]


@pytest.mark.parametrize(
    "array, message",
    [
        (np.full((2, 1, 28, 28), np.nan, np.float32), "NaN"),
        (np.full((2, 1, 28, 28), 2.0, np.float32), r"\[0, 1\]"),
        (np.zeros((2, 3, 28, 28), np.float32), "channel"),
        (np.zeros((2, 1, 32, 32), np.float32), "28×28"),
        (np.zeros((2, 28, 28, 1), np.float32), r"\[N, H, W, C\]"),
        (np.zeros((28, 28), np.float32), r"\[N, C, H, W\]"),
        (np.zeros((2, 1, 28, 28), np.uint8), "float"),
    ],
    ids=["nan", "range", "channels", "size", "nhwc", "2d", "uint8"],
)
def test_bad_images(tiny, capsys, array, message):
    path = tiny["dir"] / "bad.npy"
    np.save(path, array)
    code, err = _run(_purify_args(tiny, path), capsys)
    assert code == EXIT_USER_ERROR
    assert err.startswith("ssni: error:") and str(path) in err
    assert re.search(message, err), err


def test_bad_pt_and_missing_input(tiny, capsys):
    path = tiny["dir"] / "bad.pt"
    torch.save({"not": "a tensor"}, path)
    code, err = _run(_purify_args(tiny, path), capsys)
    assert code == EXIT_USER_ERROR and "expected a tensor" in err
    code, err = _run(_purify_args(tiny, tiny["dir"] / "missing.npy"), capsys)
    assert code == EXIT_USER_ERROR and "does not exist" in err


def test_unknown_preset_method_attack(capsys):
    code, err = _run(["eval", "--preset", "cifar100"], capsys)
    assert code == EXIT_USER_ERROR and "unknown preset 'cifar100'" in err and "mnist" in err
    code, err = _run(["eval", "--methods", "ssni-x"], capsys)
    assert code == EXIT_USER_ERROR and "unknown method 'ssni-x'" in err
    code, err = _run(["eval", "--attacks", "cw"], capsys)
    assert code == EXIT_USER_ERROR and "unknown attack(s) cw" in err
    code, err = _run(["eval", "--iterations", "0"], capsys)
    assert code == EXIT_USER_ERROR and "--iterations must be an int >= 1" in err


def test_missing_checkpoints(tiny, capsys):
    code, err = _run(["eval", "--diffusion-checkpoint", str(tiny["dir"] / "nope.safetensors")], capsys)
    assert code == EXIT_USER_ERROR and "diffusion checkpoint" in err and "does not exist" in err
    code, err = _run(["eval", "--preset", "cifar10-diffpure"], capsys)
    assert code == EXIT_USER_ERROR and "needs --data --diffusion-checkpoint --classifier-checkpoint" in err
    code, err = _run(["calibrate", "--preset", "cifar10-diffpure", "--data", "d", "--out", "c.json"], capsys)
    assert code == EXIT_USER_ERROR and "needs --diffusion-checkpoint (nothing is downloaded)" in err
    corrupt = tiny["dir"] / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00" * 64)
    code, err = _run(["eval", "--diffusion-checkpoint", str(corrupt)], capsys)
    assert code == EXIT_USER_ERROR and "safetensors" in err


def test_mismatched_calibration(tiny, capsys):
    cal = tiny["dir"] / "cal.json"
    code, _ = _run(
        [
            "calibrate",
            "--diffusion-checkpoint",
            str(tiny["diffusion"]),
            "--out",
            str(cal),
            "--num-samples",
            "4",
            "--num-levels",
            "2",
        ],
        capsys,
    )
    assert code == 0 and json.loads(cal.read_text())["num_levels"] == 2
    base = [
        "eval",
        "--diffusion-checkpoint",
        str(tiny["diffusion"]),
        "--classifier-checkpoint",
        str(tiny["classifier"]),
    ]
    code, err = _run([*base, "--calibration", str(cal)], capsys)  # preset T' = 10, calibrated with 2
    assert code == EXIT_USER_ERROR and "calibration" in err and "num_levels" in err
    write_tiny_models(tiny["dir"] / "other", seed=1)
    other_base = [
        "eval",
        "--diffusion-checkpoint",
        str(tiny["dir"] / "other" / "tiny_ddpm.safetensors"),
        "--classifier-checkpoint",
        str(tiny["classifier"]),
    ]
    code, err = _run([*other_base, "--calibration", str(cal), "--num-levels", "2"], capsys)
    assert code == EXIT_USER_ERROR and "model_id" in err
    code, err = _run([*base, "--calibration", str(tiny["dir"] / "none.json")], capsys)
    assert code == EXIT_USER_ERROR and "calibration file" in err and "does not exist" in err


def test_entry_point_prints_no_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "ssni.cli", "eval", "--preset", "nope"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == EXIT_USER_ERROR
    assert "Traceback" not in proc.stderr and "ssni: error: unknown preset 'nope'" in proc.stderr


def test_help_everywhere(capsys):
    for argv in (["--help"], ["eval", "--help"], ["purify", "--help"], ["calibrate", "--help"], ["report", "--help"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 0
        assert "usage: ssni" in capsys.readouterr().out


def test_a_bug_is_not_reported_as_a_user_error(monkeypatch, tmp_path):
    """Only SSNIUserError and its kin become `ssni: error:`; a ValueError from inside is a bug and propagates."""
    import ssni.cli as cli

    def broken(args):
        raise ValueError("an internal bug")

    monkeypatch.setitem(cli.COMMANDS, "report", broken)
    with pytest.raises(ValueError, match="an internal bug"):
        main(["report", str(tmp_path / "r.jsonl")])
