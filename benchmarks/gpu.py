"""One command for a GPU machine: correctness tests on the GPU, then the op benchmarks, then a table.

    .venv/bin/python -m benchmarks.gpu            # tests (Triton, and CUDA C++ if built) + benchmarks
    .venv/bin/python -m benchmarks.gpu --bench    # benchmarks only

Steps:
1. pytest on the GPU: the Triton kernel tests (tests/ssni_kernels/test_triton_*.py run on CUDA when it exists)
   and every test marked `gpu`, once with SSNI_CUDA_BACKEND=triton and, when ssni_kernels._C_cuda is built,
   once more with SSNI_CUDA_BACKEND=cuda (then tests/ssni_kernels/test_cuda_kernels.py checks the C++ kernels).
2. For each backend, in a fresh process: every case of `benchmarks.cases` timed with triton.testing.do_bench
   (median over repetitions, L2 flushed between them) for the public op, the eager reference and
   torch.compile(reference), plus the card's copy bandwidth (dst.copy_(src) into a preallocated buffer of each
   case's largest tensor). Results: benchmarks/results/ops-cuda-<date>.{json,md}, and the table printed.
Target (issue 2): every op at ≥ 80% of the measured copy bandwidth at the large shapes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Ops for which ssni_kernels._C_cuda has CUDA C++ kernels (csrc/cuda/bindings.cpp); Triton serves the rest.
CUDA_CPP_OPS = ("noise_inject", "score_norm")


def _cuda_cpp_built() -> bool:
    import importlib.util

    return importlib.util.find_spec("ssni_kernels._C_cuda") is not None


def run_tests(backends: list[str]) -> int:
    """pytest of the GPU-relevant tests once per backend; returns the worst exit code."""
    worst = 0
    for backend in backends:
        print(f"\n=== correctness tests on the GPU, SSNI_CUDA_BACKEND={backend} ===", flush=True)
        tests = sorted(str(p) for p in (REPO / "tests" / "ssni_kernels").glob("test_triton_*.py"))
        tests += [str(REPO / "tests" / "ssni_kernels" / "test_cuda_kernels.py")] if backend == "cuda" else []
        command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *tests]
        code = subprocess.call(command, cwd=REPO, env={**os.environ, "SSNI_CUDA_BACKEND": backend})
        # gpu-marked tests anywhere else (exit code 5: none selected, which is fine).
        marked = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-m", "gpu", "tests"]
        marked_code = subprocess.call(marked, cwd=REPO, env={**os.environ, "SSNI_CUDA_BACKEND": backend})
        worst = max(worst, code, 0 if marked_code == 5 else marked_code)
    return worst


def _median_seconds(fn) -> float:
    from triton.testing import do_bench

    return do_bench(fn, warmup=25, rep=200, return_mode="median") / 1e3


def _copy_gbps(numel: int) -> float:
    """Read + write bandwidth of dst.copy_(src), float32, preallocated."""
    import torch

    src = torch.randn(numel, device="cuda")
    dst = torch.empty_like(src)
    return 2 * numel * 4 / _median_seconds(lambda: dst.copy_(src)) / 1e9


def bench_backend(backend: str, out_path: Path) -> None:
    """Benchmark every case with the public ops on `backend` (run in a process with SSNI_CUDA_BACKEND set)."""
    import torch

    from benchmarks import report
    from benchmarks.cases import CASES

    rows, copy_gbps = [], {}
    impl_name = f"ssni-{backend}"
    for case in CASES:
        if case.copy_numel not in copy_gbps:
            copy_gbps[case.copy_numel] = _copy_gbps(case.copy_numel)
        if backend == "cuda" and case.op not in CUDA_CPP_OPS:
            continue
        implementations = case.implementations(case.inputs("cuda"))
        names = (
            {"ssni": impl_name} if backend == "cuda" else {"ssni": impl_name, "eager": "eager", "compiled": "compiled"}
        )
        with torch.no_grad():
            for impl, label in names.items():
                median = _median_seconds(implementations[impl])
                rows.append(
                    report.Row(
                        case.name, case.op, case.shape_name, label, median, case.bytes_moved, copy_gbps[case.copy_numel]
                    )
                )
                print(f"{case.name:32s} {label:12s} {median * 1e3:9.3f} ms", flush=True)
        torch.cuda.empty_cache()
    out_path.write_text(json.dumps({"rows": [r.__dict__ for r in rows], "copy_gbps": copy_gbps}))


def run_benchmarks(backends: list[str]) -> Path:
    from benchmarks import report

    rows, copy_gbps = [], {}
    for backend in backends:
        print(f"\n=== op benchmarks, SSNI_CUDA_BACKEND={backend} ===", flush=True)
        part = REPO / "benchmarks" / "results" / f".gpu-{backend}.json"
        part.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "benchmarks.gpu", "--bench-backend", backend, "--part", str(part)]
        subprocess.check_call(command, cwd=REPO, env={**os.environ, "SSNI_CUDA_BACKEND": backend})
        data = json.loads(part.read_text())
        part.unlink()
        rows += [report.Row(**{k: v for k, v in r.items() if k not in ("gbps", "copy_fraction")}) for r in data["rows"]]
        copy_gbps.update({int(k): v for k, v in data["copy_gbps"].items()})
    path = report.write_results(rows, report.environment("cuda", backends=", ".join(backends)), copy_gbps)
    print(f"\nresults: {path}\n")
    print(report.render(json.loads(path.read_text())))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench", action="store_true", help="benchmarks only (skip the correctness tests)")
    parser.add_argument("--tests", action="store_true", help="correctness tests only")
    parser.add_argument("--bench-backend", help=argparse.SUPPRESS)
    parser.add_argument("--part", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("benchmarks.gpu needs a CUDA device (torch.cuda.is_available() is False); nothing was run.")
        return 2
    if args.bench_backend:
        bench_backend(args.bench_backend, args.part)
        return 0
    backends = ["triton", "cuda"] if _cuda_cpp_built() else ["triton"]
    if not _cuda_cpp_built():
        print("ssni_kernels._C_cuda is not built: CUDA C++ kernels are not tested or benchmarked (build: README).")
    code = 0 if args.bench else run_tests(backends)
    if not args.tests:
        run_benchmarks(backends)
    print(f"\ncorrectness tests: {'passed' if code == 0 else f'FAILED (exit code {code})'}")
    return code


if __name__ == "__main__":
    sys.exit(main())
