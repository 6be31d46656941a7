"""`defence.as_classifier`: a plain nn.Module that torchattacks and ssni's own attacks can attack directly.

Fakes check the contract (a fresh keyed draw per call, which path runs, where the gradient goes); the embedded
MNIST models check it end to end: one step of torchattacks' PGD on the module equals one step of ssni's PGD-EOT
on the same defence at the module's first-call seed, and ssni's AutoAttack runs through the module.
"""

from __future__ import annotations

import pytest
import torch

import ssni
from ssni.attacks import AdaptiveSSNI, PlainClassifier, autoattack_rand, derive_seed, pgd_eot
from ssni.attacks.defended import STREAM_EOT_DRAW, STREAM_MODULE_CALL, STREAM_SCORE
from ssni.attacks.interop import DefendedClassifier
from ssni.attacks.threat import lp_norm


def _call_seed(base: int, call: int) -> int:
    return derive_seed(base, STREAM_MODULE_CALL, call)


def test_every_call_is_a_fresh_keyed_draw_and_reset_repeats_them(mlp_net, batch, fake_purifier):
    x, _ = batch
    model = DefendedClassifier(fake_purifier, mlp_net, seed=5)
    with torch.no_grad():
        first, second = model(x), model(x)
    assert not torch.equal(first, second) and model.calls == 2
    seeds = [seed for _, _, seed, _ in fake_purifier.calls]
    assert seeds == [_call_seed(5, 0), _call_seed(5, 1)]
    assert all(torch.equal(ids, torch.arange(16)) for *_, ids in fake_purifier.calls)  # ids: positions in the call
    model.reset()
    with torch.no_grad():
        torch.testing.assert_close(model(x), first)
    model.reset(seed=6)
    with torch.no_grad():
        assert not torch.equal(model(x), first)


def test_no_grad_calls_run_the_defence_and_gradient_calls_its_surrogate(mlp_net, batch, fake_purifier):
    x, _ = batch
    model = DefendedClassifier(fake_purifier, mlp_net, seed=5)
    with torch.no_grad():
        logits = model(x)
    torch.testing.assert_close(logits, mlp_net(fake_purifier._apply(x, _call_seed(5, 0), torch.arange(16))))
    model(x)  # grad mode on, but x needs no gradient: the defence as evaluated
    assert [kind for kind, *_ in fake_purifier.calls] == ["purify", "purify"]

    xv = x.clone().requires_grad_(True)
    out = model(xv)
    kind, t, seed, _ = fake_purifier.calls[-1]
    assert (kind, t, seed) == ("purify_grad", None, derive_seed(_call_seed(5, 2), STREAM_EOT_DRAW, 0))
    (grad,) = torch.autograd.grad(out.sum(), xv)
    xr = x.clone().requires_grad_(True)
    expected = mlp_net(fake_purifier._apply(xr, seed, torch.arange(16))).sum()
    torch.testing.assert_close(grad, torch.autograd.grad(expected, xr)[0])


def test_bpda_forward_is_the_defence_and_its_gradient_goes_straight_through(mlp_net, batch, fake_purifier):
    x, _ = batch
    model = DefendedClassifier(fake_purifier, mlp_net, seed=5, gradient="bpda")
    xv = x.clone().requires_grad_(True)
    out = model(xv)
    assert {kind for kind, *_ in fake_purifier.calls} == {"purify"}
    purified = fake_purifier._apply(x, derive_seed(_call_seed(5, 0), STREAM_EOT_DRAW, 0), torch.arange(16))
    pv = purified.clone().requires_grad_(True)
    torch.testing.assert_close(torch.autograd.grad(out.sum(), xv)[0], torch.autograd.grad(mlp_net(pv).sum(), pv)[0])
    with pytest.raises(ValueError, match="gradient"):
        DefendedClassifier(fake_purifier, mlp_net, seed=5, gradient="exact")


def test_ssni_recomputes_t_at_every_call(mlp_net, batch, fake_ssni):
    x, _ = batch
    model = DefendedClassifier(fake_ssni, mlp_net, seed=3)
    model(x.clone().requires_grad_(True))
    model(x.clone().requires_grad_(True))
    assert len(fake_ssni.timesteps_inputs) == 2
    purify_t = [t for kind, t, *_ in fake_ssni.calls if kind == "purify_grad"]
    assert all(torch.equal(t, u) for t, u in zip(purify_t, fake_ssni.timesteps_outputs))


@pytest.fixture(scope="module")
def mnist():
    """The embedded MNIST models, SSNI-N at a small t* (10) with a 2-step surrogate, 4 test images."""
    from ssni.data.mnist import load_mnist

    torch.manual_seed(0)
    diffusion, classifier = ssni.models.load("mnist-ddpm"), ssni.models.load("mnist-classifier")
    for p in [*diffusion.parameters(), *classifier.parameters()]:
        p.requires_grad_(False)
    calibration = ssni.Calibration.load(ssni.embedded_calibration("mnist-ddpm"))
    defence = ssni.SSNI(ssni.DDPMPurifier(diffusion, t_star=10, grad_num_steps=2), calibration)
    test = load_mnist("test")
    return defence, classifier.eval(), test.images[:4], test.labels[:4]


def test_torchattacks_pgd_on_the_module_equals_ssni_pgd(mnist):
    torchattacks = pytest.importorskip("torchattacks")
    defence, classifier, x, y = mnist
    model = defence.as_classifier(classifier, seed=121)
    x_ta = torchattacks.PGD(model, eps=0.3, alpha=0.3, steps=1, random_start=False)(x, y)
    assert model.calls == 1
    # ssni's one-step PGD-EOT against the same defence at the module's call-0 seed: same t, noise, gradient sign
    ours = pgd_eot(
        AdaptiveSSNI(defence, classifier, _call_seed(121, 0)), x, y, sample_ids=torch.arange(4), eps=0.3,
        step_size=0.3, iterations=1, eot=1,
    ).x_adv  # fmt: skip
    torch.testing.assert_close(x_ta, ours, rtol=0, atol=1e-6)
    assert (lp_norm(x_ta - x, "Linf") <= 0.3 + 1e-6).all() and not torch.equal(x_ta, x)
    assert not (model.training or classifier.training)  # torchattacks restores the (eval) mode it found


def test_ssni_autoattack_runs_through_the_module(mnist):
    defence, classifier, x, y = mnist
    model = defence.as_classifier(classifier, seed=7)
    scores = []
    original = defence.timesteps

    def seen(x_, *, seed, sample_ids=None):
        scores.append(seed)
        return original(x_, seed=seed, sample_ids=sample_ids)

    defence.timesteps = seen
    try:
        result = autoattack_rand(PlainClassifier(model), x, y, sample_ids=torch.arange(4), eps=0.2, iterations=2,
                                 eot=1, seed=0)  # fmt: skip
    finally:
        del defence.timesteps
    assert result.x_adv.shape == x.shape and result.success.dtype == torch.bool
    assert (lp_norm(result.x_adv - x, "Linf") <= 0.2 + 1e-6).all()
    assert model.calls == len(scores) > 2  # SSNI's t from every call's own input and noise
    calls = [_call_seed(7, k) for k in range(model.calls)]
    assert set(scores) <= set(calls) | {derive_seed(c, STREAM_SCORE, 0) for c in calls}
