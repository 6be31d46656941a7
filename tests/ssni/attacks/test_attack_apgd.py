"""APGD-CE / APGD-DLR and AutoAttack-rand: schedule, strength against PGD, threat model, composition."""

from __future__ import annotations

import importlib

import pytest
import torch

from ssni.attacks import PlainClassifier, PurifiedClassifier, apgd, apgd_checkpoints, autoattack_rand, pgd_eot
from ssni.attacks.defended import STREAM_RANDOM_START, derive_seed
from ssni.attacks.threat import lp_norm, random_start

autoattack_module = importlib.import_module("ssni.attacks.autoattack")


def test_checkpoints_follow_the_paper():
    # p = 0, .22, .41, .57, .70, .80, .87, .93, .99 of N (Croce & Hein 2020, §3.2)
    assert apgd_checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert apgd_checkpoints(200) == [44, 82, 114, 140, 160, 174, 186, 198]
    assert apgd_checkpoints(1) == [1]


def _robust_accuracy(result):
    return 1.0 - result.success.float().mean().item()


@pytest.mark.parametrize(("norm", "eps"), [("Linf", 0.05), ("L2", 0.35)])
def test_apgd_beats_or_matches_pgd_and_respects_the_ball(mlp_net, norm, eps):
    x = torch.rand(64, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    ids = torch.arange(64)
    y = mlp_net(x).argmax(1)
    model = PlainClassifier(mlp_net)
    options = dict(sample_ids=ids, norm=norm, eps=eps, iterations=20, eot=1, check_success=True)
    pgd = _robust_accuracy(pgd_eot(model, x, y, **options))
    for loss in ("ce", "dlr"):
        result = apgd(model, x, y, loss=loss, seed=1, **options)
        assert _robust_accuracy(result) <= pgd
        distance = lp_norm(result.x_adv - x, norm)
        assert (distance <= eps * (1 + 1e-5)).all()
        assert result.x_adv.min() >= 0 and result.x_adv.max() <= 1
        assert torch.equal(result.success, mlp_net(result.x_adv).argmax(1) != y)
    assert _robust_accuracy(apgd(model, x, y, loss="dlr", seed=1, **options)) < 1.0


def test_apgd_without_random_start_and_with_restarts(mlp_net, batch):
    x, ids = batch
    y = mlp_net(x).argmax(1)
    model = PlainClassifier(mlp_net)
    one = apgd(model, x, y, sample_ids=ids, eps=0.05, iterations=10, eot=1, check_success=True)
    three = apgd(model, x, y, sample_ids=ids, eps=0.05, iterations=10, eot=1, restarts=3, check_success=True)
    assert (three.success | ~one.success).all()  # restarts only add successes (same first run)
    fixed = apgd(model, x, y, sample_ids=ids, eps=0.05, iterations=10, eot=1, random_init=False)
    assert (lp_norm(fixed.x_adv - x, "Linf") <= 0.05 + 1e-6).all()
    with pytest.raises(ValueError, match="random_init"):
        apgd(model, x, y, sample_ids=ids, eps=8 / 255, restarts=2, random_init=False)


def test_apgd_first_step_and_random_start(linear_net, batch):
    """One iteration from the random start: z = Π(x0 + 2ε·sign(g(x0))), no momentum at the first step."""
    x, ids = batch
    y = linear_net(x).argmax(1)
    eps = 0.03
    x0 = random_start(x, "Linf", eps, seed=4, sample_ids=ids, restart=0)
    assert (lp_norm(x0 - x, "Linf") <= eps + 1e-7).all()
    mid = torch.full_like(x, 0.5)  # no [0, 1] clamping: the start lies on the sphere ||u||_inf = eps
    torch.testing.assert_close(lp_norm(random_start(mid, "Linf", eps, seed=4, sample_ids=ids, restart=0) - mid, "Linf"),
                               torch.full((x.shape[0],), eps))  # fmt: skip
    xv = x0.clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(linear_net(xv), y, reduction="sum")
    (g,) = torch.autograd.grad(loss, xv)
    x1 = (x + (x0 + 2 * eps * g.sign() - x).clamp(-eps, eps)).clamp(0, 1)
    # a linear model's CE along a sign step only increases, so x1 is the best (or a fooling) iterate
    result = apgd(PlainClassifier(linear_net), x, y, sample_ids=ids, eps=eps, iterations=1, eot=1, seed=4)
    torch.testing.assert_close(result.x_adv, x1)


def test_random_start_is_batch_invariant_and_seeded(batch):
    x, ids = batch
    a = random_start(x, "L2", 0.5, seed=9, sample_ids=ids, restart=0)
    b = random_start(x[3:7], "L2", 0.5, seed=9, sample_ids=ids[3:7], restart=0)
    torch.testing.assert_close(a[3:7], b)
    assert not torch.equal(a, random_start(x, "L2", 0.5, seed=9, sample_ids=ids, restart=1))
    assert (lp_norm(a - x, "L2") <= 0.5 + 1e-5).all()


def test_apgd_is_batch_invariant_on_a_stochastic_defence(mlp_net, batch, fake_purifier):
    x, ids = batch
    y = mlp_net(x).argmax(1)
    model = PurifiedClassifier(fake_purifier, mlp_net, seed=121)
    options = dict(loss="dlr", eps=0.05, iterations=5, eot=2, seed=3)
    whole = apgd(model, x, y, sample_ids=ids, **options).x_adv
    part = apgd(model, x[4:9], y[4:9], sample_ids=ids[4:9], **options).x_adv
    torch.testing.assert_close(part, whole[4:9])


def test_autoattack_rand_runs_dlr_only_on_what_ce_left(mlp_net, monkeypatch):
    x = torch.rand(64, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    ids = torch.arange(1000, 1064)
    net_y = mlp_net(x).argmax(1)
    y = net_y.clone()
    y[:4] = (y[:4] + 1) % 10  # four points misclassified when clean
    calls = []
    real_apgd = autoattack_module.apgd

    def spy(model, x_, y_, **kwargs):
        result = real_apgd(model, x_, y_, **kwargs)
        success = mlp_net(result.x_adv).argmax(1) != y_
        calls.append((kwargs["loss"], kwargs["sample_ids"].clone(), kwargs["seed"], kwargs["first_iteration"], success))
        return result

    monkeypatch.setattr(autoattack_module, "apgd", spy)
    model = PlainClassifier(mlp_net)
    result = autoattack_rand(model, x, y, sample_ids=ids, eps=0.05, iterations=20, eot=1, seed=8)

    (ce_loss, ce_ids, ce_seed, ce_first, ce), (dlr_loss, dlr_ids, dlr_seed, dlr_first, dlr) = calls
    assert (ce_loss, dlr_loss) == ("ce", "dlr")
    assert set(ce_ids.tolist()) == set(ids[4:].tolist())  # clean errors are not attacked
    assert set(dlr_ids.tolist()) == set(ce_ids[~ce].tolist())  # DLR only where CE failed
    assert ce_seed == derive_seed(8, STREAM_RANDOM_START, 0) and dlr_seed == derive_seed(8, STREAM_RANDOM_START, 1)
    assert (ce_first, dlr_first) == (0, 21)  # fresh EOT draws for the second stage

    by = result.success_by
    assert by["clean"].sum() == 4 and by["apgd-ce"].sum() == ce.sum()
    assert by["apgd-dlr"].sum() == dlr.sum()
    assert torch.equal(result.success, by["clean"] | by["apgd-ce"] | by["apgd-dlr"])
    # worst case per sample, and x_adv is the point that fooled the defence
    assert torch.equal(result.success, mlp_net(result.x_adv).argmax(1) != y)
    assert torch.equal(result.x_adv[:4], x[:4])
    assert (lp_norm(result.x_adv - x, "Linf") <= 0.05 + 1e-6).all()
    assert by["apgd-ce"].any() and by["apgd-dlr"].any()


def test_dlr_needs_three_classes(batch):
    x, ids = batch
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 2)).eval()
    y = torch.zeros(x.shape[0], dtype=torch.int64)
    with pytest.raises(ValueError, match="3 classes"):
        apgd(PlainClassifier(net), x, y, sample_ids=ids, loss="dlr", eps=8 / 255, iterations=1, eot=1)


