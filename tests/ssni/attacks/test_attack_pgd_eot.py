"""PGD-EOT: it attacks, stays in the threat model, averages EOT gradients, is batch-invariant; eps is required and
the random start is uniform in the ball."""

from __future__ import annotations

import pytest
import torch

from ssni.attacks import PlainClassifier, PurifiedClassifier, bpda_eot, derive_seed, eot_gradient, pgd_eot
from ssni.attacks.defended import STREAM_EOT_DRAW
from ssni.attacks.losses import cross_entropy
from ssni.attacks.threat import lp_norm, uniform_in_ball


def _accuracy(net, x, y):
    return (net(x).argmax(1) == y).float().mean().item()


@pytest.mark.parametrize(
    ("norm", "eps", "step_size", "l2_step"),
    [("Linf", 0.1, 0.01, "normalized"), ("L2", 1.0, 0.1, "normalized"), ("L2", 1.0, 0.02, "sign")],
)
def test_pgd_reduces_accuracy_and_respects_the_ball(linear_net, batch, norm, eps, step_size, l2_step):
    x, ids = batch
    y = linear_net(x).argmax(1)
    result = pgd_eot(
        PlainClassifier(linear_net),
        x,
        y,
        sample_ids=ids,
        norm=norm,
        eps=eps,
        iterations=30,
        eot=1,
        step_size=step_size,
        l2_step=l2_step,
        check_success=True,
    )
    x_adv = result.x_adv
    assert _accuracy(linear_net, x, y) == 1.0
    assert _accuracy(linear_net, x_adv, y) <= 0.5
    distance = lp_norm(x_adv - x, norm)
    assert (distance <= eps * (1 + 1e-5)).all()
    assert (distance >= eps * 0.99).any()  # the projection was active
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert torch.equal(result.success, linear_net(x_adv).argmax(1) != y)


def test_one_iteration_is_a_sign_step_on_the_mean_eot_gradient(mlp_net, batch, fake_purifier):
    x, ids = batch
    y = mlp_net(x).argmax(1)
    model = PurifiedClassifier(fake_purifier, mlp_net, seed=121)
    x_adv = pgd_eot(model, x, y, sample_ids=ids, eot=4, iterations=1, step_size=0.01, eps=8 / 255).x_adv

    grads = []
    for draw in range(4):  # iteration 0 uses draws 0..3
        xv = x.clone().requires_grad_(True)
        purified = fake_purifier._apply(xv, derive_seed(121, STREAM_EOT_DRAW, draw), ids)
        (g,) = torch.autograd.grad(cross_entropy(mlp_net(purified), y).sum(), xv)
        grads.append(g)
    mean_grad = torch.stack(grads).mean(0)
    expected = (x + torch.clamp(0.01 * mean_grad.sign(), -8 / 255, 8 / 255)).clamp(0, 1)
    torch.testing.assert_close(x_adv, expected)
    # A single draw's gradient would give a different step: the average matters.
    assert not torch.equal(grads[0].sign(), mean_grad.sign())


def test_eot_gradient_is_the_average_of_draw_gradients(mlp_net, batch):
    x, _ = batch
    y = mlp_net(x).argmax(1)
    weights = {d: torch.randn(*x.shape[1:], generator=torch.Generator().manual_seed(d)) for d in range(10, 15)}

    def stochastic(xv, *, draw):  # a different random model for every draw
        return mlp_net(xv * weights[draw].sigmoid())

    got = eot_gradient(stochastic, x, y, cross_entropy, eot=5, iteration=2)  # draws 10..14
    manual_grad, manual_loss, manual_logits = 0, 0, 0
    for d in range(10, 15):
        xv = x.clone().requires_grad_(True)
        logits = stochastic(xv, draw=d)
        loss = cross_entropy(logits, y)
        manual_grad = manual_grad + torch.autograd.grad(loss.sum(), xv)[0] / 5
        manual_loss = manual_loss + loss.detach() / 5
        manual_logits = manual_logits + logits.detach() / 5
    torch.testing.assert_close(got.grad, manual_grad)
    torch.testing.assert_close(got.loss, manual_loss)
    torch.testing.assert_close(got.logits, manual_logits)


