"""Where the main job's wall time goes: inside the networks (diffusion forward and backward, classifier) or
outside them (ops, Python, data movement), for `ssni eval` on the embedded MNIST default.

    .venv/bin/python -m benchmarks.bench_eval                 # the main job as `ssni eval` runs it (≈ 10 min)
    .venv/bin/python -m benchmarks.bench_eval --num-samples 16 --seeds 121   # a short run

The main thread's stack is sampled every 5 ms: a sample is network time when it is inside a network's forward
(recomputed forwards of gradient checkpointing included) or inside autograd's backward; everything else in the
evaluation loop is "outside the network". The target is < 10% outside. Results:
benchmarks/results/eval-<device>-<date>.{json,md}.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks import report
from ssni.cli import build_parser, eval_request
from ssni.eval.commands import prepare_eval
from ssni.eval.runner import run_eval


class StackSampler:
    """Where the main thread is, sampled every `interval` seconds from a background thread (torch releases the GIL
    inside its kernels, so the sampler runs while they do): inside a network's forward (a frame of the network's
    source file), inside autograd's backward (the networks' backward plus the ops' small elementwise backward), or
    elsewhere. Module hooks cannot time the backward of checkpointed modules reliably; sampling can."""

    def __init__(self, network_files: dict[str, str], interval: float = 0.005):
        self.network_files = network_files  # name → source file of its forward
        self.interval = interval
        self.counts: dict[str, int] = {name: 0 for name in network_files} | {"backward": 0, "outside": 0}
        self._thread_id = threading.get_ident()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _classify(self, frame) -> str:
        while frame is not None:
            filename = frame.f_code.co_filename
            for name, source in self.network_files.items():
                if filename == source:
                    return name
            if frame.f_code.co_name in ("run_backward", "_engine_run_backward") or "torch/autograd" in filename:
                return "backward"
            frame = frame.f_back
        return "outside"

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            frame = sys._current_frames().get(self._thread_id)
            self.counts[self._classify(frame)] += 1

    def __enter__(self) -> StackSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def shares(self) -> dict[str, float]:
        total = max(1, sum(self.counts.values()))
        return {name: n / total for name, n in self.counts.items()}


def measure(cli_args: list[str]) -> dict:
    """Run `ssni eval <cli_args>` in-process into a temporary records file; return the time breakdown."""
    with tempfile.TemporaryDirectory() as tmp:
        args = build_parser().parse_args(["eval", *cli_args, "--out", str(Path(tmp) / "r.jsonl"), "--no-progress"])
        start = time.perf_counter()
        config, backend, data, device = prepare_eval(eval_request(args))
        setup = time.perf_counter() - start
        files = {
            "diffusion forward": inspect.getsourcefile(type(backend.models.diffusion)),
            "classifier forward": inspect.getsourcefile(type(backend.models.classifier)),
        }
        with StackSampler(files) as sampler:
            began = time.perf_counter()
            run_eval(config, backend, data, log=lambda s: None)
            loop = time.perf_counter() - began
    shares = sampler.shares()
    preset = config.preset
    return {
        "command": "ssni eval " + " ".join(cli_args),
        "images": int(data.labels.shape[0]),
        "seeds": list(preset.seeds),
        "methods": [str(m) for m in preset.methods],
        "attacks": [a.name for a in preset.attacks],
        "device": device,
        "setup_s": setup,
        "loop_s": loop,
        "shares": shares,
        "samples": sampler.counts,
        "outside_network_share": shares["outside"],
        "network_evaluations": backend.samples_evaluated,
    }


def render(data: dict) -> str:
    env, r = data["environment"], data["result"]
    shares = r["shares"]
    lines = [
        "# Where `ssni eval`'s time goes",
        "",
        report.environment_lines(env),
        "",
        f"`{r['command']}`: {r['images']} images, seeds {r['seeds']}, methods {', '.join(r['methods'])}, attacks "
        f"{', '.join(r['attacks'])}.",
        "",
        "| part | seconds | share of the loop |",
        "|---|---|---|",
        *[f"| {name} | {share * r['loop_s']:.1f} | {100 * share:.1f}% |" for name, share in shares.items()],
        f"| evaluation loop, total | {r['loop_s']:.1f} | 100% |",
        f"| set-up (models, data, calibration), not in the loop | {r['setup_s']:.1f} | |",
        "",
        f"Shares from {sum(r['samples'].values())} stack samples (every 5 ms); backward = autograd's backward (the "
        "networks' backward plus the ops' elementwise backward).",
        f"Diffusion-network evaluations (per sample): {r['network_evaluations']}. Target: < 10% outside the networks.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-save", action="store_true", help="print only, write no results file")
    args, rest = parser.parse_known_args(argv)
    compared = "no baseline: the main job's wall time split into time inside the networks and outside them"
    data = {"environment": report.environment("cpu", compared=compared), "result": measure(rest)}
    text = render(data)
    print(text)
    if not args.no_save:
        print(f"\nresults: {report.save_run('eval', 'cpu', data, text)}.{{json,md}}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