class _BowlDefence:
    """CE maximal at an interior point c of the ball, never misclassified: logits (1 + 10·||x − c||², 0) with label
    0, so CE = log(1 + exp(−1 − 10·||x − c||²)) peaks at c; a fixed large step oscillates around c."""

    def __init__(self, centre):
        self.centre = centre

    def _logits(self, x):
        d2 = (x - self.centre).flatten(1).pow(2).sum(1)
        return torch.stack([1.0 + 10.0 * d2, torch.zeros_like(d2)], dim=1)

    def logits(self, x, *, sample_ids):
        return self._logits(x)

    def surrogate(self, x, *, sample_ids, iteration):
        return lambda xv, *, draw: self._logits(xv)


def test_step_size_halving_converges_to_an_interior_maximum():
    x = torch.full((2, 1, 4, 4), 0.5)
    direction = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    centre = x + 0.2 * direction / direction.flatten(1).norm(dim=1).reshape(-1, 1, 1, 1)
    y = torch.zeros(2, dtype=torch.int64)
    model = _BowlDefence(centre)
    result = apgd(model, x, y, sample_ids=torch.arange(2), norm="L2", eps=0.5, iterations=50, eot=1, seed=0)
    # the first step is 2ε = 1.0 long; only the halvings at the checkpoints can bring the iterate this close
    assert (lp_norm(result.x_adv - centre, "L2") < 0.01).all()  # without halving: 0.065, 0.098
    pgd = pgd_eot(model, x, y, sample_ids=torch.arange(2), norm="L2", eps=0.5, iterations=50, eot=1, step_size=1.0)
    assert (lp_norm(pgd.x_adv - centre, "L2") > 0.1).all()


