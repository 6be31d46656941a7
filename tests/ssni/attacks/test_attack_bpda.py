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
    bpda_eot(AdaptiveSSNI(fake_ssni, mlp_net, seed=1), x, y, sample_ids=ids, iterations=2, eot=3)
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
