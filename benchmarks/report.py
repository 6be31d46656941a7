"""Benchmark results: collection, the environment they were measured in, files, and the printed table.

    python -m benchmarks.report [results.json]    # print the table of a results file (default: the newest)
    python -m benchmarks.report --summary --before B1.json B2.json ... --after A1.json A2.json ...
        # several CPU runs in one summary: medians of the per-run medians and same-run ratios, targets on those,
        # and the before/after table (before_i and after_i paired in order, e.g. alternated runs)

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
    "vs eager, vs compiled": "baseline time / ssni time (> 1: ssni is faster), both medians over interleaved "
    "rounds (ssni, eager and compiled called in turn, ~3 s per case; `interleaved` in the JSON), else the ratio of the "
    "columns of medians",
    "limit, % limit": "what bounds the op (see `limits`) and the time at that limit / the ssni median",
    "normals/s/core": "normals the op generates / ssni median / threads",
}
LIMITS_NOTE = (
    "reduction (score_norm): the read bandwidth, the fastest of torch's reductions of a buffer of the case's "
    "largest tensor (sum; column sums of an [8, n/8] view) in the same run; elementwise ops: the copy bandwidth; "
    "ops that generate noise: also the Philox generator alone on one core (ssni_cpu::philox_normals of the ISA the "
    "ops use, 64 Ki normals per call, output in cache) times the threads, the limit being the slower of the two"
)


@dataclass(frozen=True)
class Target:
    """A speed-up the ssni op must reach in a case: median of `baseline` / median of ssni ≥ `ratio` (> when
    `strict`); baseline "limit": the ssni op's time at its limit / its median (the fraction of the limit)."""

    case: str
    baseline: str
    ratio: float
    strict: bool = False
    issue: int = 2

    def text(self) -> str:
        if self.baseline == "limit":
            return f"{self.case}: ssni ≥ {100 * self.ratio:g}% of its limit"
        return f"{self.case}: ssni {'>' if self.strict else '≥'} {self.ratio:g}× {self.baseline}"

    def met(self, ratio: float) -> bool:
        return ratio > self.ratio if self.strict else ratio >= self.ratio


# The targets on the 2-core CPU: issue 2's (generated noise), issue 19's (the limits, and given noise).
CPU_TARGETS = (
    Target("noise_inject-cifar", "eager", 3.0),
    Target("noise_inject-cifar", "compiled", 1.0, strict=True),
    Target("noise_inject-imagenet", "eager", 3.0),
    Target("noise_inject-imagenet", "compiled", 1.0, strict=True),
    Target("score_norm-imagenet-K20", "eager", 5.0),
    Target("score_norm-imagenet-K20", "compiled", 1.0),
    Target("reverse_step-cifar", "eager", 2.0),
    Target("reverse_step-imagenet", "eager", 2.0),
    Target("score_norm-imagenet-K20", "limit", 0.9, issue=19),
    Target("score_norm-cifar-K20", "compiled", 1.0, issue=19),
    Target("score_norm-imagenet-K20", "compiled", 1.0, issue=19),
    Target("noise_inject-cifar-noise-given", "compiled", 1.0, issue=19),
    Target("noise_inject-imagenet-noise-given", "compiled", 1.0, issue=19),
    Target("reverse_step-cifar-noise-given", "compiled", 1.0, issue=19),
    Target("reverse_step-imagenet-noise-given", "compiled", 1.0, issue=19),
)
# Issue 19: speed-up of the ssni op over the previous kernels (summary of alternated before/after runs).
BEFORE_AFTER_TARGETS = (Target("noise_inject-imagenet", "before", 2.0, issue=19),)
GPU_COPY_FRACTION_TARGET = 0.8  # issue 2, H100 class: every op at ≥ 80% of the measured copy bandwidth


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_id() -> str:
    """Vendor, family, model and stepping from /proc/cpuinfo (names the microarchitecture where the model name is
    generic, as in VMs)."""
    fields = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("vendor_id", "cpu family", "model", "stepping") and key not in fields:
                fields[key] = value.strip()
            if not line.strip():
                break
    except OSError:
        return platform.machine()
    return ", ".join(f"{key} {value}" for key, value in fields.items()) or platform.machine()


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment(device: str, *, compared: str, **extra) -> dict:
    """Hardware and software the numbers were measured with, and `compared`: what the numbers compare."""
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
        "compared": compared,
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


