"""The SSNI wrapper: t from the score norm (§2–§4), host purification with that t, counters, modes, refusals."""

from __future__ import annotations

import pytest
import torch

from ssni import (
    SSNI,
    Calibration,
    CalibrationMismatchError,
    DDPMPurifier,
    GNSPurifier,
    SDEPurifier,
    eps_score_norm,
    linear_t,
    sigmoid_t,
)


def _calibration(model, x, num_levels=3):
    norms = eps_score_norm(model, x, num_levels, seed=121)
    return Calibration.from_norms(norms, model_id="tiny", num_levels=num_levels, resolution=x.shape[-2:], seed=121)


def test_sigmoid_timesteps_and_purify(tiny_eps, images):
    model = tiny_eps()
    cal = _calibration(model, images(batch=8, seed=1))
    x, ids = images(batch=4, seed=2), torch.tensor([7, 3, 9, 1])
    pur = DDPMPurifier(model, t_star=12)
    ssni = SSNI(pur, cal, tau=0.5 * cal.tau)
    t, e = ssni.timesteps(x, seed=5, sample_ids=ids)
    torch.testing.assert_close(e, eps_score_norm(model, x, 3, seed=5, sample_ids=ids))
    assert torch.equal(t, sigmoid_t(e, cal.mean, 0.5 * cal.tau, 12, 5))
    ssni.reset()
    out = ssni.purify(x, seed=5, sample_ids=ids)
    assert ssni.score_counter.samples_evaluated == 3 * 4
    assert pur.samples_evaluated == int(t.clamp_min(1).sum())
    assert ssni.samples_evaluated == 12 + int(t.clamp_min(1).sum())
    torch.testing.assert_close(out, pur.purify(x, t, seed=5, sample_ids=ids))
    ssni.reset()
    torch.testing.assert_close(ssni.purify(x, t, seed=5, sample_ids=ids), out)  # a given t skips the score norm
    assert ssni.score_counter.samples_evaluated == 0


def test_linear_minmax_modes(tiny_eps, images):
    model = tiny_eps()
    cal = _calibration(model, images(batch=6, seed=1))
    x = images(batch=3, seed=3)
    pur = DDPMPurifier(model, t_star=10)
    e = eps_score_norm(model, x, 3, seed=0)
    batch_mode = SSNI(pur, cal, reweight="linear")
    lo, hi = min(cal.min, float(e.min())), max(cal.max, float(e.max()))
    assert torch.equal(batch_mode.timesteps(x, seed=0)[0], linear_t(e, lo, hi, 10, 5))
    ref_mode = SSNI(pur, cal, reweight="linear", linear_minmax="reference")
    t_ref = ref_mode.timesteps(x, seed=0)[0]
    assert torch.equal(t_ref, linear_t(e, cal.min, cal.max, 10, 5))
    single = torch.cat([ref_mode.timesteps(x[i : i + 1], seed=0, sample_ids=torch.tensor([i]))[0] for i in range(3)])
    assert torch.equal(single, t_ref)  # reference-only min/max is batch invariant


def test_multi_stage_and_grad_path(tiny_eps, images):
    model = tiny_eps()
    cal = _calibration(model, images(batch=6, seed=1))
    x = images(batch=2, seed=4)
    gns = GNSPurifier(model, t_star=(4, 6), grad_t_star=(6,), grad_num_steps=2)
    ssni = SSNI(gns, cal, bias=1)
    t, e = ssni.timesteps(x, seed=0)
    assert t.shape == (2, 2) and torch.equal(t, sigmoid_t(e, cal.mean, cal.tau, (4, 6), 1))
    xg = x.clone().requires_grad_(True)
    out = ssni.purify_grad(xg, seed=0)
    torch.testing.assert_close(out.detach(), gns.purify_grad(x, t, seed=0).detach())
    out.sum().backward()
    assert torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0


def test_sde_host(tiny_eps, images):
    model = tiny_eps()
    cal = _calibration(model, images(batch=6, seed=1))
    x = images(batch=3, seed=5)
    ssni = SSNI(SDEPurifier(model, t_star=5), cal)
    t, _ = ssni.timesteps(x, seed=0)
    torch.testing.assert_close(ssni.purify(x, seed=0), ssni.purifier.purify(x, t, seed=0))


def test_reference_linear_shift_quirk(tiny_eps, images):
    """The authors' SSNI-L walk: noise at t − 1, then their step list for t shifted by b: t steps (n = t* here),
    from index t − 1 + b down to b, then straight to x̂0."""
    model = tiny_eps()
    cal = _calibration(model, images(batch=6, seed=1))
    x = images(batch=2, seed=6)
    pur = DDPMPurifier(model, t_star=8)
    quirk = SSNI(pur, cal, reweight="linear", bias=2, reference_linear_shift=True)
    t, _ = quirk.timesteps(x, seed=0)
    pur.reset()
    model.labels.clear()
    quirk.purify(x, t, seed=0)
    assert pur.samples_evaluated == int(t.clamp_min(1).sum())
    assert int(model.labels[0].max()) == int(t.max()) - 1 + 2 and int(model.labels[-1].min()) == 2
    with pytest.raises(ValueError, match="reference_linear_shift"):
        SSNI(pur, cal, reweight="sigmoid", reference_linear_shift=True)
    with pytest.raises(ValueError, match="2·bias"):
        SSNI(DDPMPurifier(model, t_star=990), cal, reweight="linear", bias=6, reference_linear_shift=True)


