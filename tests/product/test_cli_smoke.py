"""`ssni eval --smoke` on the shipped MNIST weights and calibration, through the installed entry point's module."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ssni.models import spec
from ssni.zoo.mnist import CALIBRATION

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_smoke_eval_on_the_embedded_default(tmp_path):
    if not (spec("mnist-ddpm").embedded.is_file() and CALIBRATION.is_file()):
        pytest.fail("the embedded MNIST weights/calibration are missing from ssni/weights/")
    out = tmp_path / "smoke.jsonl"
    cmd = [sys.executable, "-m", "ssni.cli", "eval", "--smoke", "--json", "--no-progress", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["complete"] and summary["num_samples"] == 4
    assert set(summary["clean_accuracy"]) == {"constant", "ssni-n", "ssni-l", "constant@100", "constant@200"}
    # the paper's first observation, robust even on 4 images: adversarial inputs have larger score norms
    assert summary["score_norm_adv_mean"] > summary["score_norm_clean_mean"]
    # SSNI purifies clean inputs with less noise than t* = 300, adversarial ones with more than clean ones
    t_ssni = summary["mean_t"]["ssni-n"]
    assert t_ssni["clean"] < summary["mean_t"]["constant"]["clean"] == 300
    assert t_ssni["adversarial"] > t_ssni["clean"]
