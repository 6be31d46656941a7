"""The benchmark scripts still run (their --quick sizes) and their built-in equality checks hold."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _importable(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))


def test_purify_command_benchmark_paths_agree():
    from benchmarks.bench_purify_command import measure, render

    r = measure("cpu", images=4, network_batch=2, t_star=4, method="ssni-n", repeats=1)
    assert r["max_abs_difference"] < 1e-5
    chunked, streamed = r["paths"]["chunked"], r["paths"]["streamed"]
    assert chunked["evaluations_per_image"] == streamed["evaluations_per_image"] > 0
    assert streamed["rows_per_pass"] <= 2 and streamed["forward_passes"] > 0
    assert "| streamed |" in render(r)


@pytest.mark.slow
def test_pipeline_benchmark_quick_run(capsys):
    from benchmarks.bench_pipeline import main

    assert main(["--quick", "--no-write", "--models", "mnist"]) == 0
    out = capsys.readouterr().out
    assert "## mnist" in out and "SSNI, streaming" in out


def test_gpu_benchmark_dry_run(tmp_path):
    """`python -m benchmarks.gpu --dry-run` runs every part that can run without CUDA (the Triton kernels through
    the interpreter, the ops and end-to-end timings at tiny sizes, the reports); the CUDA-only parts are skipped
    with the reason. The device command (--quick) shares all of this code."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "benchmarks.gpu", "--dry-run", str(tmp_path)]
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    data = json.loads(next(tmp_path.glob("gpu-dry-run-*.json")).read_text())
    parts = {f"{p['kind']} ({p['variant']})": p for p in data["parts"]}
    assert {name: p["status"] for name, p in parts.items()} == {
        "correctness (triton)": "ok",
        "ops (triton)": "ok",
        "correctness (cuda)": "skipped",
        "ops (cuda)": "skipped",
        "pipeline (adm256)": "ok",
        "pipeline (ddpmpp)": "ok",
    }
    assert parts["ops (cuda)"]["note"] == "needs a CUDA device"
    tests = data["correctness"]["triton"]
    assert tests["passed"] >= 2 and tests["failures"] == tests["errors"] == 0 and tests["skipped"] >= 1

    measured = {(row["case"], row["impl"]) for row in data["ops"]["rows"]}
    assert measured == {(c, i) for c in ("noise_inject-tiny", "reverse_step-tiny-noise-given")
                        for i in ("ssni", "eager", "compiled")}  # fmt: skip
    assert all(row["median_s"] > 0 and row["copy_fraction"] > 0 for row in data["ops"]["rows"])

    for name, run_data in data["pipeline"].items():
        config = run_data["config"]
        for precision in ("fp16", "fp32"):
            result = run_data["precisions"][precision]
            rows = result["rows"]
            assert result["skipped"] == {"SSNI-N streamed + CUDA graph": "needs CUDA"}, (name, precision)
            assert rows["constant t*"]["evaluations_per_image"] == config["t_star"]
            active, streamed = rows["SSNI-N active-only"], rows["SSNI-N streamed"]
            assert active["evaluations_per_image"] == streamed["evaluations_per_image"] > config["levels"]
            assert streamed["max_abs_difference_vs_active_only"] <= 1e-4 and streamed["finite"]
            cost = config["levels"] + config["t_star"] + config["bias"]
            assert rows["SSNI, reference-code cost (derived)"]["evaluations_per_image"] == cost
            assert all(0 <= row.get("outside_network", 0) < 1 and row["images_per_s"] > 0 for row in rows.values())
    assert data["headline"]["model"] == "imagenet-adm-256-uncond" and data["headline"]["images_per_s"] > 0

    markdown = next(tmp_path.glob("gpu-dry-run-*.md")).read_text()
    assert "## End-to-end purification" in markdown and "**Headline**" in markdown
    assert markdown.strip() in run.stdout  # the table is printed too
    assert next(tmp_path.glob("gpu-dry-run-*.log")).stat().st_size > 0


def test_gpu_benchmark_skips_what_does_not_fit_its_budget(tmp_path):
    import dataclasses

    from benchmarks.gpu.profiles import DRY_RUN
    from benchmarks.gpu.run import Runner

    profile = dataclasses.replace(DRY_RUN, budget_s=12)
    data = Runner(profile, tmp_path, "test").run()
    assert {p["status"] for p in data["parts"]} == {"skipped"}
    assert "budget left" in data["parts"][0]["note"] and data["ops"]["rows"] == [] and data["headline"] is None
    assert "| correctness (triton) | skipped |" in next(tmp_path.glob("gpu-dry-run-*.md")).read_text()


def test_op_report_takes_speed_ups_from_interleaved_rounds():
    """A row with interleaved rounds reports their ratio (not the ratio of the separately measured medians), in the
    table and in the targets; a summary of several runs takes the median of the runs' ratios."""
    from benchmarks import report

    def rows(paired_compiled):
        base = dict(op="noise_inject", shape="cifar", bytes_moved=8, copy_gbps=None, gbps=1.0, copy_fraction=None)
        return [
            dict(
                base,
                case="noise_inject-cifar-noise-given",
                impl="ssni",
                median_s=1.0,
                interleaved={"eager": 3.0, "compiled": paired_compiled, "rounds": 9},
            ),
            dict(base, case="noise_inject-cifar-noise-given", impl="eager", median_s=2.0),
            dict(base, case="noise_inject-cifar-noise-given", impl="compiled", median_s=0.5),  # medians say 0.5×
        ]

    data = {"environment": {"device": "cpu"}, "rows": rows(1.2)}
    assert "| 3.00× | 1.20× |" in report.markdown_table(data["rows"])
    assert "noise_inject-cifar-noise-given: ssni ≥ 1× compiled: 1.20× — met" in report.target_lines(data)
    runs = [
        {"environment": {"date_utc": "d", "load_average_1_5_15min": "0"}, "copy_gbps_by_numel": {}, "rows": rows(r)}
        for r in (1.1, 0.9, 1.3)
    ]
    summary = report.summarize(runs, [])
    ssni = next(r for r in summary["rows"] if r["impl"] == "ssni")
    assert ssni["vs"]["compiled"] == pytest.approx(1.1)


def test_recorder_interleaved_speed_up_is_the_ratio_of_medians():
    from benchmarks.cases import CASES
    from benchmarks.conftest import Recorder

    rec = Recorder()
    rec.add_interleaved(CASES[0], {"ssni": [1.0, 2.0, 9.0], "eager": [4.0, 6.0, 5.0], "compiled": [1.0, 3.0, 2.0]})
    assert rec.interleaved[CASES[0].name] == {"eager": 2.5, "compiled": 1.0, "rounds": 3}