def test_every_draw_of_every_iteration_gets_its_own_seed(mlp_net, batch, fake_purifier):
    x, ids = batch
    y = mlp_net(x).argmax(1)
    pgd_eot(PurifiedClassifier(fake_purifier, mlp_net, seed=7), x, y, sample_ids=ids, eps=0.1, iterations=3, eot=4)
    seeds = [seed for kind, _, seed, _ in fake_purifier.calls if kind == "purify_grad"]
    assert seeds == [derive_seed(7, STREAM_EOT_DRAW, d) for d in range(12)]
    assert len(set(seeds)) == 12


def test_pgd_eot_is_batch_invariant(mlp_net, batch, fake_purifier):
    x, ids = batch
    y = mlp_net(x).argmax(1)
    model = PurifiedClassifier(fake_purifier, mlp_net, seed=121)
    options = dict(iterations=4, eot=3, eps=0.1, step_size=0.02)
    whole = pgd_eot(model, x, y, sample_ids=ids, **options).x_adv
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(3))
    shuffled = pgd_eot(model, x[perm], y[perm], sample_ids=ids[perm], **options).x_adv
    torch.testing.assert_close(shuffled, whole[perm])
    single = pgd_eot(model, x[5:6], y[5:6], sample_ids=ids[5:6], **options).x_adv
    torch.testing.assert_close(single, whole[5:6])


def test_defended_prediction_uses_the_base_seed(mlp_net, batch, fake_purifier):
    x, ids = batch
    y = mlp_net(x).argmax(1)
    result = pgd_eot(
        PurifiedClassifier(fake_purifier, mlp_net, seed=121), x, y, sample_ids=ids, eps=0.1, iterations=1, eot=1,
        check_success=True,
    )  # fmt: skip
    kind, t, seed, _ = fake_purifier.calls[-1]
    assert (kind, t, seed) == ("purify", None, 121)
    expected = mlp_net(fake_purifier._apply(result.x_adv, 121, ids)).argmax(1) != y
    assert torch.equal(result.success, expected)


def test_progress_callback_and_zero_eps(linear_net, batch):
    x, ids = batch
    y = linear_net(x).argmax(1)
    seen = []
    result = pgd_eot(PlainClassifier(linear_net), x, y, sample_ids=ids, eps=0.0, iterations=3, eot=1,
                     on_iteration=seen.append)  # fmt: skip
    assert seen == [0, 1, 2]
    assert torch.equal(result.x_adv, x)
    assert result.success is None


def test_derive_seed_separates_runs_streams_and_draws():
    seeds = {derive_seed(base, stream, i) for base in (121, 122, 123) for stream in (1, 2, 3) for i in range(50)}
    assert len(seeds) == 3 * 3 * 50
    assert all(0 <= s < 2**63 for s in seeds)
    assert derive_seed(121, 1, 0) == derive_seed(121, 1, 0)


def test_l2_sign_quirk_is_a_sign_step_then_the_l2_projection(linear_net, batch):
    x, ids = batch
    y = linear_net(x).argmax(1)
    model = PlainClassifier(linear_net)
    xv = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(cross_entropy(linear_net(xv), y).sum(), xv)
    got = pgd_eot(model, x, y, sample_ids=ids, norm="L2", eps=0.05, iterations=1, eot=1, l2_step="sign").x_adv
    delta = 0.007 * g.sign()
    scale = (0.05 / delta.flatten(1).norm(dim=1)).clamp(max=1).reshape(-1, 1, 1, 1)
    torch.testing.assert_close(got, (x + delta * scale).clamp(0, 1))
    textbook = pgd_eot(model, x, y, sample_ids=ids, norm="L2", eps=0.05, iterations=1, eot=1).x_adv
    step = 0.007 * g / g.flatten(1).norm(dim=1).reshape(-1, 1, 1, 1)
    torch.testing.assert_close(textbook, (x + step).clamp(0, 1))


