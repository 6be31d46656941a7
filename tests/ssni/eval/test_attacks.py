"""The evaluation's attack table: every kind runs through one signature; the worst case is derived per sample."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from eval_fakes import FAKE_PRESET, FakeBackend, fake_data
from torch import nn

from ssni.attacks import PlainClassifier
from ssni.errors import SSNIUserError
from ssni.eval.attacks import ATTACK_KINDS, run_attack
from ssni.eval.presets import AttackSpec
from ssni.eval.report import summarize
from ssni.eval.runner import EvalConfig, run_eval


@pytest.mark.parametrize("kind", sorted(ATTACK_KINDS))
def test_every_kind_runs_within_its_budget(kind):
    torch.manual_seed(0)
    model = PlainClassifier(nn.Sequential(nn.Flatten(), nn.Linear(36, 10)))
    x, y = torch.rand(4, 1, 6, 6), torch.arange(4)
    spec = AttackSpec("a", "Linf", 0.1, 0.05, 2, 1, kind=kind)
    result = run_attack(model, spec, x, y, seed=3, sample_ids=torch.arange(4))
    assert result.x_adv.shape == x.shape
    assert (result.x_adv - x).abs().max() <= 0.1 + 1e-6 and result.x_adv.min() >= 0 and result.x_adv.max() <= 1


def test_unknown_kind_is_a_user_error():
    spec = AttackSpec("cw", "Linf", 0.1, 0.05, 2, 1, kind="cw")
    with pytest.raises(SSNIUserError, match="unknown kind 'cw'"):
        run_attack(None, spec, torch.rand(1, 1, 4, 4), torch.zeros(1, dtype=torch.long), seed=0, sample_ids=None)


def test_worst_case_of_the_two_autoattack_versions_is_derived_per_sample(tmp_path):
    rand = AttackSpec("autoattack-rand", "Linf", 0.1, 0.05, 2, 1, kind="autoattack-rand")
    standard = dataclasses.replace(rand, name="autoattack-standard", kind="autoattack-standard", step_size=0.02)
    preset = FAKE_PRESET.with_overrides(attacks=(rand, standard))
    log = run_eval(EvalConfig(preset=preset, out=tmp_path / "r.jsonl", progress=False), FakeBackend(), fake_data())
    summary = summarize(log)
    correct = {(r["method"], r["attack"], r["seed"], r["sample_id"]): r["correct"] for r in log.records}
    for method in ("constant", "ssni-n"):
        both = [
            correct[(method, "autoattack-rand", s, i)] and correct[(method, "autoattack-standard", s, i)]
            for (m, a, s, i) in correct
            if m == method and a == "autoattack-rand"
        ]
        worst = summary.robust_accuracy[method]["autoattack-worst"].mean
        assert worst == pytest.approx(100 * sum(both) / len(both))
        assert worst <= min(summary.robust_accuracy[method][a].mean for a in ("autoattack-rand", "autoattack-standard"))
