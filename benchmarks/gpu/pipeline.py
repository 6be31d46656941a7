"""Part "pipeline": end-to-end purification of N images with one model (random weights), per precision.

    python -m benchmarks.gpu.pipeline --profile quick --model adm256 --seconds 140 --out part.json

Methods, on the same images, every network call at batch N:
- constant t*: DDPMPurifier at t* for every sample (active-only execution, one batch);
- SSNI-N active-only: `SSNI.purify` (K score levels in calls of N rows, then each sample's own t);
- SSNI-N streamed + CUDA graph / streamed: `StreamingPurifier(ssni, batch_size=N)` with and without
  `cuda_graph=True` (the graph is captured in an untimed warm-up, as a long-running job would amortise it);
- SSNI, reference-code cost: the public reference code runs K levels then t* + b full-batch steps for every
  sample whatever its t; derived, not run: K + t* + b evaluations per image at the constant-t* run's time per
  evaluation (the same full-batch calls).
Precisions: fp32 (cuDNN's default TF32 convolutions, as users run), fp16 (ADM: the reference's float16 torso,
`convert_to_fp16`; other models: autocast float16, the streaming engine's `network_dtype`); the purification
state and the ops stay float32. Network time: CUDA events around every network call (the graph's replays
included), no synchronisation inside a timed run; "outside the network" = 1 − network time / wall time.
A method whose predicted time (evaluations × the measured time per evaluation) does not fit in --seconds is
skipped with the reason. Writes its JSON after every method.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from benchmarks.bench_pipeline import Autocast, calibrate, smooth_images
from benchmarks.gpu.profiles import PROFILES, PipelineRun
from benchmarks.gpu.timing import Deadline, NetworkClock, synchronize
from ssni import SSNI, DDPMPurifier
from ssni.purify import StreamingPurifier

SEED = 0
CONSTANT, ACTIVE, GRAPH, STREAM = "constant t*", "SSNI-N active-only", "SSNI-N streamed + CUDA graph", "SSNI-N streamed"
METHODS = (CONSTANT, ACTIVE, GRAPH, STREAM)  # the order they run in (a run out of time skips the last)
REFERENCE_COST = "SSNI, reference-code cost (derived)"
PREDICTION_MARGIN = 1.3  # predicted time × this must fit in the time left

_reference_library = None  # keeps the overriding registrations alive


def use_reference_kernels() -> None:
    """Replace the CUDA kernels of every ssni op by the PyTorch reference (this process only)."""
    global _reference_library
    from ssni_kernels import _library

    _reference_library = torch.library.Library("ssni", "IMPL")  # noqa: TOR901
    for name, kernel in _library.REFERENCE_KERNELS.items():
        _reference_library.impl(name, kernel, "CUDA")


def random_weights_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Redraw the parameters that the stock initialisation leaves (near) zero (the last layer of residual
    branches and of the network: ADM zeroes them, NCSN++ scales them by 1e-10) as N(0, 1/fan_in), so that ε̂ and
    the score norms vary from image to image as a trained network's do; otherwise every sample would get the same t."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim >= 2 and float(p.abs().max()) < 1e-6:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in**0.5)
    return model


class ClockedModel(nn.Module):
    """The ε-network with every call timed by a NetworkClock."""

    def __init__(self, net: nn.Module, clock: NetworkClock):
        super().__init__()
        self.net = net
        self.clock = clock

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with self.clock:
            return self.net(x, t)


class ClockedNetwork:
    """A StreamingPurifier's network (ssni.purify.stream.network.Network) with every call timed, CUDA graph
    replays included; other attributes are the network's."""

    def __init__(self, network, clock: NetworkClock):
        self._network = network
        self._clock = clock

    def __call__(self, buffer: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
        with self._clock:
            return self._network(buffer, labels, k)

    def __getattr__(self, name: str):
        return getattr(self._network, name)


@dataclasses.dataclass
class Precision:
    """How one precision runs the network: `network` for the plain purifiers, `raw` + `stream_dtype` for the
    streaming engine (which applies autocast itself)."""

    name: str
    network: nn.Module
    raw: nn.Module
    stream_dtype: torch.dtype | None
    note: str


def set_precision(model: nn.Module, name: str) -> Precision:
    if name == "fp32":
        if hasattr(model, "convert_to_fp32"):
            model.convert_to_fp32()
        return Precision(name, model, model, None, "float32 (cuDNN convolutions in TF32 by default)")
    if hasattr(model, "convert_to_fp16"):
        model.convert_to_fp16()
        return Precision(name, model, model, None, "float16 torso (convert_to_fp16, the reference's mixed precision)")
    return Precision(name, Autocast(model, torch.float16), model, torch.float16, "autocast float16")


def seconds_per_evaluation(network: nn.Module, x: torch.Tensor) -> float:
    """Wall time of one network call at x's batch, per sample (after one warm-up call)."""
    labels = torch.full((x.shape[0],), 10.0, device=x.device)
    with torch.no_grad():
        network(2 * x - 1, labels)
        synchronize(x.device)
        start = time.perf_counter()
        for _ in range(2):
            network(2 * x - 1, labels)
        synchronize(x.device)
    return (time.perf_counter() - start) / 2 / x.shape[0]


class Methods:
    """The purifiers of one precision, each method as (run(x, ids) → x̂, counters() → (evaluations, calls, padded
    rows)), all timing their network calls with `clock`."""

    def __init__(self, precision: Precision, calibration, run: PipelineRun, clock: NetworkClock, device):
        timed = ClockedModel(precision.network, clock)
        self.constant = DDPMPurifier(timed, t_star=run.t_star)
        self.active = SSNI(DDPMPurifier(timed, t_star=run.t_star), calibration, bias=run.bias, chunk_size=run.images)
        self.streams = {}
        for method, graph in ((GRAPH, True), (STREAM, False)):
            if graph and device.type != "cuda":
                continue
            # The score norm streams in full precision (reduced precision is refused around it: its smallest
            # EPS level is below bf16's resolution); the host's walk streams at the precision under test, given t.
            ssni = SSNI(DDPMPurifier(precision.raw, t_star=run.t_star), calibration, bias=run.bias)
            score = StreamingPurifier(ssni, batch_size=run.images, cuda_graph=graph)
            host = StreamingPurifier(ssni.purifier, batch_size=run.images, network_dtype=precision.stream_dtype,
                                     cuda_graph=graph)  # fmt: skip
            for stream in (score, host):
                stream.network = ClockedNetwork(stream.network, clock)
            self.streams[method] = (ssni, score, host)

    def run(self, method: str, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        if method == CONSTANT:
            return self.constant.purify(x, seed=SEED, sample_ids=ids)
        if method == ACTIVE:
            return self.active.purify(x, seed=SEED, sample_ids=ids)
        ssni, score, host = self.streams[method]
        t = ssni.timesteps_from_scores(score.score_all(x, seed=SEED, sample_ids=ids)).to(x.device)
        return host.purify_all(x, t, seed=SEED, sample_ids=ids)

    def counters(self, method: str) -> tuple[int, int, int]:
        if method in self.streams:
            stats = [stream.stats for stream in self.streams[method][1:]]
            return tuple(
                sum(getattr(s, k) for s in stats) for k in ("samples_evaluated", "network_calls", "padded_rows")
            )
        purifier = self.constant if method == CONSTANT else self.active
        return purifier.samples_evaluated, purifier.network_calls, 0

    def reset(self) -> None:
        streams = [stream for _, *pair in self.streams.values() for stream in pair]
        for purifier in (self.constant, self.active, *streams):
            purifier.reset()

    def warm_up_graph(self, x: torch.Tensor, ids: torch.Tensor) -> bool:
        """Capture the host stream's CUDA graph (one walk step of one sample); True when it was captured."""
        host = self.streams[GRAPH][2]
        host.purify_all(x[:1], torch.ones(1, dtype=torch.int64, device=x.device), seed=SEED, sample_ids=ids[:1])
        return host.network.graph is not None


def time_method(methods: Methods, method: str, x, ids, clock: NetworkClock, repeats: int) -> tuple[dict, torch.Tensor]:
    walls, outside = [], []
    for _ in range(repeats):
        methods.reset()
        synchronize(x.device)
        clock.reset()
        start = time.perf_counter()
        with torch.no_grad():
            out = methods.run(method, x, ids)
        synchronize(x.device)
        wall = time.perf_counter() - start
        walls.append(wall)
        outside.append(1 - clock.seconds() / wall)
    evaluations, calls, padded = methods.counters(method)
    n = x.shape[0]
    wall = statistics.median(walls)
    row = {
        "images_per_s": n / wall,
        "seconds": wall,
        "evaluations_per_image": evaluations / n,
        "forward_passes": calls,
        "padded_rows_per_image": padded / n,
        "outside_network": statistics.median(outside),
        "finite": bool(torch.isfinite(out).all()),
    }
    return row, out


def run_precision(model, calibration, run: PipelineRun, images, ids, deadline: Deadline, repeats: int, result, save):
    """Every method at the precision result["name"], filling `result` (rows, skipped methods with the reason) and
    calling save() after each method."""
    device = images.device
    name = result["name"]
    precision = set_precision(model, name)
    clock = NetworkClock(device)
    per_evaluation = seconds_per_evaluation(precision.network, images)
    result.update(precision=precision.note, seconds_per_evaluation=per_evaluation, rows={}, skipped={})
    methods = Methods(precision, calibration, run, clock, device)
    n = run.images
    ssni_evaluations = n * (run.levels + run.t_star + run.bias)  # an upper bound until an SSNI method has run
    outputs = {}
    for method in METHODS:
        if method == GRAPH and device.type != "cuda":
            result["skipped"][method] = "needs CUDA"
            continue
        evaluations = n * run.t_star if method == CONSTANT else ssni_evaluations
        predicted = evaluations * per_evaluation * repeats * PREDICTION_MARGIN
        if not deadline.allows(predicted):
            result["skipped"][method] = f"predicted {predicted:.0f} s, {max(deadline.left(), 0):.0f} s left"
            continue
        if method == GRAPH and not methods.warm_up_graph(images, ids):
            result["skipped"][method] = "CUDA graph capture failed (see the warning in the log)"
            continue
        row, outputs[method] = time_method(methods, method, images, ids, clock, repeats)
        if method != CONSTANT:
            ssni_evaluations = row["evaluations_per_image"] * n
            if ACTIVE in outputs:
                row["max_abs_difference_vs_active_only"] = float((outputs[method] - outputs[ACTIVE]).abs().max())
        result["rows"][method] = row
        save()
        print(f"{run.key} {name} {method}: {row['images_per_s']:.3g} images/s", flush=True)
    if CONSTANT in result["rows"]:
        seconds_per_image_evaluation = result["rows"][CONSTANT]["seconds"] / (n * run.t_star)
        cost = run.levels + run.t_star + run.bias
        result["rows"][REFERENCE_COST] = {
            "images_per_s": 1 / (seconds_per_image_evaluation * cost),
            "evaluations_per_image": cost,
        }
    save()
    del methods
    if device.type == "cuda":
        torch.cuda.empty_cache()


def measure(profile_name: str, key: str, kernels: str, seconds: float | None, out: Path) -> dict:
    from ssni.models import build

    profile = PROFILES[profile_name]
    run = next(r for r in profile.pipelines if r.key == key)
    device = torch.device(profile.device)
    deadline = Deadline(seconds)
    if kernels == "reference":
        use_reference_kernels()
    torch.manual_seed(0)
    with torch.device(device):
        model = random_weights_(build(run.model, **dict(run.overrides))).eval().to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    reference = smooth_images(run.images, 1, run.resolution).to(device)
    images = smooth_images(run.images, 2, run.resolution).to(device)
    ids = torch.arange(run.images, device=device)
    data = {
        "model": run.model,
        "parameters": sum(p.numel() for p in model.parameters()),
        "config": dataclasses.asdict(run),
        "kernels": kernels,
        "tf32_convolutions": torch.backends.cudnn.allow_tf32,
        "precisions": {},
    }

    def save() -> None:
        out.write_text(json.dumps(data))

    calibration = None
    for name in run.dtypes:
        if calibration is None:
            with torch.no_grad():
                calibration = calibrate(set_precision(model, name).network, reference, run.levels, key, run.images)
            data["calibration"] = {"precision": name, "mean": calibration.mean, "tau": calibration.tau}
        data["precisions"][name] = {"name": name}
        run_precision(model, calibration, run, images, ids, deadline, profile.repeats, data["precisions"][name], save)
    save()
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=sorted(PROFILES), required=True)
    parser.add_argument("--model", required=True, help="a PipelineRun key of the profile (adm256, ddpmpp)")
    parser.add_argument("--kernels", choices=("fused", "reference"), default="fused")
    parser.add_argument("--seconds", type=float, default=None, help="time limit: skip what would not fit")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    measure(args.profile, args.model, args.kernels, args.seconds, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
