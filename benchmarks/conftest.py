"""Fixtures of the CPU op benchmarks: steady-state allocator, copy bandwidth, and the results file.

Run: `.venv/bin/python -m pytest benchmarks/ --benchmark-only` (not collected by plain `pytest`: testpaths=tests).
SSNI_BENCH_ALLOCATOR=default measures with glibc's default allocator instead of the steady-state one.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import statistics
from pathlib import Path

import pytest
import torch

from benchmarks import bench_ops, report


def _keep_freed_memory() -> bool:
    """glibc: serve every allocation from the heap and never trim it, so that a repeated call reuses pages instead
    of mmap-ing fresh ones (first-touch page faults run at ~2 GB/s here and would dominate every op that returns a
    new tensor, and every eager temporary). Applies to all implementations alike; the GPU analogue is torch's
    caching allocator. SSNI_BENCH_ALLOCATOR=default keeps glibc's defaults instead."""
    libc_name = ctypes.util.find_library("c")
    if os.environ.get("SSNI_BENCH_ALLOCATOR", "reuse") == "default" or libc_name is None:
        return False
    libc = ctypes.CDLL(libc_name)
    m_trim_threshold, m_mmap_max = -1, -4
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))


STEADY_STATE_ALLOCATOR = _keep_freed_memory()
ALLOCATOR_NOTE = (
    "glibc mallopt(M_MMAP_MAX=0, M_TRIM_THRESHOLD=2^31-1): freed memory is reused, no page faults in steady state"
    if STEADY_STATE_ALLOCATOR
    else "glibc defaults (large tensors are fresh mmap-ed pages on every call)"
)


def pytest_collect_file(file_path, parent):
    """Collect bench_*.py (pytest's default pattern is test_*.py, and pyproject's testpaths leaves benchmarks/ out
    of a plain `pytest` run)."""
    explicit = parent.session.isinitpath(file_path)  # a file named on the command line is collected anyway
    if file_path.suffix == ".py" and file_path.name.startswith("bench_") and not explicit:
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def _cpu_isa() -> dict:
    """The instruction sets in play: what the CPU has, what the ssni CPU kernels use (isa_kernels.h) and what
    torch's own kernels (eager and compiled) use."""
    flags = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    info = {
        "cpu_id": report.cpu_id(),
        "cpu_vector_flags": " ".join(sorted(f for f in flags if f in ("avx2", "fma", "avx512f", "avx512bw"))) or "?",
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    if flags and "avx512f" not in flags:
        info["avx512"] = (
            "not on this CPU: the AVX-512 kernels are neither run nor measured here (another machine class)"
        )
    if hasattr(torch.ops.ssni_cpu, "capability"):
        available = ", ".join(torch.ops.ssni_cpu.capabilities())
        info["ssni_cpu_isa"] = f"{torch.ops.ssni_cpu.capability()} (available: {available})"
    return info


class Recorder:
    """Collects medians and the limits during the session; writes the results files at its end."""

    def __init__(self):
        self.medians: list[tuple] = []
        self.copy_gbps: dict[int, float] = {}
        self.read_gbps: dict[int, float] = {}
        self.rng_normals_per_s: dict[str, float] = {}  # per ISA, one thread
        self.interleaved: dict[str, dict[str, float]] = {}  # case → baseline → interleaved speed-up, and "rounds"

    def add(self, case, impl: str, median_s: float) -> None:
        self.medians.append((case, impl, median_s))

    def add_interleaved(self, case, times: dict[str, list[float]]) -> None:
        """times: implementation → its times in the interleaved rounds; stores median(baseline) / median(ssni)."""
        ssni = statistics.median(times["ssni"])
        self.interleaved[case.name] = {b: statistics.median(t) / ssni for b, t in times.items() if b != "ssni"}
        self.interleaved[case.name]["rounds"] = len(times["ssni"])

    def _active_rng(self) -> float | None:
        if not hasattr(torch.ops.ssni_cpu, "capability"):
            return None
        return self.rng_normals_per_s.get(torch.ops.ssni_cpu.capability())

    def rows(self) -> list[report.Row]:
        threads, rng = torch.get_num_threads(), self._active_rng()
        rows = []
        for case, impl, median in self.medians:
            bandwidth = (self.read_gbps if case.limit_kind == "read" else self.copy_gbps).get(case.copy_numel)
            limit = report.Limit.of(case.limit_kind, case.bytes_moved, bandwidth, case.normals, rng, threads)
            row = report.Row(
                case.name, case.op, case.shape_name, impl, median, case.bytes_moved, self.copy_gbps.get(case.copy_numel)
            )
            row.set_limit(limit, case.normals, threads)
            if impl not in report.BASELINES:
                row.interleaved = self.interleaved.get(case.name)
            rows.append(row)
        return rows


@pytest.fixture(scope="session")
def recorder(request):
    rec = Recorder()
    yield rec
    if rec.medians:
        env = report.environment(
            "cpu",
            compared=report.REFERENCE_NOTE,
            allocator=ALLOCATOR_NOTE,
            timing=bench_ops.TIMING_NOTE,
            limits=report.LIMITS_NOTE,
            **_cpu_isa(),
        )
        stem = f"ops-cpu-{env['date_utc'].replace('-', '').replace(' ', '-').replace(':', '')}"
        stem += "" if STEADY_STATE_ALLOCATOR else "-default-allocator"
        path = report.write_results(
            rec.rows(), env, rec.copy_gbps, stem, read_gbps=rec.read_gbps, rng_normals_per_s=rec.rng_normals_per_s
        )
        print(f"\nresults: {path}\n")
        print(report.render(json.loads(path.read_text())))
