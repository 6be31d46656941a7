"""A fake evaluation backend (deterministic arithmetic instead of models) and a script entry that runs the loop.

Used by the resume (kill -9) and torchrun tests: `python tests/ssni/eval/eval_fakes.py OUT [--sleep S]` runs the
fake evaluation into the records file OUT, printing the summary JSON (rank 0).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ssni.eval.distributed import close_world, init_world  # noqa: E402
from ssni.eval.presets import AttackSpec, Preset, PurifierSpec  # noqa: E402
from ssni.eval.report import summarize  # noqa: E402
from ssni.eval.runner import DefenceOutput, EvalConfig, EvalData, run_eval  # noqa: E402

FAKE_PRESET = Preset(
    name="fake",
    dataset="fake",
    image_size=4,
    channels=1,
    diffusion="none",
    classifier="none",
    purifier=PurifierSpec("ddpm", stages=((20, 20),), surrogate_stages=((20, 2),)),
    attacks=(
        AttackSpec("pgd-linf", "Linf", 0.1, 0.05, 3, 1),
        AttackSpec("pgd-l2", "L2", 0.5, 0.2, 2, 1, l2_step="normalized"),
    ),
    num_samples=22,
    num_levels=2,
    batch_size=4,
    seeds=(121, 122),
)


class FakeBackend:
    """pred/t/e are arithmetic on the pixels; SSNI-L's t depends on the chunk's min/max like the real one."""

    def __init__(self, sleep: float = 0.0):
        self.network_calls = 0
        self.samples_evaluated = 0
        self.sleep = sleep

    def evaluate(self, method, x, *, seed, sample_ids):
        time.sleep(self.sleep)
        e = x.flatten(1).mean(1) * 10 + (sample_ids % 3).float() + seed * 1e-3
        if method.kind == "ssni-l":
            t = ((e - e.min()) / (e.max() - e.min() + 1e-6) * 19 + 5).round().long()
        elif method.kind == "ssni-n":
            t = (torch.sigmoid(e - 5) * 24).round().long()
        else:
            t = torch.full_like(sample_ids, 20)
        pred = (x.flatten(1).sum(1) * 3 + t).long() % 10
        self.network_calls += int(t.max())
        self.samples_evaluated += int(t.sum())
        return DefenceOutput(pred=pred, t=t, score_norm=e)

    def attack(self, method, attack, x, y, *, seed, sample_ids, on_iteration=None):
        x_adv = x
        for k in range(attack.iterations):
            time.sleep(self.sleep)
            sign = torch.where((y + k + seed) % 2 == 0, 1.0, -1.0)[:, None, None, None]
            x_adv = (x_adv + attack.step_size * sign).clamp(x - attack.eps, x + attack.eps).clamp(0, 1)
            self.network_calls += 1
            self.samples_evaluated += x.shape[0]
            if on_iteration:
                on_iteration(k)
        return x_adv


def fake_data(n: int = FAKE_PRESET.num_samples) -> EvalData:
    g = torch.Generator().manual_seed(0)
    images = torch.rand(n, 1, 4, 4, generator=g)
    labels = torch.randint(0, 10, (n,), generator=g)
    return EvalData(images, labels, torch.arange(100, 100 + n))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--sleep", type=float, default=0.0)
    args = parser.parse_args()
    world = init_world("cpu")
    config = EvalConfig(preset=FAKE_PRESET, out=args.out, progress=False)
    final = run_eval(config, FakeBackend(args.sleep), fake_data(), world)
    close_world(world)
    if final is not None:
        print(json.dumps(summarize(final).to_json()))


if __name__ == "__main__":
    main()