@dataclass(frozen=True)
class Limit:
    """What bounds an op: `text` (the rates) and `seconds`, the time of one call at those rates."""

    text: str
    seconds: float

    @staticmethod
    def of(
        kind: str, bytes_moved: int, gbps: float | None, normals: int, rng_per_core: float | None, threads: int
    ) -> Limit | None:
        """kind "read" or "copy" at `gbps` for `bytes_moved`; with `normals` to generate, also the generator at
        `rng_per_core` normals/s on each of `threads` cores (the slower of the two bounds)."""
        if not gbps:
            return None
        text, seconds = f"{kind} {gbps:.1f} GB/s", bytes_moved / (gbps * 1e9)
        if normals and rng_per_core:
            text += f"; RNG {rng_per_core / 1e6:.0f} M/s/core × {threads}"
            seconds = max(seconds, normals / (rng_per_core * threads))
        return Limit(text, seconds)


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
    limit: str | None = None
    limit_fraction: float | None = None  # time at the limit / median
    normals_per_s_per_core: float | None = None
    interleaved: dict[str, float] | None = None  # baseline → median / this median over interleaved rounds; "rounds"

    def __post_init__(self):
        self.gbps = self.bytes_moved / self.median_s / 1e9
        self.copy_fraction = self.gbps / self.copy_gbps if self.copy_gbps else None

    def set_limit(self, limit: Limit | None, normals: int, threads: int) -> None:
        if limit is not None:
            self.limit, self.limit_fraction = limit.text, limit.seconds / self.median_s
        if normals:
            self.normals_per_s_per_core = normals / self.median_s / threads


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1e3:.3f}"


def _by_case(rows: list[dict]) -> dict[str, dict[str, dict]]:
    cases: dict[str, dict[str, dict]] = {}
    for row in rows:
        cases.setdefault(row["case"], {})[row["impl"]] = row
    return cases


def _ssni_impls(rows: list[dict]) -> list[str]:
    return sorted({row["impl"] for row in rows} - set(BASELINES), key=lambda i: (i != "ssni", i))


def _same_run_ratio(by_impl: dict[str, dict], impl: str, baseline: str) -> float | None:
    """baseline / impl: the median of the per-run ratios a summary stores (row["vs"]), else the run's interleaved
    rounds (row["interleaved"]), else the medians."""
    mine = by_impl.get(impl, {})
    if "vs" in mine:
        return mine["vs"].get(baseline)
    if baseline == "limit":
        return mine.get("limit_fraction")
    interleaved = (mine.get("interleaved") or {}).get(baseline)
    if interleaved:
        return interleaved
    base = by_impl.get(baseline, {}).get("median_s")
    return base / mine["median_s"] if base and mine.get("median_s") else None


def _times(ratio: float | None) -> str:
    return "—" if not ratio else f"{ratio:.2f}×"


def markdown_table(rows: list[dict]) -> str:
    """One line per case: medians of every implementation, each ssni op's GB/s and copy fraction and its speed-ups
    over eager and compiled, its limit and the fraction of it reached, the normals it generates per second and
    core, then the Philox-emulating reference's median (when measured)."""
    cases = _by_case(rows)
    impls = _ssni_impls(rows)
    with_reference = any(row["impl"] == "reference" for row in rows)
    with_limits = any(row.get("limit") for row in rows)
    with_normals = any(row.get("normals_per_s_per_core") for row in rows)
    header = [f"{i} ms" for i in impls] + ["eager ms", "compiled ms"]
    header += [f"{i} GB/s (% copy)" for i in impls]
    header += [f"{i} vs {b}" for i in impls for b in ("eager", "compiled")]
    header += ["limit"] + [f"{i} % limit" for i in impls] if with_limits else []
    header += [f"{i} normals/s/core" for i in impls] if with_normals else []
    header += ["reference (Philox emulated) ms"] if with_reference else []
    lines = ["| case | " + " | ".join(header) + " |", "|---" * (1 + len(header)) + "|"]
    for case, by_impl in cases.items():
        median = {impl: row["median_s"] for impl, row in by_impl.items()}
        cells = [case] + [_ms(median.get(i)) for i in (*impls, "eager", "compiled")]
        for i in impls:
            r = by_impl.get(i)
            fraction = f" ({100 * r['copy_fraction']:.0f}%)" if r and r.get("copy_fraction") else ""
            cells.append("—" if r is None else f"{r['gbps']:.1f}{fraction}")
        cells += [_times(_same_run_ratio(by_impl, i, b)) for i in impls for b in ("eager", "compiled")]
        if with_limits:
            cells.append(next((r["limit"] for r in by_impl.values() if r.get("limit")), "—"))
            for i in impls:
                fraction = _same_run_ratio(by_impl, i, "limit")
                cells.append("—" if fraction is None else f"{100 * fraction:.0f}%")
        if with_normals:
            for i in impls:
                rate = by_impl.get(i, {}).get("normals_per_s_per_core")
                cells.append("—" if not rate else f"{rate / 1e6:.0f} M")
        cells += [_ms(median.get("reference"))] if with_reference else []
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _target_line(target: Target, ratio: float | None) -> str:
    if ratio is None:
        return f"- issue {target.issue}, {target.text()}: not measured"
    value = f"{100 * ratio:.0f}%" if target.baseline == "limit" else f"{ratio:.2f}×"
    return f"- issue {target.issue}, {target.text()}: {value} — {'met' if target.met(ratio) else 'NOT met'}"