def test_ssni_n_defence_visits_every_index(tiny_eps, images):
    """The authors' SSNI-N defence runs n = t* + b, so t up to t* − 1 + b walks every index (no stride);
    SSNI-L and the baseline keep n = t*; the differentiable surrogate keeps its own count."""
    model = tiny_eps()
    cal = _calibration(model, images(batch=6, seed=1))
    x = images(batch=1, seed=6)
    host = DDPMPurifier(model, t_star=10, num_steps=10, grad_num_steps=2)
    ssni_n = SSNI(host, cal, bias=3)
    assert ssni_n.purifier.extra_steps == 3 and host.extra_steps == 0
    model.labels.clear()
    ssni_n.purify(x, torch.tensor([12]), seed=0)
    assert [int(lab[0]) for lab in model.labels] == list(range(11, -1, -1))
    model.labels.clear()
    SSNI(host, cal, reweight="linear", bias=3).purify(x, torch.tensor([12]), seed=0)
    assert len(model.labels) == 10  # n = t*: strided, as the reference's SSNI-L
    model.labels.clear()
    ssni_n.purify_grad(x, torch.tensor([12]), seed=0)
    assert len(model.labels) == 2
    gns = GNSPurifier(model, t_star=(4, 6), num_steps=(4, 6), grad_t_star=(6,), grad_num_steps=1)
    model.labels.clear()
    SSNI(gns, cal, bias=2).purify(x, torch.tensor([[5, 7]]), seed=0)
    assert [int(lab[0]) for lab in model.labels] == [4, 3, 2, 1, 0, 6, 5, 4, 3, 2, 1, 0]  # each stage + b


def test_linear_batch_groups_min_max(tiny_eps, images):
    """SSNI-L's min/max over the reference set and each group of `linear_batch` consecutive samples."""
    model = tiny_eps()
    cal = _calibration(model, images(batch=6, seed=1))
    x = images(batch=4, seed=3) * 0.3
    e = eps_score_norm(model, x, 3, seed=0)
    ssni = SSNI(DDPMPurifier(model, t_star=10), cal, reweight="linear", linear_batch=2)
    expected = torch.cat(
        [linear_t(g, min(cal.min, float(g.min())), max(cal.max, float(g.max())), 10, 5) for g in e.split(2)]
    )
    assert torch.equal(ssni.timesteps_from_scores(e), expected)
    whole = ssni.with_linear_batch(None)
    assert whole.score_counter is ssni.score_counter
    lo, hi = min(cal.min, float(e.min())), max(cal.max, float(e.max()))
    assert torch.equal(whole.timesteps_from_scores(e), linear_t(e, lo, hi, 10, 5))


def test_refusals(tiny_eps, images):
    model = tiny_eps()
    cal = _calibration(model, images(batch=6, seed=1))
    pur = DDPMPurifier(model, t_star=8)
    with pytest.raises(CalibrationMismatchError, match="resolution"):
        SSNI(pur, cal).purify(images(batch=2, size=8), seed=0)
    with pytest.raises(CalibrationMismatchError, match="num_levels"):
        SSNI(pur, cal, num_levels=20)
    with pytest.raises(CalibrationMismatchError, match="model_id"):
        SSNI(pur, cal, model_id="another")
    with pytest.raises(ValueError, match="reweight"):
        SSNI(pur, cal, reweight="cosine")
    with pytest.raises(ValueError, match="linear_minmax"):
        SSNI(pur, cal, linear_minmax="batch")
    with pytest.raises(ValueError, match="tau"):
        SSNI(pur, cal, tau=0.0)
    with pytest.raises(TypeError, match="purifier"):
        SSNI(model, cal)
    with pytest.raises(ValueError, match="1000"):
        SSNI(DDPMPurifier(model, t_star=1000), cal, bias=5)


def test_ssni_n_is_batch_invariant(tiny_eps, images):
    model = tiny_eps()
    cal = _calibration(model, images(batch=6, seed=1))
    x, ids = images(batch=4, seed=7), torch.tensor([5, 6, 7, 8])
    ssni = SSNI(DDPMPurifier(model, t_star=6), cal)
    batch = ssni.purify(x, seed=2, sample_ids=ids)
    alone = torch.cat([ssni.purify(x[i : i + 1], seed=2, sample_ids=ids[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(batch, alone, rtol=1e-5, atol=1e-5)
