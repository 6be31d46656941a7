"""The attacks against the real purifiers (DDPMPurifier, SSNI) with a tiny random ε-network."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ssni.attacks import AdaptiveSSNI, PurifiedClassifier, autoattack_rand, bpda_eot, pgd_eot
from ssni.attacks.threat import lp_norm

purify = pytest.importorskip("ssni.purify")
calibration_module = pytest.importorskip("ssni.calibration")
score_module = pytest.importorskip("ssni.score")

SIDE = 8


class TinyEps(nn.Module):
    """ε̂(x, label) = conv(x)·(1 + label/1000): a random, time-dependent, differentiable ε-network."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x, t):
        return torch.tanh(self.conv(x)) * (1 + t.reshape(-1, 1, 1, 1) / 1000)


def _frozen(net):
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


@pytest.fixture
def setting():
    eps_net = _frozen(TinyEps())
    torch.manual_seed(1)
    classifier = _frozen(nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, 10)))
    x = torch.rand(6, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(2))
    ids = torch.arange(40, 46)
    purifier = purify.DDPMPurifier(eps_net, t_star=8, grad_num_steps=2)
    y = classifier(purifier.purify(x, seed=121, sample_ids=ids)).argmax(1)
    clean = torch.rand(8, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(3))
    norms = score_module.eps_score_norm(eps_net, clean, 4, seed=0, sample_ids=torch.arange(8))
    calibration = calibration_module.Calibration.from_norms(
        norms, model_id="tiny", num_levels=4, resolution=(SIDE, SIDE), seed=0
    )
    ssni = purify.SSNI(purifier, calibration, reweight="sigmoid")
    return purifier, ssni, classifier, x, y, ids


def test_pgd_eot_through_the_ddpm_purifier_is_batch_invariant(setting):
    purifier, _, classifier, x, y, ids = setting
    model = PurifiedClassifier(purifier, classifier, seed=121)
    options = dict(iterations=2, eot=2, eps=0.1, step_size=0.03)
    result = pgd_eot(model, x, y, sample_ids=ids, check_success=True, **options)
    assert (lp_norm(result.x_adv - x, "Linf") <= 0.1 + 1e-6).all()
    assert (lp_norm(result.x_adv - x, "Linf") > 0.05).all()  # the gradients reach the input
    part = pgd_eot(model, x[2:4], y[2:4], sample_ids=ids[2:4], **options).x_adv
    torch.testing.assert_close(part, result.x_adv[2:4])
    assert result.success.dtype == torch.bool


def test_adaptive_pgd_on_ssni_recomputes_t_per_iteration(setting):
    _, ssni, classifier, x, y, ids = setting
    calls = []
    original = ssni.timesteps

    def counting(x_, **kwargs):
        calls.append(x_.clone())
        return original(x_, **kwargs)

    ssni.timesteps = counting
    model = AdaptiveSSNI(ssni, classifier, seed=121, num_steps=2)
    result = pgd_eot(model, x, y, sample_ids=ids, iterations=3, eot=2, eps=0.1, step_size=0.03, check_success=True)
    assert len(calls) == 3 + 1  # one per iteration, plus SSNI choosing t itself for the defended prediction
    assert (lp_norm(result.x_adv - x, "Linf") <= 0.1 + 1e-6).all()
    assert not torch.equal(calls[0], calls[2])


def test_autoattack_rand_on_ssni(setting):
    _, ssni, classifier, x, y, ids = setting
    model = AdaptiveSSNI(ssni, classifier, seed=121, num_steps=2)
    result = autoattack_rand(model, x, y, sample_ids=ids, iterations=2, eot=1, eps=0.1)
    assert torch.equal(result.success, model.logits(result.x_adv, sample_ids=ids).argmax(1) != y)
    assert (lp_norm(result.x_adv - x, "Linf") <= 0.1 + 1e-6).all()


def test_bpda_through_the_ddpm_purifier(setting):
    purifier, _, classifier, x, y, ids = setting
    model = PurifiedClassifier(purifier, classifier, seed=121)
    result = bpda_eot(model, x, y, sample_ids=ids, eps=8 / 255, iterations=2, eot=2)
    assert (lp_norm(result.x_adv - x, "Linf") <= 8 / 255 + 1e-6).all()
    assert not torch.equal(result.x_adv, x)


def test_adaptive_bpda_on_ssni(setting):
    _, ssni, classifier, x, y, ids = setting
    calls = []
    original = ssni.timesteps

    def counting(x_, **kwargs):
        calls.append(x_.clone())
        return original(x_, **kwargs)

    ssni.timesteps = counting
    result = bpda_eot(AdaptiveSSNI(ssni, classifier, seed=121), x, y, sample_ids=ids, eps=8 / 255, iterations=2, eot=3)
    assert len(calls) == 2  # once per iteration; the 3 BPDA draws purify with that t, not their own
    assert (lp_norm(result.x_adv - x, "Linf") <= 8 / 255 + 1e-6).all()
