"""Benchmark results: collection, the environment they were measured in, files, and the printed table.

    python -m benchmarks.report [results.json]    # print the table of a results file (default: the newest)

A results file (benchmarks/results/ops-<device>-<date>.json, with a .md twin) holds the environment (hardware,
versions, what was compared) and one row per (case, implementation): median seconds, GB/s of the case's minimum
traffic, and that bandwidth as a fraction of a measured copy (dst.copy_(src) into a preallocated buffer of the
case's largest tensor, on the same device in the same run).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REFERENCE_NOTE = (
    "eager = ssni_kernels.reference (the PyTorch spec, Philox noise emulated with int64 tensor ops); "
    "compiled = torch.compile(reference, dynamic=False), default mode; ssni = the public op ssni_kernels.<op> "
    "(torch.ops.ssni: C++ kernels on CPU, Triton or CUDA C++ on GPU). float32, generated (Philox) noise."
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment(device: str, **extra) -> dict:
    """Hardware and software the numbers were measured with."""
    env = {
        "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "device": device,
        "cpu_model": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "git_commit": _git_commit(),
        "compared": REFERENCE_NOTE,
    }
    try:
        import triton

        env["triton"] = triton.__version__
    except ImportError:
        env["triton"] = None
    if device == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env["gpu"] = props.name
        env["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        env["cuda"] = torch.version.cuda
    env.update(extra)
    return env


@dataclass
class Row:
    """One (case, implementation) measurement."""

    case: str
    op: str
    shape: str
    impl: str
    median_s: float
    bytes_moved: int
    copy_gbps: float | None = None
    gbps: float = field(init=False)
    copy_fraction: float | None = field(init=False)

    def __post_init__(self):
        self.gbps = self.bytes_moved / self.median_s / 1e9
        self.copy_fraction = self.gbps / self.copy_gbps if self.copy_gbps else None


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1e3:.3f}"


def _ratio(numerator: float | None, denominator: float | None) -> str:
    return "—" if not numerator or not denominator else f"{numerator / denominator:.2f}×"


def markdown_table(rows: list[dict]) -> str:
    """One line per case: medians of every implementation, the fast op's GB/s and copy fraction, speed-ups."""
    cases: dict[str, dict[str, dict]] = {}
    for row in rows:
        cases.setdefault(row["case"], {})[row["impl"]] = row
    impls = sorted({row["impl"] for row in rows} - {"eager", "compiled"}, key=lambda i: (i != "ssni", i))
    lines = [
        "| case | "
        + " | ".join(f"{i} ms" for i in impls)
        + " | eager ms | compiled ms | "
        + " | ".join(f"{i} GB/s (% copy)" for i in impls)
        + " | "
        + " | ".join(f"{i} vs eager | {i} vs compiled" for i in impls)
        + " |",
    ]
    lines.append("|" + "---|" * (3 + 4 * len(impls)))
    for case, by_impl in cases.items():
        eager = by_impl.get("eager", {}).get("median_s")
        compiled = by_impl.get("compiled", {}).get("median_s")
        cells = [case]
        cells += [_ms(by_impl.get(i, {}).get("median_s")) for i in impls]
        cells += [_ms(eager), _ms(compiled)]
        for i in impls:
            r = by_impl.get(i)
            if r is None:
                cells.append("—")
            else:
                fraction = f" ({100 * r['copy_fraction']:.0f}%)" if r.get("copy_fraction") else ""
                cells.append(f"{r['gbps']:.1f}{fraction}")
        for i in impls:
            mine = by_impl.get(i, {}).get("median_s")
            cells += [_ratio(eager, mine), _ratio(compiled, mine)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def environment_lines(env: dict) -> str:
    return "\n".join(f"- {key}: {value}" for key, value in env.items())


def write_results(rows: list[Row], env: dict, copy_gbps: dict[int, float], stem: str | None = None) -> Path:
    """Write <stem>.json and <stem>.md under benchmarks/results/; returns the JSON path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stem = stem or f"ops-{env['device']}-{dt.datetime.now(dt.timezone.utc).strftime('%Y%m%d-%H%M')}"
    data = {
        "environment": env,
        "copy_gbps_by_numel": {str(k): v for k, v in copy_gbps.items()},
        "rows": [asdict(r) for r in rows],
    }
    json_path = RESULTS_DIR / f"{stem}.json"
    json_path.write_text(json.dumps(data, indent=2) + "\n")
    (RESULTS_DIR / f"{stem}.md").write_text(render(data) + "\n")
    return json_path


def render(data: dict) -> str:
    copies = ", ".join(f"{int(n) * 4 / 2**20:.0f} MiB: {g:.1f} GB/s" for n, g in data["copy_gbps_by_numel"].items())
    return (
        f"# Op benchmarks ({data['environment']['device']})\n\n{environment_lines(data['environment'])}\n"
        f"- copy bandwidth (read + write, float32 buffer of the case's largest tensor): {copies}\n\n"
        + markdown_table(data["rows"])
    )


def newest_results() -> Path:
    files = sorted(RESULTS_DIR.glob("ops-*.json"), key=lambda p: p.stat().st_mtime)
    if not files:
        raise SystemExit(f"no results in {RESULTS_DIR}; run: python -m pytest benchmarks/ --benchmark-only")
    return files[-1]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0]) if argv else newest_results()
    print(f"{path}\n")
    print(render(json.loads(path.read_text())))


if __name__ == "__main__":
    main()
