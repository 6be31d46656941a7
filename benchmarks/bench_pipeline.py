"""End-to-end purification benchmarks: images/s, network evaluations per image, time outside the network.

    .venv/bin/python -m benchmarks.bench_pipeline                 # CPU defaults (reduced, see below), ~10 min
    .venv/bin/python -m benchmarks.bench_pipeline --quick         # a smoke run of every path (seconds)
    .venv/bin/python -m benchmarks.bench_pipeline --device cuda   # the same on a GPU (full sizes: see --help)

Methods, each on the same images in one run (so that ratios are comparable even on a shared machine):
- baseline: DDPMPurifier at the constant t* (one batch);
- SSNI, reference-code cost: the public reference code's execution, K score levels then n + b = t* + b full-batch
  network calls for every sample whatever its t (timed as `SSNI.scores` + `DDPMPurifier.purify` with t = t* + b
  for all: the same network calls and batch shapes, the output is not used);
- SSNI, ssni active-only: `SSNI.purify` (K levels, then Σ max(t_i, 1) evaluations);
- SSNI, streaming: `StreamingPurifier(ssni, batch_size=N).purify_all`;
- baseline, streaming: `StreamingPurifier(baseline, batch_size=N).purify_all` against the single full batch.

Two parts:
1. Counts at the protocol's settings (t* = 100, K = T' = 20, b = 5): per-image network evaluations of each method,
   from the purifiers' own counters. t comes from the real network's score norms (SSNI-N, τ proposed by the
   calibration); the purification passes are counted with a zero ε stand-in (counts do not depend on ε values).
2. Timing at a reduced t* and K when the network is slow (CPU): images/s (median of --repeats), evaluations per
   image, forward passes, and the fraction of the time spent outside the network (network time measured around
   every forward, synchronised on CUDA).
Models: the MNIST default UNet (trained weights if shipped in ssni/weights, else random) and the full-size CIFAR-10
DDPM UNet (ssni.models.build("cifar10-ddpm"), random weights). Inputs: clean (MNIST test images; CIFAR-size:
smooth synthetic images, no CIFAR data here) and adversarial: 10-step L∞ PGD against the classifier alone (MNIST:
the trained classifier, ε = 0.3; CIFAR-size: the full-size WideResNet-28-10 with random weights, ε = 8/255, its own
clean predictions as labels; PGD through the purifier is out of a CPU's budget). Calibration: clean norms of a
separate reference set.
Results: benchmarks/results/pipeline-<device>-<date>.{json,md}.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import statistics
import sys
import time
from dataclasses import dataclass

import torch
from torch import nn

from benchmarks import report
from benchmarks.conftest import ALLOCATOR_NOTE
from ssni import SSNI, Calibration, DDPMPurifier, eps_score_norm
from ssni.purify import StreamingPurifier

COUNT_T_STAR, COUNT_LEVELS, BIAS = 100, 20, 5
CALIBRATION_SEED, SEED = 121, 0


@dataclass(frozen=True)
class Config:
    """One model's benchmark sizes: images per set, the timing run's t* and K, repeats."""

    model: str
    count_images: int
    time_images: int
    time_t_star: int
    time_levels: int
    repeats: int
    time_inputs: tuple[str, ...] = ("clean", "adversarial")


CPU_CONFIGS = {
    "mnist": Config("mnist", count_images=32, time_images=8, time_t_star=20, time_levels=5, repeats=3),
    "cifar": Config("cifar", 4, time_images=2, time_t_star=4, time_levels=2, repeats=3, time_inputs=("clean",)),
}
QUICK_CONFIGS = {
    "mnist": Config("mnist", count_images=4, time_images=2, time_t_star=3, time_levels=2, repeats=1),
    "cifar": Config("cifar", count_images=2, time_images=1, time_t_star=2, time_levels=2, repeats=1),
}
GPU_CONFIGS = {
    "mnist": Config("mnist", count_images=256, time_images=256, time_t_star=100, time_levels=20, repeats=5),
    "cifar": Config("cifar", count_images=256, time_images=128, time_t_star=100, time_levels=20, repeats=3),
    # DiffPure's ImageNet t* = 150 and SSNI's T' = 50 on 256×256 (the score norm runs at the model's resolution here).
    "adm256": Config("adm256", count_images=16, time_images=16, time_t_star=150, time_levels=50, repeats=2),
}


class TimedNetwork(nn.Module):
    """The ε-network with a stopwatch: `seconds` accumulates the wall time of every forward (CUDA synchronised)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.seconds = 0.0

    def _sync(self, x: torch.Tensor) -> None:
        if x.is_cuda:
            torch.cuda.synchronize(x.device)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self._sync(x)
        start = time.perf_counter()
        out = self.net(x, t)
        self._sync(x)
        self.seconds += time.perf_counter() - start
        return out


