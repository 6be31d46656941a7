"""One command for a GPU machine: end-to-end purification images/s for the CIFAR-10 and ADM-256 architectures, in
fp32 and fp16, with and without the fused kernels.

    .venv/bin/python -m benchmarks.gpu_pipeline                      # everything (about 30 min on an H100)
    .venv/bin/python -m benchmarks.gpu_pipeline --models cifar --dtypes fp16 --kernels fused

Every configuration runs in a fresh process (the kernel registration is per process):
- kernels "fused": the ssni ops as registered (Triton, or CUDA C++ with SSNI_CUDA_BACKEND=cuda);
- kernels "reference": the CUDA registrations replaced by the PyTorch reference (`ssni_kernels._library.
  REFERENCE_KERNELS`: Philox emulated with int64 tensor ops, unfused arithmetic);
- fp16: the ε-network under torch.autocast(float16); the purification state and the ops stay in float32.
Each configuration times the methods of `benchmarks.bench_pipeline` (baseline at t*, SSNI with the reference
code's cost, ssni's active-only SSNI-N, the streaming engine, with and without a CUDA graph) at the GPU sizes of
`bench_pipeline.GPU_CONFIGS` (CIFAR-10: 128 images, t* = 100, K = 20; ADM-256: 16 images, t* = 150, K = 50), random
weights, clean synthetic images. Results: benchmarks/results/pipeline-gpu-<date>.{json,md}, and a table printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS = ("cifar", "adm256")
DTYPES = ("fp32", "fp16")
KERNELS = ("fused", "reference")

_reference_library = None  # keeps the overriding registrations alive


def use_reference_kernels() -> None:
    """Replace the CUDA kernels of every ssni op by the PyTorch reference (this process only)."""
    global _reference_library
    import torch

    from ssni_kernels import _library

    _reference_library = torch.library.Library("ssni", "IMPL")  # noqa: TOR901
    for name, kernel in _library.REFERENCE_KERNELS.items():
        _reference_library.impl(name, kernel, "CUDA")


def run_one(model_name: str, dtype: str, kernels: str, out: Path) -> None:
    """Time one configuration (in this process) and write its rows to `out`."""
    import torch

    from benchmarks import bench_pipeline as bp

    if kernels == "reference":
        use_reference_kernels()
    device = torch.device("cuda")
    cfg = dataclasses.replace(bp.GPU_CONFIGS[model_name], time_inputs=("clean",))
    model, description = bp.load_model(model_name, device)
    if dtype == "fp16":
        model = bp.Autocast(model, torch.float16)
    sets = bp.image_sets(model_name, cfg.time_images, device)
    result = bp.timing(model, sets, model_name, cfg)
    out.write_text(json.dumps({"description": description, "timing": result}))


def render(rows: list[dict]) -> str:
    lines = [
        "| model | dtype | kernels | method | images/s | evaluations / image | time outside the network |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for method, m in r["timing"]["inputs"]["clean"]["rows"].items():
            lines.append(
                f"| {r['model']} | {r['dtype']} | {r['kernels']} | {method} | {m['images_per_s']:.3g} | "
                f"{m['evaluations_per_image']:.1f} | {100 * m['outside_network']:.1f}% |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--dtypes", default=",".join(DTYPES))
    parser.add_argument("--kernels", default=",".join(KERNELS))
    parser.add_argument("--one", nargs=3, metavar=("MODEL", "DTYPE", "KERNELS"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("benchmarks.gpu_pipeline needs a CUDA device (torch.cuda.is_available() is False); nothing was run.")
        return 2
    if args.one:
        run_one(*args.one, args.out)
        return 0

    from benchmarks import report

    rows = []
    for model_name in args.models.split(","):
        for dtype in args.dtypes.split(","):
            for kernels in args.kernels.split(","):
                print(f"=== {model_name} {dtype} kernels={kernels} ===", flush=True)
                part = REPO / "benchmarks" / "results" / f".pipeline-{model_name}-{dtype}-{kernels}.json"
                part.parent.mkdir(parents=True, exist_ok=True)
                command = [sys.executable, "-m", "benchmarks.gpu_pipeline", "--one", model_name, dtype, kernels]
                subprocess.check_call([*command, "--out", str(part)], cwd=REPO, env=dict(os.environ))
                data = json.loads(part.read_text())
                part.unlink()
                rows.append({"model": model_name, "dtype": dtype, "kernels": kernels, **data})
                print(render(rows[-1:]), flush=True)
    env = report.environment("cuda", compared="ssni fused ops vs PyTorch reference ops; fp32 vs fp16 autocast network")
    text = f"# Pipeline benchmarks (GPU)\n\n{report.environment_lines(env)}\n\n{render(rows)}"
    stem = report.save_run("pipeline", "gpu", {"environment": env, "rows": rows}, text)
    print(f"\n{text}\n\nresults: {stem}.{{json,md}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
