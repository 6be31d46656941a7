"""The diffusers benchmark script runs (its --quick sizes) and its comparable cases agree with diffusers."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("diffusers")
ROOT = Path(__file__).resolve().parents[3]


def test_quick_run_agrees_with_diffusers(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks.bench_diffusers import measure, render

    results = measure("cpu", batch=4, size=4, repeats=1)
    compared = [r for r in results["rows"] if r["max_abs_difference"] is not None]
    assert len(compared) >= 5 and all(r["max_abs_difference"] < 1e-5 for r in compared)
    assert all(r["ssni_s"] > 0 and r["diffusers_s"] > 0 for r in results["rows"])
    assert "| ddpm per-sample, generator |" in render(results)
