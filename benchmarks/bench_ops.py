"""CPU op benchmarks: each op (public op = C++ kernel) vs plain PyTorch with torch.randn noise (eager), vs
torch.compile of that, vs the Philox-emulating reference, at the cases of `benchmarks.cases`, plus the limits they
are measured against: copy bandwidth (elementwise ops), read bandwidth (the reduction) and the throughput of the
Philox generator on one core (ops that generate noise). The speed-ups over eager and compiled come from
interleaved rounds (the three called in turn, so that a slow spell of a shared machine hits all of them alike), the
columns of medians from each implementation's own measurement. Results: benchmarks/results/.

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
READ_NUMELS = sorted({case.copy_numel for case in CASES if case.limit_kind == "read"})
# Readers of the read bandwidth: torch's reductions of the buffer, one stream (sum) or 8 at once (column sums).
READERS = {"sum": lambda x: x.sum(), "column-sums": lambda x: x.view(8, -1).sum(0)}
CPU_ISAS = ("default", "avx2", "avx512")
RNG_GROUPS = 2**14  # 64 Ki normals per call: 256 KiB, in cache
# Per case: rounds of (ssni, eager, compiled) for about INTERLEAVED_SECONDS, at least INTERLEAVED_MIN_ROUNDS.
INTERLEAVED_SECONDS = 3.0
INTERLEAVED_MIN_ROUNDS = 5
INTERLEAVED = ("ssni", "eager", "compiled")


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


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("numel", READ_NUMELS, ids=lambda n: f"{n * 4 >> 20}MiB")
def test_read(benchmark, recorder, numel, reader):
    """Read bandwidth (bytes read per second) of a float32 buffer of `numel`: the fastest of READERS."""
    src = torch.randn(numel)
    median = _measure(benchmark, lambda: READERS[reader](src))
    recorder.read_gbps[numel] = max(recorder.read_gbps.get(numel, 0.0), numel * 4 / median / 1e9)


@pytest.mark.parametrize("isa", CPU_ISAS)
def test_rng(benchmark, recorder, isa):
    """Normals per second of the CPU library's Philox4x32-10 + Box–Muller generator alone, built for `isa`, on one
    thread with its output in cache: the RNG limit of one core."""
    if not hasattr(torch.ops.ssni_cpu, "philox_normals"):
        pytest.skip("this build of the CPU library has no ssni_cpu diagnostics")
    if isa not in torch.ops.ssni_cpu.capabilities():
        pytest.skip(f"this CPU (or build) does not run {isa}")
    median = _measure(benchmark, lambda: torch.ops.ssni_cpu.philox_normals(1234, 0, 3, 0, 0, RNG_GROUPS, isa))
    recorder.rng_normals_per_s[isa] = 4 * RNG_GROUPS / median


@pytest.mark.parametrize(("case", "impl"), MEASURED, ids=[f"{case.name}-{impl}" for case, impl in MEASURED])
def test_op(benchmark, recorder, case, impl):
    benchmark.group = case.name
    benchmark.extra_info.update(op=case.op, shape=case.shape_name, impl=impl, bytes_moved=case.bytes_moved)
    fn = case.implementations(case.inputs("cpu"))[impl]
    with torch.no_grad():
        recorder.add(case, impl, _measure(benchmark, fn))


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_interleaved(benchmark, recorder, case):
    """Speed-ups of ssni over eager and compiled from interleaved rounds: each round calls the three once, in an order
    that rotates from round to round (each runs equally often first, second and last); per baseline, the median of its
    times over the rounds / the median of ssni's."""
    benchmark.group = f"{case.name}-interleaved"
    fns = case.implementations(case.inputs("cpu"))
    times: dict[str, list[float]] = {impl: [] for impl in INTERLEAVED}

    def one_round():
        first = len(times["ssni"]) % len(INTERLEAVED)  # rounds so far
        for impl in INTERLEAVED[first:] + INTERLEAVED[:first]:
            start = time.perf_counter()
            fns[impl]()
            times[impl].append(time.perf_counter() - start)

    with torch.no_grad():
        for impl in INTERLEAVED:  # compilation, first touches
            fns[impl]()
        one_round()
        n = max(INTERLEAVED_MIN_ROUNDS, int(INTERLEAVED_SECONDS / sum(t[-1] for t in times.values())))
        benchmark.pedantic(one_round, rounds=n, warmup_rounds=0, iterations=1)
    recorder.add_interleaved(case, times)
