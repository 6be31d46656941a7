"""The GPU run's results: one JSON document, its Markdown rendering, and the headline numbers of the issue.

JSON: {"profile", "command", "environment", "budget_s", "seconds", "extensions", "parts": [{kind, variant, status,
seconds, limit_s, note}], "correctness": {backend: pytest counts}, "ops": {"rows", "copy_gbps_by_numel",
"skipped", "compile_s"}, "pipeline": {run: per-precision method rows}, "headline"}.
"""

from __future__ import annotations

from benchmarks import report
from benchmarks.gpu.pipeline import ACTIVE, CONSTANT, GRAPH, REFERENCE_COST, STREAM

HEADLINE_MODEL, HEADLINE_PRECISION = "adm256", "fp16"
GOAL_IMAGES_PER_S = 0.9  # issue: ADM-256 fp16 SSNI-N purified images/s on an H200
GOAL_OUTSIDE_NETWORK = 0.05  # issue: share of the time outside the network
SSNI_METHODS = (ACTIVE, STREAM, GRAPH)


def headline(pipeline: dict) -> dict | None:
    """The fastest SSNI-N method of ADM-256 in fp16 (fused kernels), with its ratios and the issue's goals."""
    run = pipeline.get(HEADLINE_MODEL, {})
    rows = run.get("precisions", {}).get(HEADLINE_PRECISION, {}).get("rows", {})
    measured = [m for m in SSNI_METHODS if m in rows]
    if not measured:
        return None
    best = max(measured, key=lambda m: rows[m]["images_per_s"])
    row = rows[best]
    config = run["config"]
    out = {
        "model": run["model"],
        "precision": HEADLINE_PRECISION,
        "t_star": config["t_star"],
        "levels": config["levels"],
        "images": config["images"],
        "method": best,
        "images_per_s": row["images_per_s"],
        "outside_network": row["outside_network"],
        "evaluations_per_image": row["evaluations_per_image"],
        "goal_images_per_s": GOAL_IMAGES_PER_S,
        "goal_outside_network": GOAL_OUTSIDE_NETWORK,
        "meets_goals": row["images_per_s"] >= GOAL_IMAGES_PER_S and row["outside_network"] < GOAL_OUTSIDE_NETWORK,
    }
    for key, other in (("vs_constant", CONSTANT), ("vs_reference_cost", REFERENCE_COST)):
        if other in rows:
            out[key] = row["images_per_s"] / rows[other]["images_per_s"]
    return out


def headline_line(h: dict) -> str:
    ratios = [f"{h[key]:.2f}× {label}" for key, label in (("vs_constant", "constant t*"),
              ("vs_reference_cost", "the reference code's cost")) if key in h]  # fmt: skip
    return (
        f"**Headline**: {h['model']} {h['precision']} SSNI-N at t* = {h['t_star']}, K = {h['levels']} ({h['method']}, "
        f"{h['images']} images): {h['images_per_s']:.3g} images/s (goal ≥ {h['goal_images_per_s']}), "
        f"{100 * h['outside_network']:.1f}% of the time outside the network "
        f"(goal < {100 * h['goal_outside_network']:.0f}%), "
        f"{h['evaluations_per_image']:.1f} network evaluations per image; "
        + ", ".join(ratios)
        + ". Goals "
        + ("met." if h["meets_goals"] else "NOT met.")
    )


def skipped_for_time(part_data: dict) -> list[str]:
    """What an ops or pipeline part skipped because it would not fit its time ("needs CUDA" is not counted)."""
    listed = list(part_data.get("skipped", []))
    for precision, p in part_data.get("precisions", {}).items():
        listed += [f"{precision} {m}: {why}" for m, why in p.get("skipped", {}).items() if "left" in why]
    return listed


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def _parts_table(parts: list[dict]) -> list[str]:
    lines = ["| part | status | seconds | limit (s) | note |", "|---|---|---|---|---|"]
    for p in parts:
        note = p["note"].replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {p['kind']} ({p['variant']}) | {p['status']} | {_seconds(p['seconds'])} | "
                     f"{_seconds(p['limit_s'])} | {note} |")  # fmt: skip
    return lines