def test_eps_has_no_default(linear_net, batch):
    """No silent CIFAR-10 radius on other data: a missing or None eps is an error naming it."""
    x, ids = batch
    y = linear_net(x).argmax(1)
    with pytest.raises(TypeError, match="eps"):
        pgd_eot(PlainClassifier(linear_net), x, y, sample_ids=ids, iterations=1, eot=1)
    with pytest.raises(ValueError, match="needs eps, the radius of the L2 threat ball"):
        pgd_eot(PlainClassifier(linear_net), x, y, sample_ids=ids, norm="L2", eps=None, iterations=1, eot=1)
    with pytest.raises(ValueError, match="needs eps"):
        bpda_eot(PlainClassifier(linear_net), x, y, sample_ids=ids, eps=None, iterations=1, eot=1)


@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_uniform_start_fills_the_ball_and_is_keyed(norm):
    """Madry's start: Linf pixels U(−ε, ε); L2 radius r with (r/ε)^d ~ U(0, 1); keyed on (seed, sample id)."""
    x, eps = torch.full((512, 1, 4, 4), 0.5), 0.2  # far from the [0, 1] box: no clamping
    ids = torch.arange(512)
    start = uniform_in_ball(x, norm, eps, seed=3, sample_ids=ids)
    delta = start - x
    assert (lp_norm(delta, norm) <= eps * (1 + 1e-5)).all()
    if norm == "Linf":
        u = (delta / eps).flatten()
        assert abs(u.mean().item()) < 0.02 and abs((u.abs() < 0.5).float().mean().item() - 0.5) < 0.02
    else:
        fraction = (lp_norm(delta, "L2") / eps) ** x[0].numel()  # uniform in the ball ⇔ U(0, 1)
        assert abs(fraction.mean().item() - 0.5) < 0.05 and fraction.min() < 0.1
    perm = torch.randperm(512, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(uniform_in_ball(x[perm], norm, eps, seed=3, sample_ids=ids[perm]), start[perm])
    assert not torch.equal(uniform_in_ball(x, norm, eps, seed=4, sample_ids=ids), start)


def test_random_start_is_seeded_and_optional(linear_net, batch):
    x, ids = batch
    y = linear_net(x).argmax(1)
    model = PlainClassifier(linear_net)
    budget = dict(sample_ids=ids, eps=0.05, iterations=1, eot=1, step_size=1e-4)
    plain = pgd_eot(model, x, y, **budget).x_adv
    started = pgd_eot(model, x, y, random_start=True, seed=9, **budget).x_adv
    assert torch.equal(pgd_eot(model, x, y, random_start=True, seed=9, **budget).x_adv, started)
    assert (lp_norm(started - plain, "Linf") > 0.01).all()  # far from x after a 1e-4 step: the start moved it
    assert (lp_norm(started - x, "Linf") <= 0.05 + 1e-6).all()
    with pytest.raises(ValueError, match="random_start=True needs seed"):
        pgd_eot(model, x, y, random_start=True, **budget)


def test_a_custom_defended_prediction_judges_success(mlp_net, batch, fake_purifier):
    """e.g. GNS's majority vote: `predict` replaces classifier(purify(x)) for success, not for gradients."""
    x, ids = batch
    y = mlp_net(x).argmax(1)
    seen = []

    def always_class_zero(x_, *, sample_ids):
        seen.append(sample_ids.clone())
        return torch.nn.functional.one_hot(torch.zeros_like(sample_ids), 10).float()

    model = PurifiedClassifier(fake_purifier, mlp_net, seed=1, predict=always_class_zero)
    result = pgd_eot(model, x, y, sample_ids=ids, eps=0.1, iterations=1, eot=1, check_success=True)
    assert torch.equal(result.success, y != 0)
    assert len(seen) == 1 and torch.equal(seen[0], ids)
    assert {kind for kind, *_ in fake_purifier.calls} == {"purify_grad"}
