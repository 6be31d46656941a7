"""ssni.diffusers schedulers vs diffusers' own: a batch at per-sample timesteps, and the scalar-timestep case.

    .venv/bin/python -m benchmarks.bench_diffusers            # CPU: 64 samples of 3×32×32, ~1 min
    .venv/bin/python -m benchmarks.bench_diffusers --quick    # a smoke run (seconds)
    .venv/bin/python -m benchmarks.bench_diffusers --threads 1  # on a loaded machine (records torch_threads)
    .venv/bin/python -m benchmarks.bench_diffusers --device cuda

Cases (float32, B samples of C×H×W; the model output is a fixed random tensor, so only the scheduler is timed):
- per-sample: B samples at B different timesteps (spread over 0…999). ssni: one `step` (or `add_noise`) call with
  the [B] timesteps; diffusers: the only way today, a Python loop of B scalar `step` calls on one-row slices
  (add_noise: diffusers' own call takes [B] timesteps, with torch.randn noise).
- scalar: the B samples at one timestep; ssni's `step` vs diffusers' `step` (target: not slower).
Noise: "keyed" = ssni's Philox noise drawn inside the op; "generator" = both draw from torch generators (one
per sample in the per-sample cases), so the outputs are comparable: max |Δ| is reported; diffusers without a
generator draws from torch's global RNG. Medians (and the fastest) of --repeats timed calls, implementations
alternated.
Results: benchmarks/results/diffusers-<device>-<date>.{json,md}.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import diffusers
import torch

from benchmarks import report
from benchmarks.conftest import ALLOCATOR_NOTE
from ssni.diffusers import DDIMScheduler, DDPMScheduler


@dataclass
class Case:
    """One comparison: ssni's call vs diffusers' on the same inputs; `same_noise` when outputs are comparable."""

    name: str
    description: str
    ssni: Callable[[], torch.Tensor]
    diffusers: Callable[[], torch.Tensor]
    same_noise: bool


def _generators(n: int, device) -> list[torch.Generator]:
    return [torch.Generator(device).manual_seed(b) for b in range(n)]


def _loop(step: Callable, x, eps, timesteps: list[int], generators) -> torch.Tensor:
    """diffusers' way to step samples at different timesteps: one scalar step per sample."""
    rows = [step(eps[b : b + 1], t, x[b : b + 1], generators[b]) for b, t in enumerate(timesteps)]
    return torch.cat(rows)


def cases(batch: int, size: int, device: str) -> list[Case]:
    g = torch.Generator().manual_seed(0)
    x, eps = (torch.randn(batch, 3, size, size, generator=g).to(device) for _ in range(2))
    ids = torch.arange(batch, device=device)
    per_sample = torch.linspace(0, 999, batch).round().long().to(device)  # B different timesteps
    t_list = per_sample.tolist()
    ddpm, stock_ddpm = DDPMScheduler(), diffusers.DDPMScheduler()  # diffusers' defaults: clip_sample, fixed_small
    ddpm_fast, stock_fast = DDPMScheduler(clip_sample=False), diffusers.DDPMScheduler(clip_sample=False)
    ddim, stock_ddim = DDIMScheduler(), diffusers.DDIMScheduler()
    for s in (ddim, stock_ddim):
        s.set_timesteps(1000)  # every timestep: prev = t − 1 for both
    ddpm_step = lambda s: lambda e, t, xx, gen: s.step(e, t, xx, generator=gen).prev_sample
    ddim_step = lambda e, t, xx, gen: stock_ddim.step(e, t, xx, eta=0.0).prev_sample
    gens = lambda: _generators(batch, device)
    noise = torch.randn(x.shape, generator=g).to(device)
    return [
        Case("ddpm per-sample, keyed", "DDPM defaults (clip_sample, fixed_small), B timesteps; ssni Philox noise",
             lambda: ddpm.step(eps, per_sample, x, seed=0, sample_ids=ids).prev_sample,
             lambda: _loop(ddpm_step(stock_ddpm), x, eps, t_list, gens()), False),
        Case("ddpm per-sample, generator", "as above; noise from one generator per sample (both)",
             lambda: ddpm.step(eps, per_sample, x, generator=gens()).prev_sample,
             lambda: _loop(ddpm_step(stock_ddpm), x, eps, t_list, gens()), True),
        Case("ddpm per-sample, no clip, keyed", "clip_sample=False: the fused fast path",
             lambda: ddpm_fast.step(eps, per_sample, x, seed=0, sample_ids=ids).prev_sample,
             lambda: _loop(ddpm_step(stock_fast), x, eps, t_list, gens()), False),
        Case("ddim η=0 per-sample", "DDIM defaults, set_timesteps(1000), η = 0 (no noise)",
             lambda: ddim.step(eps, per_sample, x, eta=0.0).prev_sample,
             lambda: _loop(ddim_step, x, eps, t_list, [None] * batch), True),
        Case("add_noise per-sample, keyed", "ssni: Philox noise inside the op; diffusers: torch.randn + add_noise",
             lambda: ddpm.add_noise(x, None, per_sample, seed=0, sample_ids=ids),
             lambda: stock_ddpm.add_noise(x, torch.randn_like(x), per_sample), False),
        Case("add_noise per-sample, given noise", "both add the same noise tensor",
             lambda: ddpm.add_noise(x, noise, per_sample),
             lambda: stock_ddpm.add_noise(x, noise, per_sample), True),
        Case("ddpm scalar, keyed", "DDPM defaults, t = 500; diffusers draws from the global RNG",
             lambda: ddpm.step(eps, 500, x, seed=0, sample_ids=ids).prev_sample,
             lambda: stock_ddpm.step(eps, 500, x).prev_sample, False),
        Case("ddpm scalar, generator", "DDPM defaults, t = 500; one generator (both)",
             lambda: ddpm.step(eps, 500, x, generator=torch.Generator(device).manual_seed(0)).prev_sample,
             lambda: stock_ddpm.step(eps, 500, x, generator=torch.Generator(device).manual_seed(0)).prev_sample, True),
        Case("ddpm scalar, no clip, keyed", "clip_sample=False, t = 500",
             lambda: ddpm_fast.step(eps, 500, x, seed=0, sample_ids=ids).prev_sample,
             lambda: stock_fast.step(eps, 500, x).prev_sample, False),
        Case("ddim η=0 scalar", "DDIM defaults, t = 500, η = 0",
             lambda: ddim.step(eps, 500, x, eta=0.0).prev_sample,
             lambda: stock_ddim.step(eps, 500, x, eta=0.0).prev_sample, True),
    ]  # fmt: skip


