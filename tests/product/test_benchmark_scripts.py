"""The benchmark scripts still run (their --quick sizes) and their built-in equality checks hold."""

from __future__ import annotations

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