def test_non_finite_gradients_raise(batch):
    x, ids = batch

    class Broken:
        def logits(self, x_, *, sample_ids):
            return torch.zeros(x_.shape[0], 10)

        def surrogate(self, x_, *, sample_ids, iteration):
            return lambda xv, *, draw: xv.flatten(1)[:, :10] * float("nan")

    with pytest.raises(FloatingPointError, match="iteration 0"):
        apgd(Broken(), x, torch.zeros(16, dtype=torch.int64), sample_ids=ids, eps=8 / 255, iterations=2, eot=1)


def test_a_constant_t_follows_autoattacks_subsets(mlp_net, batch, fake_purifier):
    x, ids = batch
    y = mlp_net(x).argmax(1)
    model = PurifiedClassifier(fake_purifier, mlp_net, seed=0, t=5)
    result = autoattack_rand(model, x, y, sample_ids=ids, eps=0.3, iterations=3, eot=1)
    sizes = set()
    for _, t, _, sample_ids in fake_purifier.calls:
        assert torch.equal(t, torch.full((sample_ids.shape[0],), 5))
        sizes.add(sample_ids.shape[0])
    assert len(sizes) > 1  # the second stage ran on fewer samples
    assert result.success.any()
    with pytest.raises(TypeError, match="t must be"):
        PurifiedClassifier(fake_purifier, mlp_net, seed=0, t=torch.full((16,), 5))


@pytest.mark.parametrize(
    ("attack", "name"),
    [
        ("apgd", "APGD"),
        ("apgd_targeted", "APGD-T"),
        ("autoattack_rand", "AutoAttack rand"),
        ("autoattack_standard", "AutoAttack standard"),
        ("fab_targeted", "FAB-T"),
        ("square", "Square"),
    ],
)
def test_every_attack_needs_its_radius(attack, name, mlp_net):
    """No attack guesses eps (8/255 is CIFAR-10's radius, 0.3 MNIST's, 4/255 ImageNet's): None is an error naming it,
    and leaving it out is a TypeError."""
    import ssni.attacks as attacks

    fn = getattr(attacks, attack)
    x, ids = torch.rand(2, 1, 8, 8), torch.arange(2)
    y = torch.zeros(2, dtype=torch.int64)
    with pytest.raises(ValueError, match=f"{name} needs eps"):
        fn(PlainClassifier(mlp_net), x, y, sample_ids=ids, eps=None)
    with pytest.raises(TypeError, match="eps"):
        fn(PlainClassifier(mlp_net), x, y, sample_ids=ids)