class Autocast(nn.Module):
    """Runs the ε-network under autocast to `dtype` (float16/bfloat16) and returns ε̂ in the input's dtype."""

    def __init__(self, net: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.net = net
        self.dtype = dtype

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=self.dtype):
            return self.net(x, t).to(x.dtype)


class ZeroEps(nn.Module):
    """ε̂ = 0: a free stand-in for counting purification passes (their number does not depend on ε̂)."""

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


# ---------------------------------------------------------------------------------------------------------------
# Models and inputs
# ---------------------------------------------------------------------------------------------------------------
def load_model(name: str, device) -> tuple[nn.Module, str]:
    if name == "mnist":
        from ssni.models import build, load, spec

        if spec("mnist-ddpm").embedded.is_file():
            return load("mnist-ddpm").to(device), "MNIST default UNet (mnist-ddpm), trained weights"
        torch.manual_seed(0)
        return build("mnist-ddpm").eval().to(device), "MNIST default UNet (mnist-ddpm), random weights"
    from ssni.models import build

    torch.manual_seed(0)
    if name == "adm256":
        model = build("imagenet-adm-256-uncond").eval().to(device)
        return model, "ImageNet ADM 256×256 unconditional (imagenet-adm-256-uncond), random weights"
    return build("cifar10-ddpm").eval().to(device), "CIFAR-10 DDPM UNet 35.7M (cifar10-ddpm), random weights"


def smooth_images(n: int, seed: int, size: int = 32) -> torch.Tensor:
    """Stand-ins for natural images: upsampled low-resolution colour fields plus mild texture."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=g)
    x = nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    return (x + 0.03 * torch.randn(n, 3, size, size, generator=g)).clamp(0, 1)


def image_sets(name: str, n: int, device) -> dict[str, torch.Tensor]:
    """{"reference": clean calibration set, "clean": clean evaluation set, "adversarial": its attacked version}."""
    if name == "mnist":
        from ssni.data.mnist import load_mnist
        from ssni.models import build, load, spec

        train, test = load_mnist("train"), load_mnist("test")
        reference = train.images[:n]
        clean, labels = test.images[:n], test.labels[:n]
        torch.manual_seed(0)
        classifier = (
            load("mnist-classifier") if spec("mnist-classifier").embedded.is_file() else build("mnist-classifier")
        )
        adversarial = _pgd(classifier, clean, labels, eps=0.3, step_size=0.075)
    else:
        from ssni.models import build

        size = 256 if name == "adm256" else 32
        reference, clean = smooth_images(n, 1, size), smooth_images(n, 2, size)
        torch.manual_seed(0)
        classifier = build("imagenet-resnet50" if name == "adm256" else "cifar10-wrn-28-10").eval().to(device)
        with torch.no_grad():
            labels = classifier(clean.to(device)).argmax(dim=1)  # its own predictions: the attack flips them
        adversarial = _pgd(classifier, clean.to(device), labels, eps=8 / 255, step_size=2 / 255)
    return {k: v.to(device) for k, v in {"reference": reference, "clean": clean, "adversarial": adversarial}.items()}


def _pgd(classifier: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, step_size: float) -> torch.Tensor:
    """10-step L∞ PGD against the classifier alone (no purifier in the loop): MNIST's trained classifier; for the
    CIFAR/ImageNet architectures the full-size classifier of the preset with random weights."""
    from ssni.attacks.adapters import PlainClassifier
    from ssni.attacks.pgd_eot import pgd_eot

    for p in classifier.parameters():
        p.requires_grad_(False)
    ids = torch.arange(x.shape[0], device=x.device)
    result = pgd_eot(
        PlainClassifier(classifier), x, y, sample_ids=ids, eps=eps, iterations=10, eot=1, step_size=step_size
    )
    return result.x_adv.detach()


def calibrate(
    model: nn.Module, reference: torch.Tensor, levels: int, name: str, chunk_size: int | None = None
) -> Calibration:
    """Clean statistics of `reference`'s score norms (chunk_size: most rows per network call, None: all K·N)."""
    norms = eps_score_norm(model, reference, levels, seed=CALIBRATION_SEED, chunk_size=chunk_size)
    return Calibration.from_norms(
        norms, model_id=name, num_levels=levels, resolution=tuple(reference.shape[-2:]), seed=CALIBRATION_SEED
    )


