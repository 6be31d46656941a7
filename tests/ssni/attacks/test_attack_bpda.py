"""BPDA: the straight-through gradient is the classifier gradient at the purified point."""

from __future__ import annotations

import pytest
import torch

from ssni.attacks import AdaptiveSSNI, PlainClassifier, PurifiedClassifier, bpda_eot, derive_seed, straight_through
from ssni.attacks.defended import STREAM_EOT_DRAW
from ssni.attacks.losses import cross_entropy
from ssni.attacks.threat import lp_norm


def test_straight_through_forward_is_purified_backward_is_identity():
    x = torch.rand(2, 3, requires_grad=True)
    purified = torch.rand(2, 3)
    out = straight_through(x, purified)
    assert torch.equal(out, purified)
    weights = torch.randn(2, 3)
    (g,) = torch.autograd.grad((out * weights).sum(), x)
    assert torch.equal(g, weights)


def test_bpda_gradient_equals_classifier_gradient_at_the_purified_point(mlp_net, batch, fake_purifier):
    x, ids = batch
    y = mlp_net(x).argmax(1)
    model = PurifiedClassifier(fake_purifier, mlp_net, seed=5, gradient="bpda")
    surrogate = model.surrogate(x, sample_ids=ids, iteration=0)
    xv = x.clone().requires_grad_(True)
    (g_bpda,) = torch.autograd.grad(cross_entropy(surrogate(xv, draw=3), y).sum(), xv)

    purified = fake_purifier._apply(x, derive_seed(5, STREAM_EOT_DRAW, 3), ids).requires_grad_(True)
    (g_ref,) = torch.autograd.grad(cross_entropy(mlp_net(purified), y).sum(), purified)
    torch.testing.assert_close(g_bpda, g_ref)

    # The full gradient differs: it includes the purifier's Jacobian 0.8 + 0.3·cos(6x).
    full = model.with_gradient("full").surrogate(x, sample_ids=ids, iteration=0)
    xv = x.clone().requires_grad_(True)
    (g_full,) = torch.autograd.grad(cross_entropy(full(xv, draw=3), y).sum(), xv)
    torch.testing.assert_close(g_full, g_ref * (0.8 + 0.3 * torch.cos(6 * x)))


def test_bpda_eot_purifies_without_gradient_and_stays_in_the_ball(mlp_net, batch, fake_purifier):
    x, ids = batch
    y = mlp_net(x).argmax(1)
    model = PurifiedClassifier(fake_purifier, mlp_net, seed=5)  # full gradients by default
    result = bpda_eot(model, x, y, sample_ids=ids, iterations=3, eot=2, eps=0.05)
    kinds = {kind for kind, *_ in fake_purifier.calls}
    assert kinds == {"purify"}
    assert (lp_norm(result.x_adv - x, "Linf") <= 0.05 + 1e-6).all()
    assert not torch.equal(result.x_adv, x)


def test_bpda_works_with_the_adaptive_adapter(mlp_net, batch, fake_ssni):
    x, ids = batch
    y = mlp_net(x).argmax(1)
    bpda_eot(AdaptiveSSNI(fake_ssni, mlp_net, seed=1), x, y, sample_ids=ids, eps=0.1, iterations=2, eot=3)
    assert len(fake_ssni.timesteps_inputs) == 2
    purify_ts = [t for kind, t, *_ in fake_ssni.calls if kind == "purify"]
    assert len(purify_ts) == 6 and all(t is not None for t in purify_ts)


def test_bpda_mode_of_a_plain_classifier_is_itself_and_bad_modes_fail(linear_net, fake_purifier):
    model = PlainClassifier(linear_net)
    assert model.with_gradient("bpda") is model
    with pytest.raises(ValueError, match="gradient"):
        PurifiedClassifier(fake_purifier, linear_net, seed=0, gradient="none")
    with pytest.raises(ValueError, match="gradient"):
        model.with_gradient("straight")


def test_straight_through_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shape"):
        straight_through(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 4, 4))
    with pytest.raises(TypeError, match="dtype"):
        straight_through(torch.rand(2, 3), torch.rand(2, 3, dtype=torch.float64))


@pytest.mark.parametrize(("schedule", "host_steps", "ssni_n_steps"), [("defence", 10, 12), ("surrogate", 3, 5)])
def test_bpda_forward_schedule_is_a_named_choice(tiny_eps, schedule, host_steps, ssni_n_steps):
    """ "defence": Lee & Kim (attack schedule = defence schedule); "surrogate": the authors' SSNI BPDA forward, the
    attack schedule (n_att, and n_att + b for SSNI-N) without gradient."""
    from ssni import SSNI, Calibration, DDPMPurifier
    from ssni.attacks.adapters import purified_surrogate

    model = tiny_eps(channels=3)
    x, ids = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0)), torch.tensor([1, 2])
    classifier = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 10))
    host = DDPMPurifier(model, t_star=10, num_steps=10, grad_num_steps=3)
    cal = Calibration.from_norms(torch.tensor([1.0, 2.0]), model_id="m", num_levels=1, resolution=(4, 4), seed=0)
    for defence, t, steps in ((host, [10, 10], host_steps), (SSNI(host, cal, bias=2), [10, 12], ssni_n_steps)):
        model.labels.clear()
        f = purified_surrogate(
            defence, classifier, torch.tensor(t), seed=1, sample_ids=ids, num_steps=None, gradient="bpda",
            bpda_schedule=schedule,
        )  # fmt: skip
        f(x.clone().requires_grad_(True), draw=0)
        assert len(model.labels) == steps  # one network call per step of the longest walk
    with pytest.raises(ValueError, match="bpda_schedule"):
        PurifiedClassifier(host, classifier, seed=1, bpda_schedule="attack")
