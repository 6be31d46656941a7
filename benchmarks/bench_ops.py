"""CPU op benchmarks: each op (public op = C++ kernel) vs the eager reference vs torch.compile(reference), at the
shapes of `benchmarks.cases`, plus the copy bandwidth they are compared with. Results: benchmarks/results/.

    .venv/bin/python -m pytest benchmarks/bench_ops.py --benchmark-only -q
    .venv/bin/python -m benchmarks.report           # the table again
"""

from __future__ import annotations

import time

import pytest
import torch

from benchmarks.cases import CASES, IMPLS

# Each measurement: enough rounds for ~2 s (at least 3, at most 30) after warm-up calls (compilation).
TARGET_SECONDS = 2.0


def _rounds(seconds_per_call: float) -> int:
    return max(3, min(30, int(TARGET_SECONDS / max(seconds_per_call, 1e-6))))


def _measure(benchmark, fn) -> float:
    fn()  # compiles, first touches
    start = time.perf_counter()
    fn()
    benchmark.pedantic(fn, rounds=_rounds(time.perf_counter() - start), warmup_rounds=1, iterations=1)
    return benchmark.stats.stats.median


@pytest.mark.parametrize("numel", sorted({case.copy_numel for case in CASES}), ids=lambda n: f"{n * 4 >> 20}MiB")
def test_copy(benchmark, recorder, numel):
    """Copy bandwidth (bytes read + written per second) into a preallocated buffer of `numel` float32."""
    src, dst = torch.randn(numel), torch.empty(numel)
    dst.copy_(src)
    median = _measure(benchmark, lambda: dst.copy_(src))
    recorder.copy_gbps[numel] = 2 * numel * 4 / median / 1e9


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_op(benchmark, recorder, case, impl):
    benchmark.group = case.name
    benchmark.extra_info.update(op=case.op, shape=case.shape_name, impl=impl, bytes_moved=case.bytes_moved)
    fn = case.implementations(case.inputs("cpu"))[impl]
    with torch.no_grad():
        recorder.add(case, impl, _measure(benchmark, fn))