def _timed(fn: Callable[[], torch.Tensor], device: str) -> float:
    if device != "cpu":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device != "cpu":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def measure(device: str, batch: int, size: int, repeats: int) -> dict:
    """Every case: medians of `repeats` timed calls of each side (alternated), the speed-up and max |Δ|."""
    rows = []
    for case in cases(batch, size, device):
        seconds = {"ssni": [], "diffusers": []}
        for repeat in range(repeats + 2):  # two warm-up rounds
            sides = ("ssni", "diffusers") if repeat % 2 == 0 else ("diffusers", "ssni")
            for side in sides:
                s = _timed(getattr(case, side), device)
                if repeat >= 2:
                    seconds[side].append(s)
        difference = float((case.ssni() - case.diffusers()).abs().max()) if case.same_noise else None
        ssni_s, diffusers_s = statistics.median(seconds["ssni"]), statistics.median(seconds["diffusers"])
        rows.append(
            {
                "case": case.name,
                "description": case.description,
                "ssni_s": ssni_s,
                "diffusers_s": diffusers_s,
                "speedup": diffusers_s / ssni_s,
                # The fastest call: the cost without preemption, steadier than the median on a loaded machine.
                "ssni_min_s": min(seconds["ssni"]),
                "diffusers_min_s": min(seconds["diffusers"]),
                "max_abs_difference": difference,
            }
        )
        print(f"{case.name}: ssni {ssni_s * 1e3:.3f} ms, diffusers {diffusers_s * 1e3:.3f} ms", flush=True)
    environment = report.environment(
        torch.device(device).type,
        allocator=ALLOCATOR_NOTE,
        diffusers=diffusers.__version__,
        compared="ssni.diffusers.DDPMScheduler/DDIMScheduler (one call, [B] timesteps, ops ssni_kernels.reverse_step"
        " / noise_inject) vs diffusers' DDPMScheduler/DDIMScheduler (a loop of scalar step calls per sample; "
        "the same call in the scalar cases)",
    )
    config = {"batch": batch, "shape": [3, size, size], "repeats": repeats}
    return {"environment": environment, "config": config, "rows": rows}


def render(data: dict) -> str:
    c = data["config"]
    lines = [
        f"# ssni.diffusers schedulers vs diffusers ({data['environment']['device']})",
        "",
        report.environment_lines(data["environment"]),
        "",
        f"{c['batch']} samples of {'×'.join(map(str, c['shape']))}, float32; median (and fastest) of {c['repeats']} "
        "calls; speed-up = diffusers / ssni of the medians (of the fastest calls).",
        "",
        "| case | ssni ms | diffusers ms | speed-up | max abs Δ | what |",
        "|---|---|---|---|---|---|",
    ]
    for r in data["rows"]:
        difference = "—" if r["max_abs_difference"] is None else f"{r['max_abs_difference']:.1e}"
        lines.append(
            f"| {r['case']} | {r['ssni_s'] * 1e3:.2f} ({r['ssni_min_s'] * 1e3:.2f}) | {r['diffusers_s'] * 1e3:.2f} "
            f"({r['diffusers_min_s'] * 1e3:.2f}) | {r['speedup']:.1f}× ({r['diffusers_min_s'] / r['ssni_min_s']:.1f}×) "
            f"| {difference} | {r['description']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's); 1 on a loaded machine")
    parser.add_argument("--quick", action="store_true", help="8 samples of 3×8×8, 2 repeats")
    parser.add_argument("--no-write", action="store_true", help="print only, write no results file")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.size, args.repeats = 8, 8, 2
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    results = measure(args.device, args.batch, args.size, args.repeats)
    text = render(results)
    print(text)
    if not args.no_write:
        stem = report.save_run("diffusers", torch.device(args.device).type, results, text)
        print(f"\nresults: {stem}.{{json,md}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
