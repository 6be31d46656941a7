"""AutoAttack "standard" and its components (APGD-T, FAB-T, Square): losses, schedule, composition, worst case,
batch invariance and seeds on a randomised defence, argument checks. Equality with an independent implementation
is in test_attack_autoattack_reference.py."""

from __future__ import annotations

import importlib

import pytest
import torch

from ssni.attacks import (
    AttackResult,
    PlainClassifier,
    PurifiedClassifier,
    apgd_targeted,
    autoattack_standard,
    dlr_targeted,
    fab_targeted,
    margin,
    square,
    worst_case,
)
from ssni.attacks.square import square_window_size
from ssni.attacks.threat import lp_norm

autoattack_module = importlib.import_module("ssni.attacks.autoattack")


def test_targeted_dlr_and_margin_follow_their_formulas():
    logits = torch.tensor([[4.0, 1.0, 3.0, 0.0, 2.0], [0.5, 2.0, -1.0, 1.0, 0.0]])
    y, target = torch.tensor([0, 3]), torch.tensor([2, 1])
    # sorted: [4, 3, 2, 1, 0] and [2, 1, .5, 0, -1]: denominator z_π1 − (z_π3 + z_π4)/2
    expected = torch.tensor([-(4.0 - 3.0) / (4.0 - 1.5), -(1.0 - 2.0) / (2.0 - 0.25)])
    torch.testing.assert_close(dlr_targeted(logits, y, target), expected)
    torch.testing.assert_close(margin(logits, y), torch.tensor([4.0 - 3.0, 1.0 - 2.0]))
    with pytest.raises(ValueError, match="4 classes"):
        dlr_targeted(logits[:, :3], y.clamp(max=2), target)


def test_square_window_follows_autoattacks_schedule():
    # p = 0.8 / 2^j after queries 10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000; s = round(√(p·784)) on 28×28
    queries = [0, 10, 11, 50, 51, 200, 201, 500, 501, 1000, 1001, 2000, 2001, 4000, 4001, 6000, 6001, 8000, 8001]
    linf = [25, 25, 18, 18, 13, 13, 9, 9, 6, 6, 4, 4, 3, 3, 2, 2, 2, 2, 1]
    l2 = [25, 25, 19, 19, 13, 13, 9, 9, 7, 7, 5, 5, 3, 3, 3, 3, 3, 3, 3]  # odd, at least 3
    for norm, sides in (("Linf", linf), ("L2", l2)):
        got = [square_window_size(q, p_init=0.8, height=28, width=28, norm=norm) for q in queries]
        assert got == sides, norm
    assert square_window_size(0, p_init=0.5, height=4, width=4, norm="Linf") == 3  # round(√8)
    assert square_window_size(0, p_init=1.0, height=4, width=4, norm="L2") == 4  # 4 → odd 5 → the image's side


def _stochastic(mlp_net, fake_purifier, batch):
    x, ids = batch
    model = PurifiedClassifier(fake_purifier, mlp_net, seed=121)
    return model, x, mlp_net(x).argmax(1), ids


@pytest.mark.parametrize(
    ("attack", "options"),
    [
        (apgd_targeted, dict(iterations=6, target_classes=3, seed=4)),
        (fab_targeted, dict(iterations=6, target_classes=3)),
        (square, dict(queries=40, seed=4)),
    ],
)
def test_components_are_batch_invariant_and_stay_in_the_ball(mlp_net, fake_purifier, batch, attack, options):
    model, x, y, ids = _stochastic(mlp_net, fake_purifier, batch)
    whole = attack(model, x, y, sample_ids=ids, eps=0.1, **options)
    part = attack(model, x[3:9], y[3:9], sample_ids=ids[3:9], eps=0.1, **options)
    torch.testing.assert_close(part.x_adv, whole.x_adv[3:9])
    assert torch.equal(part.success, whole.success[3:9])
    assert (lp_norm(whole.x_adv - x, "Linf") <= 0.1 + 1e-6).all()
    assert whole.x_adv.min() >= 0 and whole.x_adv.max() <= 1
    # attack-side queries never use the evaluation seed; judging success does
    grad_seeds = {seed for kind, _, seed, _ in fake_purifier.calls if kind == "purify_grad"}
    assert 121 not in grad_seeds and len(grad_seeds) > 6
    assert {seed for kind, _, seed, _ in fake_purifier.calls if kind == "purify"} == {121}


def test_square_breaks_samples_and_its_seed_matters(mlp_net, batch):
    x, ids = batch
    y = mlp_net(x).argmax(1)
    model = PlainClassifier(mlp_net)
    first = square(model, x, y, sample_ids=ids, eps=0.15, queries=200, seed=0)
    assert first.success.any()
    assert torch.equal(first.success, mlp_net(first.x_adv).argmax(1) != y)
    other = square(model, x, y, sample_ids=ids, eps=0.15, queries=200, seed=1)
    assert not torch.equal(other.x_adv, first.x_adv)


