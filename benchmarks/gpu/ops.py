"""Part "ops": each op case of the profile timed for the public op, plain PyTorch (eager) and torch.compile of it,
against the device's copy bandwidth (dst.copy_(src) into a preallocated buffer of the case's largest tensor).

    python -m benchmarks.gpu.ops --profile quick --backend triton --seconds 85 --out part.json

Run by `python -m benchmarks.gpu` in a process of its own, with SSNI_CUDA_BACKEND=<backend> (the kernels are
registered at import) and SSNI_CHECK_VALUES=0: the public op's value checks read a flag back to the host on every
call, which would time the synchronisation instead of the kernel (the end-to-end part keeps them on). Writes its
JSON after every measurement, so a run stopped at its limit keeps what it measured; what does not fit in
--seconds is skipped and listed with the reason.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import torch

from benchmarks import report
from benchmarks.gpu.profiles import CUDA_CPP_OPS, PROFILES
from benchmarks.gpu.timing import Deadline, median_seconds, synchronize

FIRST_COMPILE_S = 40.0  # budgeted for the first torch.compile of a process (later ones: the last one's time)
MEASURE_S = 3.0  # budgeted per timed implementation (do_bench: 25 ms warm-up, 100 ms of repetitions, L2 flushes)


def copy_gbps(numel: int, device: torch.device) -> float:
    """Read + write bandwidth of dst.copy_(src), float32, preallocated."""
    src = torch.randn(numel, device=device)
    dst = torch.empty_like(src)
    return 2 * numel * 4 / median_seconds(lambda: dst.copy_(src), device) / 1e9


def cuda_cpp_kernels_loaded() -> bool:
    return any("_C_cuda" in path for path in torch.ops.loaded_libraries)


def measure(profile_name: str, backend: str, seconds: float | None, out: Path) -> dict:
    """Time the profile's cases with the public ops of `backend`; returns (and writes to `out`) the part's data."""
    import ssni_kernels  # noqa: F401 (registers the kernels of SSNI_CUDA_BACKEND)

    profile = PROFILES[profile_name]
    device = torch.device(profile.device)
    deadline = Deadline(seconds)
    cuda_cpp = backend == "cuda"
    ssni_label = f"ssni-{backend}" if device.type == "cuda" else "ssni"
    data = {"backend": backend, "ssni_label": ssni_label, "rows": [], "copy_gbps": {}, "skipped": [], "compile_s": {}}
    if cuda_cpp and not cuda_cpp_kernels_loaded():
        data["error"] = "SSNI_CUDA_BACKEND=cuda but ssni_kernels._C_cuda is not loaded"
        out.write_text(json.dumps(data))
        return data
    cases = [c for c in profile.op_cases if not cuda_cpp or c.op in CUDA_CPP_OPS]
    impls = ("ssni",) if cuda_cpp else profile.op_impls
    compile_estimate = 0.0 if os.environ.get("TORCH_COMPILE_DISABLE") == "1" else FIRST_COMPILE_S
    for case in cases:
        if not deadline.allows(MEASURE_S):
            data["skipped"].append(f"{case.name}: not started, {deadline.left():.0f} s left")
            continue
        inputs = case.inputs(device)
        functions = case.implementations(inputs)
        if case.copy_numel not in data["copy_gbps"]:
            data["copy_gbps"][case.copy_numel] = copy_gbps(case.copy_numel, device)
        for impl in impls:
            if impl not in functions:
                continue
            needed = MEASURE_S + (compile_estimate if impl == "compiled" else 0)
            if not deadline.allows(needed):
                data["skipped"].append(f"{case.name} {impl}: needs ~{needed:.0f} s, {deadline.left():.0f} s left")
                continue
            fn = functions[impl]
            with torch.no_grad():
                if impl == "compiled":
                    start = time.perf_counter()
                    fn()
                    synchronize(device)
                    compile_estimate = data["compile_s"][case.name] = time.perf_counter() - start
                median = median_seconds(fn, device)
            label = ssni_label if impl == "ssni" else impl
            row = report.Row(
                case.name, case.op, case.shape_name, label, median, case.bytes_moved, data["copy_gbps"][case.copy_numel]
            )
            data["rows"].append(dataclasses.asdict(row))
            print(f"{case.name:40s} {label:12s} {median * 1e3:9.3f} ms", flush=True)
            out.write_text(json.dumps(data))
        del inputs, functions
        if device.type == "cuda":
            torch.cuda.empty_cache()
    out.write_text(json.dumps(data))
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=sorted(PROFILES), required=True)
    parser.add_argument("--backend", choices=("triton", "cuda"), default="triton")
    parser.add_argument("--seconds", type=float, default=None, help="time limit: skip what would not fit")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    data = measure(args.profile, args.backend, args.seconds, args.out)
    return 1 if "error" in data else 0


if __name__ == "__main__":
    raise SystemExit(main())