def target_lines(data: dict) -> str:
    """The targets, met or not, for every ssni op in the results."""
    rows = data["rows"]
    cases = _by_case(rows)
    lines = []
    for impl in _ssni_impls(rows):
        if data["environment"]["device"] == "cpu":
            lines += [_target_line(t, _same_run_ratio(cases.get(t.case, {}), impl, t.baseline)) for t in CPU_TARGETS]
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


def write_results(
    rows: list[Row],
    env: dict,
    copy_gbps: dict[int, float],
    stem: str | None = None,
    read_gbps: dict[int, float] | None = None,
    rng_normals_per_s: dict[str, float] | None = None,
) -> Path:
    """Write <stem>.json and <stem>.md under benchmarks/results/; returns the JSON path. read_gbps (by numel) and
    rng_normals_per_s (by ISA, one thread) are the CPU limits besides the copy bandwidth."""
    data = {
        "environment": env,
        "copy_gbps_by_numel": {str(k): v for k, v in copy_gbps.items()},
        "read_gbps_by_numel": {str(k): v for k, v in (read_gbps or {}).items()},
        "rng_normals_per_s": dict(rng_normals_per_s or {}),
        "rows": [asdict(r) for r in rows],
    }
    return _write(data, stem or f"ops-{env['device']}-{dt.datetime.now(dt.timezone.utc).strftime('%Y%m%d-%H%M')}")


def _write(data: dict, stem: str) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
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


def _limit_lines(data: dict) -> str:
    def by_size(rates: dict) -> str:
        return ", ".join(f"{int(n) * 4 / 2**20:.0f} MiB: {g:.1f} GB/s" for n, g in rates.items())

    lines = [
        f"- copy bandwidth (read + write, float32 buffer of the case's largest tensor): "
        f"{by_size(data['copy_gbps_by_numel'])}"
    ]
    if data.get("read_gbps_by_numel"):
        lines.append(
            f"- read bandwidth (float32 buffer of the case's largest tensor): {by_size(data['read_gbps_by_numel'])}"
        )
    if data.get("rng_normals_per_s"):
        rates = ", ".join(f"{isa}: {rate / 1e6:.0f} M" for isa, rate in data["rng_normals_per_s"].items())
        lines.append(f"- Philox normals per second on one core (generator alone, output in cache): {rates}")
    return "\n".join(lines)


def render(data: dict) -> str:
    columns = "\n".join(f"- {name}: {meaning}" for name, meaning in COLUMNS.items())
    text = (
        f"# Op benchmarks ({data['environment']['device']})\n\n{environment_lines(data['environment'])}\n"
        f"{_limit_lines(data)}\n\nColumns:\n{columns}\n\n{markdown_table(data['rows'])}\n\n"
        f"Targets ({data.get('targets_from', 'from the medians of this run')}):\n{target_lines(data)}"
    )
    if data.get("before_after"):
        text += "\n\n" + before_after_text(data)
    return text


# ---------------------------------------------------------------------------------------------------------
# Summary of several runs: medians of the per-run numbers, before/after
# ---------------------------------------------------------------------------------------------------------
def _median(values: list[float]) -> float | None:
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def _median_by_key(maps: list[dict]) -> dict:
    return {key: _median([m.get(key) for m in maps]) for key in maps[0]} if maps else {}


