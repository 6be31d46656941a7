"""The score-aware attack: each link of its gradient path against finite differences (float64, tiny ε-network), the
objectives and seeds, and on the embedded MNIST models, lower e(x) and t than the adaptive attack at equal budget."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import ssni_kernels
from ssni import SSNI, Calibration, DDPMPurifier
from ssni.attacks import AdaptiveSSNI, ScoreAwareConfig, ScoreAwareSSNI, derive_seed, pgd_eot, score_aware_pgd
from ssni.attacks.defended import STREAM_EOT_DRAW, STREAM_SCORE
from ssni.attacks.score_aware import interpolated_purify
from ssni.reweight import linear_t, linear_t_continuous, sigmoid_t, sigmoid_t_continuous
from ssni.score import eps_score_norm, score_levels

SIZE = 4
LEVELS = 3
IDS = torch.tensor([5, 2])


def _float64_eps(tiny_eps) -> nn.Module:
    net = tiny_eps().double()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def _x64(batch: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return (0.1 + 0.8 * torch.rand(batch, 1, SIZE, SIZE, generator=g, dtype=torch.float64)).requires_grad_(True)


@pytest.fixture
def tiny_ssni(tiny_eps):
    """SSNI-N (τ wide enough that t is not saturated) around a float64 DDPM host with a 2-step surrogate."""
    net = _float64_eps(tiny_eps)
    norms = eps_score_norm(net, _x64(4).detach(), LEVELS, seed=0)
    cal = Calibration.from_norms(norms, model_id="tiny", num_levels=LEVELS, resolution=(SIZE, SIZE), seed=0)
    purifier = DDPMPurifier(net, t_star=20, grad_num_steps=2)
    return SSNI(purifier, cal, tau=max(cal.std, 1.0), chunk_size=2 * LEVELS)


@pytest.fixture
def tiny_classifier():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(SIZE * SIZE, 10)).double()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


# ------------------------------------------------------------------------------------------- gradient links
@pytest.mark.parametrize("antithetic", [False, True])
def test_score_norm_gradient_matches_finite_differences(tiny_eps, antithetic):
    net = _float64_eps(tiny_eps)

    def e(x):  # chunk_size 3 = one sample per chunk: the checkpointed chunks are exercised
        return eps_score_norm(
            net, x, LEVELS, seed=7, sample_ids=IDS, chunk_size=LEVELS, grad=True, antithetic=antithetic
        )

    x = _x64()
    assert torch.autograd.gradcheck(e, (x,))
    with torch.no_grad():
        plain = eps_score_norm(net, x, LEVELS, seed=7, sample_ids=IDS, antithetic=antithetic)
    torch.testing.assert_close(e(x).detach(), plain)


def test_antithetic_levels_negate_the_keyed_noise(tiny_eps):
    """e(x; −z) equals the norm computed from the explicitly negated level noise (same keys)."""
    net = _float64_eps(tiny_eps)
    x = _x64().detach()
    labels, m, sigma = score_levels(LEVELS)
    x_s = 2 * x - 1
    z = ssni_kernels.noise_inject_levels(x_s, m, sigma, seed=7, sample_ids=IDS) - ssni_kernels.noise_inject_levels(
        x_s, m, torch.zeros_like(sigma), seed=7, sample_ids=IDS
    )
    negated = ssni_kernels.noise_inject_levels(x_s, m, torch.zeros_like(sigma), seed=7, sample_ids=IDS) - z
    expected = ssni_kernels.score_norm(net(negated, labels.repeat_interleave(2)), sigma)
    got = eps_score_norm(net, x, LEVELS, seed=7, sample_ids=IDS, antithetic=True)
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, eps_score_norm(net, x, LEVELS, seed=7, sample_ids=IDS))


def test_continuous_reweighting_gradients_and_rounding():
    e = torch.tensor([3.0, 4.7, 6.2], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: sigmoid_t_continuous(v, 4.5, 0.8, 50, 5), (e,))
    assert torch.autograd.gradcheck(lambda v: linear_t_continuous(v, 2.0, 7.0, 50, 5), (e,))
    # the defence's t is the rounded continuous t
    assert torch.equal(
        sigmoid_t(e.detach(), 4.5, 0.8, 50, 5), torch.round(sigmoid_t_continuous(e, 4.5, 0.8, 50, 5)).long()
    )
    assert torch.equal(
        linear_t(e.detach(), 2.0, 7.0, 50, 5), torch.round(linear_t_continuous(e, 2.0, 7.0, 50, 5)).long()
    )


def test_interpolated_purification_gradients_and_exact_at_integers(tiny_eps):
    purifier = DDPMPurifier(_float64_eps(tiny_eps), t_star=20, grad_num_steps=2)
    x = _x64()
    t = torch.tensor([7.3, 12.6], dtype=torch.float64, requires_grad=True)
    purify = lambda x_, t_: interpolated_purify(purifier, x_, t_, seed=9, sample_ids=IDS)  # noqa: E731
    assert torch.autograd.gradcheck(purify, (x, t))
    # at an integer t it is the host's own purification with the same seed and ids
    n = torch.tensor([7, 13])
    at_n = purify(x, n.double()).detach()
    torch.testing.assert_close(at_n, purifier.purify_grad(x, n, seed=9, sample_ids=IDS).detach())
    # and it is linear between neighbours: halfway is the mean of the two purifications
    half = purify(x, n.double() + 0.5).detach()
    torch.testing.assert_close(half, (at_n + purify(x, n.double() + 1).detach()) / 2)


def test_whole_chain_gradient_matches_finite_differences(tiny_ssni, tiny_classifier):
    model = ScoreAwareSSNI(tiny_ssni, tiny_classifier, seed=121)
    x = _x64()
    _, e, t = model.scored_logits(x, sample_ids=IDS, draw=0)
    assert ((t > 1) & (t < 24) & (t != t.round())).all()  # between integers, in the sensitive range of the sigmoid
    assert torch.autograd.gradcheck(lambda v: model.scored_logits(v, sample_ids=IDS, draw=0)[0], (x,))
    # the gradient really flows through e: without it (AdaptiveSSNI's path at the same t) it differs
    full = torch.autograd.grad(model.scored_logits(x, sample_ids=IDS, draw=0)[0][:, 0].sum(), x)[0]
    seed = derive_seed(121, STREAM_EOT_DRAW, 0)
    fixed_t = interpolated_purify(tiny_ssni, x, t.detach(), seed=seed, sample_ids=IDS)
    no_score = torch.autograd.grad(tiny_classifier(fixed_t)[:, 0].sum(), x)[0]
    assert not torch.allclose(full, no_score, rtol=1e-3, atol=1e-8)


# ------------------------------------------------------------------------------------------- attack
def test_draw_seeds_and_defended_prediction(tiny_ssni, tiny_classifier):
    model = ScoreAwareSSNI(tiny_ssni, tiny_classifier, seed=122, antithetic=False)
    x = _x64().detach()
    _, e, _ = model.scored_logits(x, sample_ids=IDS, draw=4)
    expected = tiny_ssni.scores(x, seed=derive_seed(122, STREAM_SCORE, 4), sample_ids=IDS)
    torch.testing.assert_close(e.detach(), expected)
    with torch.no_grad():
        want = tiny_classifier(tiny_ssni.purify(x, seed=122, sample_ids=IDS))
    torch.testing.assert_close(model.logits(x, sample_ids=IDS), want)


@pytest.mark.parametrize("name", ["score-aware", "score-aware-lambda10", "score-aware-two-phase"])
def test_objectives_run_and_report_what_the_defence_makes_of_x_adv(tiny_ssni, tiny_classifier, name):
    model = ScoreAwareSSNI(tiny_ssni, tiny_classifier, seed=121)
    x = _x64().detach()
    y = tiny_classifier(x).argmax(1)
    config = ScoreAwareConfig.from_attack_name(name)
    result = score_aware_pgd(model, x, y, sample_ids=IDS, config=config, eps=0.1, step_size=0.05, iterations=2,
                             eot=1, check_success=True)  # fmt: skip
    assert (result.x_adv - x).abs().max() <= 0.1 + 1e-12 and not torch.equal(result.x_adv, x)
    with torch.no_grad():
        t, e = tiny_ssni.timesteps(result.x_adv, seed=121, sample_ids=IDS)
    assert torch.equal(result.t, t) and torch.equal(result.e, e)
    assert result.mean_t == pytest.approx(t.double().mean().item()) and result.success.shape == (2,)


def test_pgd_eot_runs_the_adapter_as_objective_full(tiny_ssni, tiny_classifier):
    model = ScoreAwareSSNI(tiny_ssni, tiny_classifier, seed=121)
    x = _x64().detach()
    y = tiny_classifier(x).argmax(1)
    common = dict(sample_ids=IDS, eps=0.1, step_size=0.05, iterations=2, eot=1)
    via_pgd = pgd_eot(model, x, y, **common).x_adv
    torch.testing.assert_close(via_pgd, score_aware_pgd(model, x, y, **common).x_adv)


def test_from_adaptive_keeps_the_defence(tiny_ssni, tiny_classifier):
    adaptive = AdaptiveSSNI(tiny_ssni, tiny_classifier, seed=123, num_steps=3)
    aware = ScoreAwareSSNI.from_adaptive(adaptive)
    assert (aware.ssni, aware.classifier, aware.seed, aware.num_steps) == (tiny_ssni, tiny_classifier, 123, 3)
    assert aware.adaptive.ssni is tiny_ssni and aware.adaptive.num_steps == 3
    with pytest.raises(ValueError, match="full gradients"):
        ScoreAwareSSNI.from_adaptive(adaptive.with_gradient("bpda"))
    with pytest.raises(TypeError, match="AdaptiveSSNI"):
        ScoreAwareSSNI.from_adaptive(aware)


def test_config_names_and_checks():
    assert ScoreAwareConfig.from_attack_name("score-aware") == ScoreAwareConfig()
    assert ScoreAwareConfig.from_attack_name("score-aware-lambda0.5").lam == 0.5
    assert ScoreAwareConfig.from_attack_name("score-aware-lambda2").lam == 2.0
    two = ScoreAwareConfig.from_attack_name("score-aware-two-phase")
    assert two.objective == "two-phase" and two.phase1_iterations(6) == 3 and two.phase1_iterations(2) == 1
    assert ScoreAwareConfig().phase1_iterations(6) == 0
    for bad in ("score-aware-lambda", "score-aware-lambda-1", "pgd-linf", "score-aware-twophase"):
        with pytest.raises(ValueError, match="attack name"):
            ScoreAwareConfig.from_attack_name(bad)
    with pytest.raises(ValueError, match="phase1_fraction"):
        ScoreAwareConfig(objective="two-phase", phase1_fraction=1.0)
    with pytest.raises(ValueError, match="lam"):
        ScoreAwareConfig(objective="two-phase", lam=1.0)


def test_multi_stage_hosts_are_refused(tiny_eps, tiny_classifier):
    from ssni import GNSPurifier

    net = _float64_eps(tiny_eps)
    cal = Calibration.from_norms(torch.tensor([1.0, 2.0, 3.0]), model_id="m", num_levels=3, resolution=(4, 4), seed=0)
    gns = SSNI(GNSPurifier(net, t_star=(10, 20), grad_t_star=(10,), grad_num_steps=(2,)), cal)
    with pytest.raises(ValueError, match="single-stage"):
        ScoreAwareSSNI(gns, tiny_classifier, seed=0)


# ------------------------------------------------------------------------------------------- MNIST
def test_mnist_score_aware_lowers_e_and_t_below_the_adaptive_attack():
    """The embedded MNIST models and calibration, SSNI-N, Linf ε = 0.3, 3 iterations of step 0.01, EOT 1, 2
    surrogate steps, 3 test images. τ is the proposal with the adversarial mean norm of the MNIST demo (≈ 1160):
    with the shipped τ (the clean std, 18.5) every perturbed input saturates at t = 154 under both attacks."""
    import ssni.models
    from ssni.calibration import propose_tau
    from ssni.data.mnist import load_mnist
    from ssni.zoo.mnist import CALIBRATION

    diffusion, classifier = ssni.models.load("mnist-ddpm"), ssni.models.load("mnist-classifier")
    for p in [*diffusion.parameters(), *classifier.parameters()]:
        p.requires_grad_(False)
    cal = Calibration.load(CALIBRATION)
    tau = propose_tau(cal.norms, torch.tensor([1160.0]))
    defence = SSNI(DDPMPurifier(diffusion, t_star=150, grad_num_steps=2), cal, tau=tau, chunk_size=64)
    test = load_mnist("test")
    x, y, ids = test.images[:3], test.labels[:3], torch.arange(3)
    budget = dict(sample_ids=ids, norm="Linf", eps=0.3, step_size=0.01, iterations=3, eot=1)

    adaptive = pgd_eot(AdaptiveSSNI(defence, classifier, 121), x, y, **budget).x_adv
    with torch.no_grad():
        t_adaptive, e_adaptive = defence.timesteps(adaptive, seed=121, sample_ids=ids)
    aware = score_aware_pgd(ScoreAwareSSNI(defence, classifier, 121), x, y, config=ScoreAwareConfig(lam=10.0), **budget)

    assert e_adaptive.mean() > 1.5 * cal.mean  # the adaptive attack's inputs look adversarial to SSNI
    assert aware.mean_e < 0.85 * float(e_adaptive.mean())
    assert aware.mean_t < float(t_adaptive.double().mean()) - 5