# ---------------------------------------------------------------------------------------------------------------
# Part 1: counts at the protocol's settings
# ---------------------------------------------------------------------------------------------------------------
def counts(model: nn.Module, sets: dict, name: str, batch_size: int) -> dict:
    """Per-image network evaluations (and batched forward passes) of every method at t* = 100, K = 20."""
    n = sets["clean"].shape[0]
    cal = calibrate(model, sets["reference"], COUNT_LEVELS, name)
    out = {"t_star": COUNT_T_STAR, "levels": COUNT_LEVELS, "bias": BIAS, "images": n, "tau": cal.tau, "inputs": {}}
    zero = ZeroEps()
    for kind in ("clean", "adversarial"):
        x = sets[kind]
        ids = torch.arange(n, device=x.device)
        base = DDPMPurifier(zero, t_star=COUNT_T_STAR)
        ssni = SSNI(DDPMPurifier(zero, t_star=COUNT_T_STAR), cal, bias=BIAS)
        e = eps_score_norm(model, x, COUNT_LEVELS, seed=SEED, sample_ids=ids)
        t = ssni.timesteps_from_scores(e).to(x.device)
        base.purify(x, seed=SEED, sample_ids=ids)
        ssni.purifier.purify(x, t, seed=SEED, sample_ids=ids)
        stream = StreamingPurifier(DDPMPurifier(zero, t_star=COUNT_T_STAR), batch_size=batch_size)
        stream.purify_all(x, t, seed=SEED, sample_ids=ids)
        score_calls = -(-n * COUNT_LEVELS // batch_size)  # score rows pack the batch exactly
        reference_per_image = COUNT_LEVELS + COUNT_T_STAR + BIAS
        rows = {
            "baseline": (base.samples_evaluated / n, base.network_calls),
            "SSNI, reference-code cost": (reference_per_image, COUNT_LEVELS + COUNT_T_STAR + BIAS),
            "SSNI, ssni active-only": (
                COUNT_LEVELS + ssni.purifier.samples_evaluated / n,
                1 + ssni.purifier.network_calls,
            ),
            "SSNI, streaming": (
                COUNT_LEVELS + stream.stats.purify_evaluations / n,
                score_calls + stream.stats.network_calls,
            ),
        }
        baseline = rows["baseline"][0]
        out["inputs"][kind] = {
            "stream_fill_ratio": stream.stats.fill_ratio,
            "mean_t": float(t.clamp_min(1).double().mean()),
            "t_min": int(t.min()),
            "t_max": int(t.max()),
            "rows": {
                m: {"evaluations_per_image": v, "forward_passes": c, "vs_baseline": v / baseline}
                for m, (v, c) in rows.items()
            },
        }
    return out


# ---------------------------------------------------------------------------------------------------------------
# Part 2: timing
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Timing:
    seconds: list[float] = dataclasses.field(default_factory=list)
    network_seconds: list[float] = dataclasses.field(default_factory=list)
    evaluations: int = 0
    forward_passes: int = 0


def _methods(timed: TimedNetwork, cal: Calibration, cfg: Config, n: int):
    """name → (callable(x, ids), counters() → (evaluations, forward passes))."""
    base = DDPMPurifier(timed, t_star=cfg.time_t_star)
    ssni = SSNI(DDPMPurifier(timed, t_star=cfg.time_t_star), cal, bias=BIAS)
    ref_ssni = SSNI(DDPMPurifier(timed, t_star=cfg.time_t_star), cal, bias=BIAS)
    stream_ssni = StreamingPurifier(ssni, batch_size=n)
    stream_base = StreamingPurifier(base, batch_size=n)
    on_cuda = next(iter(timed.parameters())).is_cuda
    stream_graph = StreamingPurifier(ssni, batch_size=n, cuda_graph=True) if on_cuda else None

    def reference_cost(x, ids):
        ref_ssni.scores(x, seed=SEED, sample_ids=ids)
        full = torch.full((x.shape[0],), cfg.time_t_star + BIAS, dtype=torch.int64, device=x.device)
        return ref_ssni.purifier.purify(x, full, seed=SEED, sample_ids=ids)

    def reset_all():
        for m in (base, ssni, ref_ssni, stream_ssni, stream_base, stream_graph):
            if m is not None:
                m.reset()

    methods = {
        "baseline": (
            lambda x, ids: base.purify(x, seed=SEED, sample_ids=ids),
            lambda: (base.samples_evaluated, base.network_calls),
        ),
        "SSNI, reference-code cost": (
            reference_cost,
            lambda: (ref_ssni.samples_evaluated, ref_ssni.network_calls),
        ),
        "SSNI, ssni active-only": (
            lambda x, ids: ssni.purify(x, seed=SEED, sample_ids=ids),
            lambda: (ssni.samples_evaluated, ssni.network_calls),
        ),
        "SSNI, streaming": (
            lambda x, ids: stream_ssni.purify_all(x, seed=SEED, sample_ids=ids),
            lambda: (stream_ssni.stats.samples_evaluated, stream_ssni.stats.network_calls),
        ),
        "baseline, streaming": (
            lambda x, ids: stream_base.purify_all(x, seed=SEED, sample_ids=ids),
            lambda: (stream_base.stats.samples_evaluated, stream_base.stats.network_calls),
        ),
    }
    if stream_graph is not None:
        methods["SSNI, streaming + CUDA graph"] = (
            lambda x, ids: stream_graph.purify_all(x, seed=SEED, sample_ids=ids),
            lambda: (stream_graph.stats.samples_evaluated, stream_graph.stats.network_calls),
        )
    return methods, reset_all


def _paired(results: dict[str, Timing], a: str, b: str) -> float:
    """Median over repeats of the images/s ratio a / b, each ratio from one repeat."""
    return statistics.median(tb / ta for ta, tb in zip(results[a].seconds, results[b].seconds))


def timing(model: nn.Module, sets: dict, name: str, cfg: Config) -> dict:
    n = cfg.time_images
    timed = TimedNetwork(model)
    cal = calibrate(model, sets["reference"], cfg.time_levels, name)
    out = {"t_star": cfg.time_t_star, "levels": cfg.time_levels, "images": n, "repeats": cfg.repeats, "inputs": {}}
    methods, reset_all = _methods(timed, cal, cfg, n)
    for kind in cfg.time_inputs:
        x = sets[kind][:n]
        ids = torch.arange(n, device=x.device)
        results = {m: Timing() for m in methods}
        with torch.no_grad():
            methods["baseline"][0](x, ids)  # warm-up (allocator, kernels)
            names = list(methods)
            for r in range(cfg.repeats):
                # Interleaved and rotated: load drifts on a shared machine hit every method alike.
                for m in names[r % len(names) :] + names[: r % len(names)]:
                    run, counters = methods[m]
                    reset_all()
                    timed.seconds = 0.0
                    if x.is_cuda:
                        torch.cuda.synchronize()
                    start = time.perf_counter()
                    run(x, ids)
                    if x.is_cuda:
                        torch.cuda.synchronize()
                    results[m].seconds.append(time.perf_counter() - start)
                    results[m].network_seconds.append(timed.seconds)
                    results[m].evaluations, results[m].forward_passes = counters()
        rows = {}
        for m, r in results.items():
            sec = statistics.median(r.seconds)
            rows[m] = {
                "images_per_s": n / sec,
                "median_s": sec,
                "evaluations_per_image": r.evaluations / n,
                "forward_passes": r.forward_passes,
                "outside_network": statistics.median(
                    1 - net / total for net, total in zip(r.network_seconds, r.seconds)
                ),
            }

        out["inputs"][kind] = {
            "rows": rows,
            "stream_vs_full_batch": _paired(results, "baseline, streaming", "baseline"),
            "stream_vs_active_only": _paired(results, "SSNI, streaming", "SSNI, ssni active-only"),
        }
    return out


# ---------------------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------------------
def render(data: dict) -> str:
    lines = [
        f"# Pipeline benchmarks ({data['environment']['device']})",
        "",
        report.environment_lines(data["environment"]),
    ]
    for model, res in data["models"].items():
        c, tm = res["counts"], res["timing"]
        lines += ["", f"## {model}: {res['description']}", ""]
        lines += [
            f"### Network evaluations per image at t* = {c['t_star']}, K = {c['levels']}, b = {c['bias']} "
            f"({c['images']} images per set, τ = {c['tau']:.4g}; forward passes at batch {c['images']}, except "
            "ssni's score stage: one pass of K·N rows)",
            "",
            "| inputs | mean t | method | evaluations / image | vs baseline | forward passes |",
            "|---|---|---|---|---|---|",
        ]
        for kind, r in c["inputs"].items():
            for m, row in r["rows"].items():
                lines.append(
                    f"| {kind} | {r['mean_t']:.1f} | {m} | {row['evaluations_per_image']:.1f} | "
                    f"{row['vs_baseline']:.2f}× | {row['forward_passes']} |"
                )

        fills = ", ".join(f"{kind} {r['stream_fill_ratio']:.3f}" for kind, r in c["inputs"].items())
        lines += ["", f"Streaming fill ratio of the purification passes: {fills}."]
        lines += [
            "",
            f"### Timing at t* = {tm['t_star']}, K = {tm['levels']}, {tm['images']} images, median of {tm['repeats']}",
            "",
            "| inputs | method | images/s | evaluations / image | forward passes | time outside the network |",
            "|---|---|---|---|---|---|",
        ]
        for kind, r in tm["inputs"].items():
            for m, row in r["rows"].items():
                lines.append(
                    f"| {kind} | {m} | {row['images_per_s']:.3g} | {row['evaluations_per_image']:.1f} | "
                    f"{row['forward_passes']} | {100 * row['outside_network']:.1f}% |"
                )
        for kind, r in tm["inputs"].items():
            lines.append(
                f"\n{kind}: images/s ratios (median over repeats of same-repeat ratios): streaming / single full "
                f"batch (constant t*) = {r['stream_vs_full_batch']:.3f}; streaming / active-only (SSNI) = "
                f"{r['stream_vs_active_only']:.3f}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", default="mnist,cifar", help="comma-separated: mnist, cifar (adm256: GPU)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of every path")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--no-write", action="store_true", help="print only, write no results file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    configs = QUICK_CONFIGS if args.quick else (GPU_CONFIGS if device.type == "cuda" else CPU_CONFIGS)
    env = report.environment(
        device.type,
        allocator=ALLOCATOR_NOTE,
        compared="baseline DDPM purifier at constant t*; SSNI-N with the reference code's cost (K + t* + b "
        "evaluations per image); ssni's active-only SSNI-N; the streaming engine (batch = the set size)",
        sizes="quick" if args.quick else ("gpu" if device.type == "cuda" else "cpu (reduced timing t*, K)"),
    )
    data = {"environment": env, "models": {}}
    for name in args.models.split(","):
        cfg = configs[name]
        model, description = load_model(name, device)
        sets = image_sets(name, max(cfg.count_images, cfg.time_images), device)
        print(f"[{dt.datetime.now():%H:%M:%S}] {name}: counts", flush=True)
        count_sets = {k: v[: cfg.count_images] for k, v in sets.items()}
        res = {"description": description, "config": dataclasses.asdict(cfg)}
        res["counts"] = counts(model, count_sets, name, batch_size=cfg.count_images)
        print(f"[{dt.datetime.now():%H:%M:%S}] {name}: timing", flush=True)
        res["timing"] = timing(model, sets, name, cfg)
        data["models"][name] = res
    text = render(data)
    print(text)
    if not args.no_write:
        print(f"\nresults: {report.save_run('pipeline', device.type, data, text)}.{{json,md}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
