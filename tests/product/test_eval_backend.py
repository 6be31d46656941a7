"""The evaluation backend charges each method the network evaluations it makes, and a constant-t sweep point
visits every index (tiny random MNIST-format models; the counters are the backend's totals, which the records'
commit lines and the report's "net evals/image" are made of)."""

from __future__ import annotations

import pytest
from product_fixtures import write_tiny_models

from ssni.cli import build_parser, eval_request, main
from ssni.eval.commands import prepare_eval
from ssni.eval.methods import Method

NUM_LEVELS, T_STAR, B = 3, 8, 5  # t* 8 ≤ the mnist preset's 10 steps: the defence visits every index


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-counters")
    diffusion, classifier = write_tiny_models(folder, seed=2)
    cal = folder / "cal.json"
    args = ["--diffusion-checkpoint", str(diffusion), "--num-levels", str(NUM_LEVELS)]
    assert main(["calibrate", *args, "--out", str(cal), "--num-samples", "8"]) == 0
    argv = ["eval", *args, "--calibration", str(cal), "--classifier-checkpoint", str(classifier)]
    argv += ["--t-star", str(T_STAR), "--num-samples", str(B), "--batch-size", str(B), "--out", str(folder / "r")]
    _, backend, data, _ = prepare_eval(eval_request(build_parser().parse_args(argv)))
    return backend, data


def _charged(backend, data, method: str):
    """(per-sample network evaluations, network calls) of one clean evaluation, and its output."""
    before = backend.samples_evaluated, backend.network_calls
    out = backend.evaluate(Method.parse(method), data.images, seed=121, sample_ids=data.sample_ids)
    return backend.samples_evaluated - before[0], backend.network_calls - before[1], out


def _steps(backend, t: int) -> int:
    """Reverse steps of a walk from t: every index when the preset's defence visits every index, else its n."""
    t_star, n = backend.preset.purifier.stages[0]
    return t if n == t_star else min(t, n)


def test_constant_t_star_is_charged_its_walk_only(backend):
    """t* = 8: its own walk per image (8 steps, or the preset's strided n), no score norm (SSNI's K levels are
    not charged)."""
    evaluated, calls, out = _charged(*backend, "constant")
    steps = _steps(backend[0], T_STAR)
    assert out.score_norm is None and out.t.tolist() == [T_STAR] * B
    assert evaluated == B * steps and calls == steps  # all images share every step: one call per step


def test_ssni_is_charged_its_score_levels_and_its_own_walk(backend):
    evaluated, _, out = _charged(*backend, "ssni-n")
    assert out.score_norm is not None
    assert evaluated == B * NUM_LEVELS + int(out.t.clamp_min(1).sum())


@pytest.mark.parametrize("t", [5, 20])
def test_sweep_points_visit_every_index(backend, t):
    """constant@t takes the walk the defence takes, above the host's t* too: every index when the defence visits
    every index (t evaluations per image), else the defence's n strided steps."""
    evaluated, calls, out = _charged(*backend, f"constant@{t}")
    steps = _steps(backend[0], t)
    assert steps == t  # the fixture's defence visits every index
    assert out.t.tolist() == [t] * B and evaluated == B * steps and calls == steps
