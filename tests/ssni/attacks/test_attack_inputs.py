"""Bad arguments get clear errors; losses and projections against their formulas."""

from __future__ import annotations

import pytest
import torch

from ssni.attacks import PlainClassifier, apgd, autoattack_rand, bpda_eot, dlr, pgd_eot
from ssni.attacks.threat import ascent_direction, lp_norm, project

ATTACKS = {"pgd_eot": pgd_eot, "bpda_eot": bpda_eot, "apgd": apgd, "autoattack_rand": autoattack_rand}


def _bad_cases(x, y, ids):
    nan_x = x.clone()
    nan_x[0, 0, 0, 0] = float("nan")
    return [
        (dict(eps=-0.1), ValueError, "eps"),
        (dict(eps=float("inf")), ValueError, "eps"),
        (dict(norm="L1"), ValueError, "norm"),
        (dict(iterations=0), ValueError, "iterations"),
        (dict(iterations=2.5), TypeError, "iterations"),
        (dict(eot=0), ValueError, "eot"),
        (dict(x=x * 2), ValueError, r"\[0, 1\]"),
        (dict(x=x - 0.5), ValueError, r"\[0, 1\]"),
        (dict(x=nan_x), ValueError, "NaN"),
        (dict(x=x[:0], y=y[:0], sample_ids=ids[:0]), ValueError, "non-empty"),
        (dict(x=(x * 255).to(torch.uint8)), TypeError, "floating"),
        (dict(y=y.float()), TypeError, "y"),
        (dict(y=y[:-1]), ValueError, "y must have shape"),
        (dict(sample_ids=ids[:-1]), ValueError, "sample_ids"),
    ]


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_bad_arguments_are_rejected_with_a_clear_error(attack, linear_net, batch):
    x, ids = batch
    y = linear_net(x).argmax(1)
    for override, error, message in _bad_cases(x, y, ids):
        args = dict(x=x, y=y, sample_ids=ids, eps=0.1, eot=1, iterations=1) | override
        with pytest.raises(error, match=message):
            ATTACKS[attack](PlainClassifier(linear_net), args.pop("x"), args.pop("y"), **args)


@pytest.mark.parametrize(
    ("attack", "override", "message"),
    [
        ("pgd_eot", dict(step_size=0.0), "step_size"),
        ("pgd_eot", dict(l2_step="fast"), "l2_step"),
        ("apgd", dict(loss="hinge"), "loss"),
        ("apgd", dict(restarts=0), "restarts"),
        ("apgd", dict(momentum=1.5), "momentum"),
    ],
)
def test_attack_specific_arguments(attack, override, message, linear_net, batch):
    x, ids = batch
    y = linear_net(x).argmax(1)
    with pytest.raises(ValueError, match=message):
        ATTACKS[attack](PlainClassifier(linear_net), x, y, sample_ids=ids, eps=0.1, iterations=1, eot=1, **override)


def test_dlr_matches_its_formula_and_is_affine_invariant():
    z = torch.tensor([[3.0, 1.0, 2.0, 0.0], [0.5, 4.0, 1.0, 3.0]])
    y = torch.tensor([0, 2])
    # sample 0: y is the top class, best other 2, third 1 → −(3 − 2)/(3 − 1); sample 1: −(1 − 4)/(4 − 1)
    torch.testing.assert_close(dlr(z, y), torch.tensor([-0.5, 1.0]))
    torch.testing.assert_close(dlr(3.0 * z + 7.0, y), dlr(z, y))


def test_projection_and_directions():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 2, 3, 3, generator=g)
    far = torch.rand(4, 2, 3, 3, generator=g) * 3 - 1
    for norm, eps in (("Linf", 0.1), ("L2", 0.3)):
        p = project(far, x, norm, eps)
        assert (lp_norm(p - x, norm) <= eps * (1 + 1e-6)).all()
        assert p.min() >= 0 and p.max() <= 1
        inside = x + 0.01 * (far - x) / lp_norm(far - x, norm).reshape(-1, 1, 1, 1)
        torch.testing.assert_close(project(inside.clamp(0, 1), x, norm, eps), inside.clamp(0, 1))
    d = ascent_direction(far, "L2")
    torch.testing.assert_close(lp_norm(d, "L2"), torch.ones(4))
    assert torch.equal(ascent_direction(far, "Linf"), far.sign())
    assert torch.equal(ascent_direction(torch.zeros(2, 3), "L2"), torch.zeros(2, 3))  # no NaN at a zero gradient