def summarize(after: list[dict], before: list[dict]) -> dict:
    """One results dict from several runs of the same cases (after: the kernels measured; before: the previous
    kernels, ssni rows at least, run i alternated with after run i): per (case, impl) the median of the runs'
    medians, per ssni row the median of the same-run ratios (vs eager, compiled, the limit) and of before_i /
    after_i."""
    first = after[0]
    env = dict(first["environment"])
    env["runs"] = "; ".join(
        f"{tag} {run['environment']['date_utc']} (load {run['environment']['load_average_1_5_15min']})"
        for tag, runs in (("after", after), ("before", before))
        for run in runs
    )
    env["limit_column"] = (
        "the rates measured in the first run; % limit is the median of each run's fraction of its own limit (a shared "
        "machine's speed drifts between runs, the generator's included)"
    )
    by_run = [_by_case(run["rows"]) for run in after]
    before_by_run = [_by_case(run["rows"]) for run in before]
    rows = []
    for row in first["rows"]:
        case, impl = row["case"], row["impl"]
        runs = [r[case][impl] for r in by_run if impl in r.get(case, {})]
        merged = dict(row)
        merged["median_s"] = _median([r["median_s"] for r in runs])
        merged["gbps"] = row["bytes_moved"] / merged["median_s"] / 1e9
        for key in ("copy_fraction", "limit_fraction", "normals_per_s_per_core"):
            merged[key] = _median([r.get(key) for r in runs])
        if impl not in BASELINES:
            merged["vs"] = {
                b: _median([_same_run_ratio(r[case], impl, b) for r in by_run if case in r])
                for b in ("eager", "compiled", "limit")
            }
            pairs = list(zip(before_by_run, by_run))
            merged["before_median_s"] = _median([b[case][impl]["median_s"] for b in before_by_run if case in b])
            merged["vs"]["before"] = _median(
                [b[case][impl]["median_s"] / a[case][impl]["median_s"] for b, a in pairs if case in b and case in a]
            )
        rows.append(merged)
    return {
        "environment": env,
        "copy_gbps_by_numel": _median_by_key([run["copy_gbps_by_numel"] for run in after]),
        "read_gbps_by_numel": _median_by_key([run.get("read_gbps_by_numel", {}) for run in after]),
        "rng_normals_per_s": _median_by_key([run.get("rng_normals_per_s", {}) for run in after]),
        "rows": rows,
        "targets_from": f"medians over {len(after)} runs of the same-run ratios",
        "before_after": bool(before),
    }


def before_after_text(data: dict) -> str:
    """The ssni medians before and after, the median of the paired ratios, and the before/after targets."""
    lines = [
        "Before / after (ssni; medians over the runs; speed-up = median of before_i / after_i):",
        "",
        "| case | before ms | after ms | speed-up |",
        "|---|---|---|---|",
    ]
    cases = _by_case(data["rows"])
    for case, by_impl in cases.items():
        row = by_impl.get("ssni", {})
        if row.get("before_median_s"):
            lines.append(
                f"| {case} | {_ms(row['before_median_s'])} | {_ms(row['median_s'])} | {_times(row['vs']['before'])} |"
            )
    lines += ["", "Targets (before / after):"]
    lines += [_target_line(t, _same_run_ratio(cases.get(t.case, {}), "ssni", t.baseline)) for t in BEFORE_AFTER_TARGETS]
    return "\n".join(lines)


def newest_results() -> Path:
    files = sorted(RESULTS_DIR.glob("ops-*.json"), key=lambda p: p.stat().st_mtime)
    if not files:
        raise SystemExit(f"no results in {RESULTS_DIR}; run: python -m pytest benchmarks/ --benchmark-only")
    return files[-1]


def _summary_paths(argv: list[str]) -> tuple[list[Path], list[Path]]:
    groups: dict[str, list[Path]] = {"--before": [], "--after": []}
    current = None
    for arg in argv:
        if arg in groups:
            current = arg
        elif current is None:
            raise SystemExit(f"--summary: expected --before or --after before {arg}")
        else:
            groups[current].append(Path(arg))
    if not groups["--after"]:
        raise SystemExit("--summary needs --after A1.json [A2.json ...]")
    return groups["--after"], groups["--before"]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--summary":
        after, before = _summary_paths(argv[1:])
        data = summarize([json.loads(p.read_text()) for p in after], [json.loads(p.read_text()) for p in before])
        stem = f"ops-cpu-{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M}-summary"
        path = _write(data, stem)
        print(f"{path}\n")
        print(render(data))
        return
    path = Path(argv[0]) if argv else newest_results()
    print(f"{path}\n")
    print(render(json.loads(path.read_text())))


if __name__ == "__main__":
    main()