def _correctness_table(correctness: dict) -> list[str]:
    lines = ["| SSNI_CUDA_BACKEND | passed | failed | errors | skipped | seconds |", "|---|---|---|---|---|---|"]
    problems = []
    for backend, c in correctness.items():
        lines.append(f"| {backend} | {c['passed']} | {c['failures']} | {c['errors']} | {c['skipped']} | "
                     f"{c['seconds']:.0f} |")  # fmt: skip
        problems += [f"- {backend}: {p}" for p in c["problems"]]
    return lines + ([""] + problems if problems else [])


def _ops_section(ops: dict, device: str) -> list[str]:
    copies = ", ".join(f"{int(n) * 4 / 2**20:.0f} MiB: {g:.0f} GB/s" for n, g in ops["copy_gbps_by_numel"].items())
    lines = [f"Copy bandwidth (dst.copy_(src), read + write, float32): {copies}.", ""]
    lines.append(report.markdown_table(ops["rows"]))
    targets = report.target_lines({"environment": {"device": device}, "rows": ops["rows"]})
    if targets:
        lines += ["", "Targets (issue 2):", targets]
    if ops["skipped"]:
        lines += ["", "Not measured: " + "; ".join(ops["skipped"])]
    return lines


def _ratio(row: dict, rows: dict, other: str) -> str:
    return f"{row['images_per_s'] / rows[other]['images_per_s']:.2f}×" if other in rows else "—"


def _pipeline_section(pipeline: dict) -> list[str]:
    lines = []
    for name, run in pipeline.items():
        c = run["config"]
        lines += [
            "",
            f"**{name}**: {run['model']} ({run['parameters'] / 1e6:.1f}M parameters, random weights), "
            f"{c['images']} images at {c['resolution']}×{c['resolution']}, t* = {c['t_star']}, K = {c['levels']}, "
            f"b = {c['bias']}, {run['kernels']} kernels",
            "",
            "| precision | method | images/s | evaluations / image | outside the network | vs constant t* | "
            "vs reference-code cost | max \\|Δ\\| vs active-only |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for precision, p in run["precisions"].items():
            rows = p.get("rows", {})
            for method, row in rows.items():
                outside = f"{100 * row['outside_network']:.1f}%" if "outside_network" in row else "—"
                delta = row.get("max_abs_difference_vs_active_only")
                finite = "" if row.get("finite", True) else " (NOT finite)"
                lines.append(
                    f"| {precision} | {method}{finite} | {row['images_per_s']:.3g} | "
                    f"{row['evaluations_per_image']:.1f} | {outside} | {_ratio(row, rows, CONSTANT)} | "
                    f"{_ratio(row, rows, REFERENCE_COST)} | {'—' if delta is None else f'{delta:.2g}'} |"
                )
            for method, reason in p.get("skipped", {}).items():
                lines.append(f"| {precision} | {method} | skipped: {reason} | | | | | |")
    return lines


def markdown(data: dict) -> str:
    env = data["environment"]
    lines = [f"# GPU check and benchmarks ({data['profile']})", "", report.environment_lines(env), ""]
    lines += [f"Run: `{data['command']}`: {data['seconds']:.0f} s (budget {_seconds(data['budget_s'])} s).", ""]
    lines += ["Extensions: " + "; ".join(f"{k}: {v}" for k, v in data["extensions"].items()), ""]
    lines += _parts_table(data["parts"])
    for p in data["parts"]:
        if p["output_tail"]:
            lines += ["", f"Output of {p['kind']} ({p['variant']}), last lines:", "```", *p["output_tail"], "```"]
    if data["correctness"]:
        lines += ["", "## Correctness (pytest on the device)", ""] + _correctness_table(data["correctness"])
    if data["ops"]["rows"]:
        lines += ["", "## Ops", ""] + _ops_section(data["ops"], env["device"])
    if data["pipeline"]:
        lines += ["", "## End-to-end purification"] + _pipeline_section(data["pipeline"])
    if data.get("headline"):
        lines += ["", headline_line(data["headline"])]
    return "\n".join(lines) + "\n"
