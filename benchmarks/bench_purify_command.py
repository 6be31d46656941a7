"""`ssni purify`'s path on the embedded MNIST default: streamed (the CLI's default for large inputs) vs chunked.

    .venv/bin/python -m benchmarks.bench_purify_command             # CPU: 64 images, network batch 16, ~5 min
    .venv/bin/python -m benchmarks.bench_purify_command --quick     # a smoke run (seconds)
    .venv/bin/python -m benchmarks.bench_purify_command --device cuda --images 1024 --network-batch 128

Both paths are `ssni.eval.pipeline.ModelBackend.purify`, the function `ssni purify` calls, on the same images
(the preset's MNIST test subset; t* = 150, T' = 10, SSNI-N with the shipped calibration) with the same network
batch B:
- chunked: score norms and purification in runs of B images (`SSNI.scores`, then the host's active-only purify:
  rounds shrink as the samples with small t finish);
- streamed: `StreamingPurifier.score_all` then `purify_all` at B rows per call (continuous batching).
Reported per path: images/s (median of --repeats, paths alternated within each repeat), network forward passes,
mean rows per pass, evaluations per image, and the largest difference between the two paths' purified images
(the engine's contract: equal up to float rounding).
Results: benchmarks/results/purify-command-<device>-<date>.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time

import torch

from benchmarks import report
from benchmarks.conftest import ALLOCATOR_NOTE
from ssni.eval.backend import ModelBackend
from ssni.eval.loading import load_calibration, load_eval_data, load_models
from ssni.eval.methods import Method
from ssni.eval.presets import resolve_preset
from ssni.eval.requests import Overrides, Sources

PATHS = ("chunked", "streamed")


def _backend(device: str, images: int, network_batch: int, t_star: int) -> tuple[ModelBackend, object]:
    preset = resolve_preset("mnist", Overrides(num_samples=images, batch_size=network_batch, t_star=t_star))
    models = load_models(preset, Sources(), device, classifier=False)
    calibration = load_calibration(preset, None, models, preset.num_levels)
    return ModelBackend(preset, models, calibration, None, device, network_batch), load_eval_data(preset, None)


def _run(backend: ModelBackend, path: str, x: torch.Tensor, ids: torch.Tensor, method: Method):
    """(seconds, purified, network calls, rows evaluated) of one purification of x by `path`."""
    streams = backend.streams
    if path == "chunked":
        backend.streams = None  # the chunked path of the same function
    backend.forget_scores()  # each path computes its own score norms
    calls, rows = backend.network_calls, backend.samples_evaluated
    if x.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.no_grad():
        purified, _, _ = backend.purify(method, x, seed=121, sample_ids=ids)
    if x.is_cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    calls, rows = backend.network_calls - calls, backend.samples_evaluated - rows
    backend.streams = streams  # after counting: the totals include the engines' counters only when they are set
    return seconds, purified, calls, rows


def render(data: dict) -> str:
    c = data["config"]
    lines = [
        f"# `ssni purify` path: streamed vs chunked ({data['environment']['device']})",
        "",
        report.environment_lines(data["environment"]),
        "",
        f"{c['images']} MNIST test images, method {c['method']}, t* = {c['t_star']}, T' = {c['levels']}, network batch "
        f"{c['network_batch']}, median of {c['repeats']}; mean t = {data['mean_t']:.1f}",
        "",
        "| path | images/s | forward passes | rows per pass | evaluations / image |",
        "|---|---|---|---|---|",
    ]
    for path in PATHS:
        r = data["paths"][path]
        lines.append(
            f"| {path} | {r['images_per_s']:.3g} | {r['forward_passes']} | {r['rows_per_pass']:.1f} | "
            f"{r['evaluations_per_image']:.1f} |"
        )
    lines += [
        "",
        f"streamed / chunked images/s (median of same-repeat ratios): {data['streamed_vs_chunked']:.3f}; "
        f"max |Δ| between the paths' purified images: {data['max_abs_difference']:.2e}",
    ]
    return "\n".join(lines)


def measure(device: str, images: int, network_batch: int, t_star: int, method: str, repeats: int) -> dict:
    """Both paths on the same images, alternated within each repeat; the results dict `render` prints."""
    backend, data = _backend(device, images, network_batch, t_star)
    x, ids = data.images.to(device), data.sample_ids.to(device)
    seconds, outputs = {p: [] for p in PATHS}, {}
    for repeat in range(repeats):
        for path in PATHS if repeat % 2 == 0 else PATHS[::-1]:
            s, purified, calls, rows = _run(backend, path, x, ids, Method.parse(method))
            seconds[path].append(s)
            outputs[path] = (purified, calls, rows)
        done = ", ".join(f"{p} {seconds[p][-1]:.1f} s" for p in PATHS)
        print(f"[{dt.datetime.now():%H:%M:%S}] repeat {repeat + 1}: {done}", flush=True)
    n = x.shape[0]
    t = backend.timesteps(Method.parse(method), backend.scores(x, seed=121, sample_ids=ids))
    results = {
        "environment": report.environment(
            torch.device(device).type,
            allocator=ALLOCATOR_NOTE,
            compared="ModelBackend.purify (what `ssni purify` runs): chunked runs of the network batch vs the "
            "streaming engine at the same batch",
        ),
        "config": {
            "images": n,
            "method": method,
            "t_star": t_star,
            "levels": backend.preset.num_levels,
            "network_batch": network_batch,
            "repeats": repeats,
        },
        "mean_t": float(t.double().mean()),
        "paths": {},
    }
    for path in PATHS:
        _, calls, rows = outputs[path]
        results["paths"][path] = {
            "images_per_s": n / statistics.median(seconds[path]),
            "seconds": seconds[path],
            "forward_passes": calls,
            "rows_per_pass": rows / calls,
            "evaluations_per_image": rows / n,
        }
    results["streamed_vs_chunked"] = statistics.median(c / s for c, s in zip(seconds["chunked"], seconds["streamed"]))
    results["max_abs_difference"] = float((outputs["streamed"][0] - outputs["chunked"][0]).abs().max())
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--network-batch", type=int, default=16)
    parser.add_argument("--t-star", type=int, default=150)
    parser.add_argument("--method", default="ssni-n")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="4 images, network batch 2, t* = 4, one repeat")
    parser.add_argument("--no-write", action="store_true", help="print only, write no results file")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.network_batch, args.t_star, args.repeats = 4, 2, 4, 1
    results = measure(args.device, args.images, args.network_batch, args.t_star, args.method, args.repeats)
    text = render(results)
    print(text)
    if not args.no_write:
        stem = report.save_run("purify-command", torch.device(args.device).type, results, text)
        print(f"\nresults: {stem}.{{json,md}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
