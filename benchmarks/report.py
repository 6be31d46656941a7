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
    "float32. ssni = the public op ssni_kernels.<op> (torch.ops.ssni: C++ kernels on CPU, Triton or CUDA C++ on "
    "GPU), noise from its Philox stream unless the case is *-noise-given; eager = plain PyTorch: the reference "
    "arithmetic (ssni_kernels.reference.<op>) with noise=torch.randn(...) drawn inside the timed call (given "
    "noise in *-noise-given cases); compiled = torch.compile(eager, dynamic=False), default mode; reference "
    "(Philox emulated) = ssni_kernels.reference.<op> generating the same Philox noise as ssni with int64 tensor "
    "ops, i.e. the package's fallback without the C++ extension (extra column, no target)"
)
BASELINES = ("eager", "compiled", "reference")  # every other impl is an ssni op compared against these
COLUMNS = {
    "case": "op-shape[-K levels][-noise-given]; cifar = 256×3×32×32, imagenet = 16×3×256×256, K20 = 20 levels",
    "ssni, eager, compiled, reference": "the implementations described under `compared` above",
    "ms": "median wall time of one call",
    "GB/s (% copy)": "the case's minimum traffic (inputs read once, outputs written once) / median, and that "
    "as a percentage of the copy bandwidth measured for the case's largest tensor in the same run",
    "vs eager, vs compiled": "median of the baseline / median of the ssni op (> 1: ssni is faster)",
}


@dataclass(frozen=True)
class Target:
    """A speed-up the ssni op must reach in a case: median of `baseline` / median of ssni ≥ `ratio` (> when
    `strict`)."""

    case: str
    baseline: str
    ratio: float
    strict: bool = False

    def text(self) -> str:
        return f"{self.case}: ssni {'>' if self.strict else '≥'} {self.ratio:g}× {self.baseline}"


# Issue 2's targets on the 2-core CPU (generated noise).
CPU_TARGETS = (
    Target("noise_inject-cifar", "eager", 3.0),
    Target("noise_inject-cifar", "compiled", 1.0, strict=True),
    Target("noise_inject-imagenet", "eager", 3.0),
    Target("noise_inject-imagenet", "compiled", 1.0, strict=True),
    Target("score_norm-imagenet-K20", "eager", 5.0),
    Target("score_norm-imagenet-K20", "compiled", 1.0),
    Target("reverse_step-cifar", "eager", 2.0),
    Target("reverse_step-imagenet", "eager", 2.0),
)
GPU_COPY_FRACTION_TARGET = 0.8  # issue 2, H100 class: every op at ≥ 80% of the measured copy bandwidth


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
        # When written (this run included): other processes on the cores stall every multi-threaded op.
        "load_average_1_5_15min": " / ".join(f"{load:.2f}" for load in os.getloadavg()),
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


def _by_case(rows: list[dict]) -> dict[str, dict[str, dict]]:
    cases: dict[str, dict[str, dict]] = {}
    for row in rows:
        cases.setdefault(row["case"], {})[row["impl"]] = row
    return cases


def _ssni_impls(rows: list[dict]) -> list[str]:
    return sorted({row["impl"] for row in rows} - set(BASELINES), key=lambda i: (i != "ssni", i))


def markdown_table(rows: list[dict]) -> str:
    """One line per case: medians of every implementation, each ssni op's GB/s and copy fraction and its speed-ups
    over eager and compiled, then the Philox-emulating reference's median (when measured)."""
    cases = _by_case(rows)
    impls = _ssni_impls(rows)
    with_reference = any(row["impl"] == "reference" for row in rows)
    header = [f"{i} ms" for i in impls] + ["eager ms", "compiled ms"]
    header += [f"{i} GB/s (% copy)" for i in impls]
    header += [f"{i} vs {b}" for i in impls for b in ("eager", "compiled")]
    header += ["reference (Philox emulated) ms"] if with_reference else []
    lines = ["| case | " + " | ".join(header) + " |", "|---" * (1 + len(header)) + "|"]
    for case, by_impl in cases.items():
        median = {impl: row["median_s"] for impl, row in by_impl.items()}
        cells = [case] + [_ms(median.get(i)) for i in (*impls, "eager", "compiled")]
        for i in impls:
            r = by_impl.get(i)
            fraction = f" ({100 * r['copy_fraction']:.0f}%)" if r and r.get("copy_fraction") else ""
            cells.append("—" if r is None else f"{r['gbps']:.1f}{fraction}")
        cells += [_ratio(median.get(b), median.get(i)) for i in impls for b in ("eager", "compiled")]
        cells += [_ms(median.get("reference"))] if with_reference else []
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def target_lines(data: dict) -> str:
    """Issue 2's targets, met or not, for every ssni op in the results."""
    rows = data["rows"]
    cases = _by_case(rows)
    lines = []
    for impl in _ssni_impls(rows):
        if data["environment"]["device"] == "cpu":
            for target in CPU_TARGETS:
                by_impl = cases.get(target.case, {})
                mine, base = by_impl.get(impl, {}).get("median_s"), by_impl.get(target.baseline, {}).get("median_s")
                if not mine or not base:
                    lines.append(f"- {target.text()}: not measured")
                    continue
                ratio = base / mine
                met = ratio > target.ratio if target.strict else ratio >= target.ratio
                lines.append(f"- {target.text()}: {ratio:.2f}× — {'met' if met else 'NOT met'}")
        else:
            for case, by_impl in cases.items():
                fraction = by_impl.get(impl, {}).get("copy_fraction")
                if fraction is not None and ("imagenet" in case or "-K" in case):  # the target's large shapes
                    met = fraction >= GPU_COPY_FRACTION_TARGET
                    lines.append(
                        f"- {case}: {impl} at {100 * fraction:.0f}% of copy bandwidth (target "
                        f"≥ {100 * GPU_COPY_FRACTION_TARGET:.0f}%) — {'met' if met else 'NOT met'}"
                    )
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


def save_run(kind: str, device: str, data: dict, text: str) -> Path:
    """Write a run's data and its Markdown rendering as <kind>-<device>-<UTC date>.{json,md} under
    benchmarks/results/; returns the path without suffix."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stem = RESULTS_DIR / f"{kind}-{device}-{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M}"
    stem.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n")
    stem.with_suffix(".md").write_text(text + "\n")
    return stem


def render(data: dict) -> str:
    copies = ", ".join(f"{int(n) * 4 / 2**20:.0f} MiB: {g:.1f} GB/s" for n, g in data["copy_gbps_by_numel"].items())
    columns = "\n".join(f"- {name}: {meaning}" for name, meaning in COLUMNS.items())
    return (
        f"# Op benchmarks ({data['environment']['device']})\n\n{environment_lines(data['environment'])}\n"
        f"- copy bandwidth (read + write, float32 buffer of the case's largest tensor): {copies}\n\n"
        f"Columns:\n{columns}\n\n{markdown_table(data['rows'])}\n\nTargets (issue 2, from the medians of this run):\n"
        + target_lines(data)
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