class _IterationLog:
    """A plain classifier that logs the iteration number of every surrogate call under the current stage name."""

    def __init__(self, net):
        self.net, self.stage, self.seen = net, None, {}

    def logits(self, x, *, sample_ids):
        with torch.no_grad():
            return self.net(x)

    def surrogate(self, x, *, sample_ids, iteration):
        self.seen.setdefault(self.stage, set()).add(iteration)
        return lambda x_var, *, draw: self.net(x_var)


def test_autoattack_standard_runs_each_attack_on_what_the_earlier_left(mlp_net, monkeypatch):
    x = torch.rand(48, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    ids = torch.arange(500, 548)
    y = mlp_net(x).argmax(1)
    y[:3] = (y[:3] + 1) % 10  # misclassified when clean: never attacked
    model = _IterationLog(mlp_net)
    attacked = {}

    def spy(name):
        real = getattr(autoattack_module, name)

        def run(model_, x_, y_, **kwargs):
            model.stage = name
            attacked[name] = kwargs["sample_ids"].clone()
            return real(model_, x_, y_, **kwargs)

        return run

    for name in ("apgd", "apgd_targeted", "fab_targeted", "square"):
        monkeypatch.setattr(autoattack_module, name, spy(name))
    result = autoattack_standard(
        model, x, y, sample_ids=ids, eps=0.06, iterations=10, target_classes=3, square_queries=50, seed=2
    )

    by = result.success_by
    assert list(by) == ["clean", "apgd-ce", "apgd-t", "fab-t", "square"]
    assert torch.equal(by["clean"], torch.arange(48) < 3)
    left = ~by["clean"]
    for stage, name in (("apgd-ce", "apgd"), ("apgd-t", "apgd_targeted"), ("fab-t", "fab_targeted")):
        assert set(attacked[name].tolist()) == set(ids[left].tolist())
        left = left & ~by[stage]
    assert by["apgd-ce"].any() and left.any()
    total = torch.stack(list(by.values())).sum(0)
    assert (total <= 1).all() and torch.equal(result.success, total == 1)  # disjoint masks, union = success
    broken = result.success & ~by["clean"]
    assert torch.equal(mlp_net(result.x_adv[broken]).argmax(1) != y[broken], torch.ones(int(broken.sum()), dtype=bool))
    assert (lp_norm(result.x_adv - x, "Linf") <= 0.06 + 1e-6).all()
    # every component draws its own noise: the iteration numbers of different components never meet
    stages = [s for s in model.seen if s is not None]
    for i, a in enumerate(stages):
        for b in stages[i + 1 :]:
            assert not model.seen[a] & model.seen[b], (a, b)


def test_worst_case_is_robust_only_where_every_attack_failed():
    x = torch.zeros(4, 1, 2, 2)
    rand = AttackResult(x_adv=x + 0.1, success=torch.tensor([True, False, False, True]))
    standard = AttackResult(x_adv=x + 0.2, success=torch.tensor([False, True, False, True]))
    both = worst_case({"rand": rand, "standard": standard})
    assert both.success.tolist() == [True, True, False, True]
    assert [v.item() for v in both.x_adv[:, 0, 0, 0]] == pytest.approx([0.1, 0.2, 0.2, 0.1])
    assert both.success_by["rand"] is rand.success and both.success_by["standard"] is standard.success
    with pytest.raises(ValueError, match="at least one"):
        worst_case({})
    with pytest.raises(ValueError, match="success mask"):
        worst_case({"rand": AttackResult(x_adv=x)})
    with pytest.raises(ValueError, match="shape"):
        worst_case({"rand": rand, "standard": AttackResult(x_adv=x[:2], success=rand.success[:2])})


@pytest.mark.parametrize(
    ("attack", "override", "error", "message"),
    [
        (apgd_targeted, dict(target_classes=10), ValueError, "target_classes"),
        (apgd_targeted, dict(target_classes=0), ValueError, "target_classes"),
        (fab_targeted, dict(target_classes=10), ValueError, "target_classes"),
        (fab_targeted, dict(alpha_max=1.5), ValueError, "alpha_max"),
        (fab_targeted, dict(beta=0.0), ValueError, "beta"),
        (fab_targeted, dict(eta=0.0), ValueError, "eta"),
        (square, dict(queries=0), ValueError, "queries"),
        (square, dict(p_init=0.0), ValueError, "p_init"),
        (square, dict(norm="L2"), ValueError, "5×5"),
        (autoattack_standard, dict(square_queries=0), ValueError, "square_queries"),
        (autoattack_standard, dict(eps=-1.0), ValueError, "eps"),
        (autoattack_standard, dict(norm="L2"), ValueError, "5×5"),
    ],
)
def test_bad_arguments_are_rejected(mlp_net, batch, attack, override, error, message):
    x, ids = batch
    y = mlp_net(x).argmax(1)
    with pytest.raises(error, match=message):
        attack(PlainClassifier(mlp_net), x, y, sample_ids=ids, **{"eps": 8 / 255, **override})


def test_square_needs_images(batch):
    x, ids = batch
    flat = x.flatten(1)
    net = torch.nn.Linear(48, 10)
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        square(PlainClassifier(net), flat, net(flat).argmax(1), sample_ids=ids, eps=8 / 255)
