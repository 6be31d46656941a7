"""CPU op benchmarks: each op (public op = C++ kernel) vs plain PyTorch with torch.randn noise (eager), vs
torch.compile of that, vs the Philox-emulating reference, at the cases of `benchmarks.cases`, plus the copy
bandwidth they are compared with. Results: benchmarks/results/.

    .venv/bin/python -m pytest benchmarks/bench_ops.py --benchmark-only -q
    .venv/bin/python -m benchmarks.report           # the table again
"""

from __future__ import annotations

import time

import pytest
import torch

from benchmarks.cases import CASES, IMPLS

# Each measurement: enough rounds for ~TARGET_SECONDS (at least 3, at most 30) after two calls (compilation,
# first touches, and the probe that sizes the rounds).
TARGET_SECONDS = 1.5
TIMING_NOTE = (
    f"pytest-benchmark pedantic, one call per round, median of 3-30 rounds (~{TARGET_SECONDS:g} s) after 2 "
    "untimed calls (compilation, first touches); torch.no_grad(); torch's default CPU threads"
)

MEASURED = [(case, impl) for case in CASES for impl in IMPLS if impl != "reference" or case.generates_noise]


def _measure(benchmark, fn) -> float:
    fn()
    start = time.perf_counter()
    fn()
    seconds_per_call = time.perf_counter() - start
    rounds = max(3, min(30, int(TARGET_SECONDS / max(seconds_per_call, 1e-6))))
    benchmark.pedantic(fn, rounds=rounds, warmup_rounds=0, iterations=1)
    return benchmark.stats.stats.median


@pytest.mark.parametrize("numel", sorted({case.copy_numel for case in CASES}), ids=lambda n: f"{n * 4 >> 20}MiB")
def test_copy(benchmark, recorder, numel):
    """Copy bandwidth (bytes read + written per second) into a preallocated buffer of `numel` float32."""
    src, dst = torch.randn(numel), torch.empty(numel)
    median = _measure(benchmark, lambda: dst.copy_(src))
    recorder.copy_gbps[numel] = 2 * numel * 4 / median / 1e9


@pytest.mark.parametrize(("case", "impl"), MEASURED, ids=[f"{case.name}-{impl}" for case, impl in MEASURED])
def test_op(benchmark, recorder, case, impl):
    benchmark.group = case.name
    benchmark.extra_info.update(op=case.op, shape=case.shape_name, impl=impl, bytes_moved=case.bytes_moved)
    fn = case.implementations(case.inputs("cpu"))[impl]
    with torch.no_grad():
        recorder.add(case, impl, _measure(benchmark, fn))
