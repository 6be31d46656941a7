"""The paper presets run the reference protocol (docs/fidelity.md): the attacks as the reference ran them, the
named choices reach the attacks and the defence, and the records say which ran. Tiny random models."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from ssni import Calibration, GNSDefense
from ssni.attacks import PlainClassifier, pgd_eot
from ssni.attacks.threat import lp_norm
from ssni.cli import build_parser, eval_request
from ssni.eval.backend import ModelBackend
from ssni.eval.loading import Models
from ssni.eval.methods import Method
from ssni.eval.presets import PRESETS, AttackSpec, resolve_preset
from ssni.eval.requests import Overrides

PAPER = ("cifar10-diffpure", "cifar10-gns", "cifar10-gdmp", "imagenet-diffpure")


def _attack(preset, name: str) -> AttackSpec:
    return next(a for a in preset.attacks if a.name == name)


@pytest.mark.parametrize("name", PAPER)
def test_paper_presets_run_the_reference_attacks(name):
    """JiachengZ01/SSNI main.py: L2 PGD ε 0.5 with sign steps of 0.007 then the projection; BPDA ε 8/255 for
    every dataset; Linf ε 8/255 (4/255 on ImageNet); 200 iterations, EOT 20."""
    preset = PRESETS[name]
    l2 = _attack(preset, "pgd-l2")
    assert (l2.eps, l2.step_size, l2.l2_step, l2.iterations, l2.eot) == (0.5, 0.007, "sign", 200, 20)
    assert _attack(preset, "bpda-linf").eps == 8 / 255
    assert _attack(preset, "pgd-linf").eps == (4 / 255 if name.startswith("imagenet") else 8 / 255)
    assert "sign step 0.007 then projection onto the L2 ball" in l2.describe()


def test_preset_settings_traced_to_their_sources():
    imagenet = PRESETS["imagenet-diffpure"]  # SSNI README: --att_max_timesteps 200 --att_num_denoising_steps 10
    assert imagenet.purifier.stages == ((200, 200),) and imagenet.purifier.surrogate_stages == ((200, 10),)
    assert imagenet.linear_batch_attack == 1
    assert _attack(imagenet, "bpda-linf").bpda_schedule == "surrogate"
    gns = PRESETS["cifar10-gns"]  # Lee & Kim's cifar10_bpda.sh: attack schedule = defence schedule
    assert _attack(gns, "bpda-linf").bpda_schedule == "defence" and gns.purifier.scores_per_vote
    gdmp = PRESETS["cifar10-gdmp"].purifier  # GDMP configs/default.yml: unguided, 4 × 36, 10 paths, own sampler
    assert (gdmp.votes, gdmp.guidance, gdmp.sampler, gdmp.stages) == (10, None, "gdmp", ((36, 36),) * 4)
    cifar = PRESETS["cifar10-diffpure"]  # SSNI README: attack batches of 16, evaluation batches of 32
    assert (cifar.linear_batch_attack, cifar.linear_batch_eval) == (16, 32)
    mnist = PRESETS["mnist"]  # the demo keeps its own attacks
    assert _attack(mnist, "pgd-l2").l2_step == "normalized" and _attack(mnist, "bpda-linf").bpda_schedule == "defence"


def test_normalised_l2_step_reaches_the_ball_at_the_sign_steps_pace():
    """A sign step of 0.007 is 0.007·√3072 ≈ 0.39 long on CIFAR-10: the ε = 0.5 sphere in two iterations. The
    normalised form keeps that length; the normalised 0.007 of before needed 72 aligned iterations."""
    preset = resolve_preset("cifar10-diffpure", Overrides(l2_step="normalized"))
    l2 = _attack(preset, "pgd-l2")
    assert l2.l2_step == "normalized" and l2.step_size == pytest.approx(0.007 * math.sqrt(3072))
    assert "normalised-gradient step 0.3" in l2.describe()
    torch.manual_seed(0)
    model = PlainClassifier(nn.Sequential(nn.Flatten(), nn.Linear(3072, 10)))
    x = torch.rand(4, 3, 32, 32) * 0.5 + 0.25
    y = torch.zeros(4, dtype=torch.int64)
    for spec in (_attack(PRESETS["cifar10-diffpure"], "pgd-l2"), l2):
        out = pgd_eot(model, x, y, sample_ids=torch.arange(4), norm="L2", eps=0.5, iterations=2, eot=1,
                      step_size=spec.step_size, l2_step=spec.l2_step).x_adv  # fmt: skip
        torch.testing.assert_close(lp_norm(out - x, "L2"), torch.full((4,), 0.5), rtol=1e-5, atol=1e-5)
    back = l2.with_l2_step("sign", 3072)
    assert back.l2_step == "sign" and back.step_size == pytest.approx(0.007)


def test_cli_selects_the_protocol_choices():
    args = build_parser().parse_args(
        ["eval", "--l2-step", "normalized", "--bpda-schedule", "defence", "--linear-batch-attack", "4",
         "--linear-batch-eval", "8", "--vote-scores", "shared"]
    )  # fmt: skip
    o = eval_request(args).overrides
    assert (o.l2_step, o.bpda_schedule, o.linear_batch_attack, o.linear_batch_eval, o.scores_per_vote) == (
        "normalized", "defence", 4, 8, False,
    )  # fmt: skip
    preset = resolve_preset("cifar10-gns", o)
    assert _attack(preset, "bpda-linf").bpda_schedule == "defence" and not preset.purifier.scores_per_vote
    assert (preset.linear_batch_attack, preset.linear_batch_eval) == (4, 8)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["eval", "--l2-step", "unit"])


def _backend(tiny_eps, **purifier_changes) -> tuple[ModelBackend, torch.Tensor]:
    preset = PRESETS["cifar10-diffpure"]
    spec = replace(preset.purifier, stages=((6, 6),), surrogate_stages=((6, 2),), **purifier_changes)
    preset = replace(preset, purifier=spec, num_levels=2, batch_size=4, linear_batch_attack=2, linear_batch_eval=4)
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10)).eval()
    models = Models(tiny_eps(channels=3), classifier, "tiny", "clf")
    cal = Calibration.from_norms(torch.tensor([1.0, 5.0, 9.0]), model_id="tiny", num_levels=2, resolution=(8, 8),
                                 seed=121)  # fmt: skip
    return ModelBackend(preset, models, cal, None, "cpu"), torch.rand(4, 3, 8, 8, generator=torch.Generator())


def test_backend_gives_each_method_its_schedule_and_the_attacks_their_choices(tiny_eps, monkeypatch):
    backend, x = _backend(tiny_eps)
    assert backend.hosts["ssni-n"].extra_steps == 5 and backend.hosts["ssni-l"].extra_steps == 0
    assert backend.ssni["ssni-l"].linear_batch == 4
    seen = {}

    def fake(model, x, y, **kwargs):
        seen.update(kwargs, model=model)
        return type("R", (), {"x_adv": x})()

    import ssni.eval.attacks

    monkeypatch.setattr(ssni.eval.attacks, "pgd_eot", fake)  # BPDA is PGD with straight-through gradients
    y, ids = torch.zeros(4, dtype=torch.int64), torch.arange(4)
    backend.attack(Method("ssni-l"), _attack(backend.preset, "pgd-l2"), x, y, seed=1, sample_ids=ids)
    assert seen["l2_step"] == "sign" and seen["model"].ssni.linear_batch == 2  # the attack's min/max groups
    seen.clear()
    backend.attack(Method("constant"), _attack(backend.preset, "bpda-linf"), x, y, seed=1, sample_ids=ids)
    assert seen["model"].bpda_schedule == "surrogate" and seen["model"].gradient == "bpda" and "l2_step" not in seen


def test_backend_votes_rescore_like_the_vote_defence(tiny_eps):
    """Per-vote score norms in the evaluation equal GNSDefense(scores_per_vote=True), which the attacks use."""
    backend, x = _backend(tiny_eps, votes=3, scores_per_vote=True)
    ids = torch.arange(10, 14)
    out = backend.evaluate(Method("ssni-n"), x, seed=3, sample_ids=ids)
    vote = GNSDefense(backend.ssni["ssni-n"], backend.models.classifier, 3, scores_per_vote=True)
    assert torch.equal(out.pred, vote(x, seed=3, sample_ids=ids))
    t0, e0 = backend.ssni["ssni-n"].timesteps(x, seed=3, sample_ids=ids)
    assert torch.equal(out.t, t0) and torch.allclose(out.score_norm, e0.float())  # records keep vote 0's
