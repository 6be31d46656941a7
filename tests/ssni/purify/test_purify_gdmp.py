"""GDMP (§7): GDMP's own sampler against its code's formulas, unguided "ddpm" = repeated DDPM, guidance, SSIM,
the §10 quirk, gradients."""

from __future__ import annotations

import pytest
import torch

from ssni import GDMPPurifier, GNSPurifier
from ssni.purify.gdmp import ssim


def test_ssim_basics(images):
    x = images(batch=2, size=12)
    torch.testing.assert_close(ssim(x, x), torch.ones(2))
    assert (ssim(x, x.flip(0)) < 0.9).all()


def test_defaults_follow_gdmp_code():
    """GDMP's default config is unguided (cond: false); its guided CIFAR-10 configs are MSE at 60000, bsize 100."""
    gdmp = GDMPPurifier(torch.nn.Conv2d(1, 1, 1))
    assert gdmp.guidance_kind is None and gdmp.guide_scale == 60000.0 and gdmp.guide_batch == 100
    assert gdmp.sampler == "gdmp" and gdmp.t_star == (36, 36, 36, 36)


def _gdmp_code_oracle(model, x, ids, seed, guide_scale):
    """GDMP's pytorch_diffusion sampler and diff_purify, literally, in float64, for one repeat of t = 2 on the
    batch x: fixedlarge log-variance [log β̃_1, log β_1, …], clipped x̂0, posterior mean, mean += exp(logvar)·cond
    with cond = ∇(−F.mse_loss over the whole batch)·scale (also at i = 0), no noise at i = 0, output clamped.
    The noises are ssni's keyed draws (noise word layout of ssni.purify.base)."""
    import torch.nn.functional as F

    from ssni.purify.base import noise_word
    from ssni.schedules import ddpm_betas
    from ssni_kernels.reference import STREAM_NOISE_INJECT, STREAM_REVERSE_STEP, normal_noise

    betas = ddpm_betas()
    ac = torch.cumprod(1 - betas, 0)
    ac_prev = torch.cat([torch.ones(1, dtype=torch.float64), ac[:-1]])
    post_var = betas * (1 - ac_prev) / (1 - ac)
    coef1 = betas * ac_prev.sqrt() / (1 - ac)
    coef2 = (1 - ac_prev) * (1 - betas).sqrt() / (1 - ac)
    logvar = torch.log(torch.cat([post_var[1:2], betas[1:]]))
    shape = x.shape[1:]

    def keyed(word, stream):
        return normal_noise(shape, seed, ids, word, stream).to(torch.float64)

    x_adv = (2 * x - 1).to(torch.float64)
    cur = ac[1].sqrt() * x_adv + (1 - ac[1]).sqrt() * keyed(noise_word(0), STREAM_NOISE_INJECT)
    m = 8.0 * 2 / 255 / 3 / guide_scale
    for i in (1, 0):
        with torch.no_grad():
            eps = model(cur.float(), torch.full((x.shape[0],), float(i))).to(torch.float64)
        x0 = ((1 / ac[i]).sqrt() * cur - (1 / ac[i] - 1).sqrt() * eps).clamp(-1, 1)
        mean = coef1[i] * x0 + coef2[i] * cur
        x_adv_t = ac[i].sqrt() * x_adv + (1 - ac[i]).sqrt() * keyed(noise_word(i + 1), STREAM_NOISE_INJECT)
        leaf = cur.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(-F.mse_loss(leaf, x_adv_t), leaf)
        mean = mean + torch.exp(logvar[i]) * g * (1 - ac[i]).sqrt() / (m * ac[i].sqrt())
        mask = 0.0 if i == 0 else 1.0
        cur = mean + mask * torch.exp(0.5 * logvar[i]) * keyed(noise_word(i), STREAM_REVERSE_STEP)
    return ((cur + 1) / 2).clamp(0, 1)


def test_gdmp_sampler_matches_gdmp_code(tiny_eps, images):
    """fixedlarge variance, x̂0 clipping, guidance of the batch-mean objective (guide_batch = the batch), guidance
    at the last step, no noise there, the output clamp: equal to GDMP's code."""
    model, x = tiny_eps(scale=3.0), images(batch=2, size=8)
    ids, seed = torch.tensor([3, 8]), 5
    gdmp = GDMPPurifier(model, t_star=(2,), guidance="mse", guide_batch=2)
    out = gdmp.purify(x, seed=seed, sample_ids=ids)
    ref = _gdmp_code_oracle(model, x, ids, seed, 60000.0)
    torch.testing.assert_close(out.to(torch.float64), ref, rtol=1e-4, atol=1e-4)
    assert (out == 0).any() or (out == 1).any()  # the clamp bit on this input
    alone = GDMPPurifier(model, t_star=(2,), guidance="mse", guide_batch=2).purify(x[:1], seed=seed, sample_ids=ids[:1])
    torch.testing.assert_close(alone, out[:1], rtol=1e-5, atol=1e-5)  # a sample's guidance ignores its batch
    ddpm = GDMPPurifier(model, t_star=(2,), guidance="mse", guide_batch=2, sampler="ddpm")
    assert not torch.allclose(ddpm.purify(x, seed=seed, sample_ids=ids), out)


def test_unguided_ddpm_sampler_equals_repeated_ddpm(tiny_eps, images):
    model, x = tiny_eps(), images(batch=2)
    gdmp = GDMPPurifier(model, t_star=(3, 4), guidance=None, sampler="ddpm")
    gns = GNSPurifier(model, t_star=(3, 4), grad_t_star=(3,), grad_num_steps=1)
    torch.testing.assert_close(gdmp.purify(x, seed=1), gns.purify(x, seed=1))
    assert gdmp.samples_evaluated == 2 * 7


@pytest.mark.parametrize("guidance", ["ssim", "mse"])
def test_guidance_changes_output_and_keeps_batch_invariance(tiny_eps, images, guidance):
    model, x = tiny_eps(), images(batch=3)
    ids = torch.tensor([4, 0, 2])
    plain = GDMPPurifier(model, t_star=(4,), guidance=None).purify(x, seed=3, sample_ids=ids)
    gdmp = GDMPPurifier(model, t_star=(4,), guidance=guidance, guide_scale=1000.0)
    guided = gdmp.purify(x, seed=3, sample_ids=ids)
    assert not torch.allclose(guided, plain)
    alone = torch.cat([gdmp.purify(x[i : i + 1], seed=3, sample_ids=ids[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(guided, alone, rtol=1e-5, atol=1e-5)


def test_quirk_noises_one_index_higher(tiny_eps, images):
    model, x = tiny_eps(), images(batch=1)
    consistent = GDMPPurifier(model, t_star=(3,), guidance=None).purify(x, seed=0)
    quirk = GDMPPurifier(model, t_star=(3,), guidance=None, reference_inject_at_t=True).purify(x, seed=0)
    assert not torch.allclose(consistent, quirk)
    assert [int(lab[0]) for lab in model.labels[-3:]] == [2, 1, 0]  # denoising still starts at t − 1


def test_gradients_reach_input(tiny_eps, images):
    model, x = tiny_eps(), images(batch=2)
    gdmp = GDMPPurifier(model, t_star=(3, 3), guidance="ssim", guide_scale=10.0, grad_num_steps=2)
    xg = x.clone().requires_grad_(True)
    gdmp.purify_grad(xg, seed=0).sum().backward()
    assert torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0
    assert gdmp.samples_evaluated == 2 * 2 * 2


def test_guided_step_matches_formula(tiny_eps, images):
    """The "ddpm" sampler, t = 2: the first step (index 1 → 0) carries Σ·s·∇SSIM; the last (0 → −1) has Σ = 0."""
    from ssni.purify.base import noise_word
    from ssni.schedules import alphas_cumprod_padded, ddpm_alphas_cumprod
    from ssni_kernels.reference import STREAM_NOISE_INJECT, STREAM_REVERSE_STEP, normal_noise

    model, x = tiny_eps(), images(batch=1, size=12)
    ids, seed = torch.tensor([3]), 11
    gdmp = GDMPPurifier(
        model, t_star=(2,), guidance="ssim", guide_scale=50.0, eps_pixels=8.0, guide_batch=1, sampler="ddpm"
    )
    out = gdmp.purify(x, seed=seed, sample_ids=ids)

    ac = alphas_cumprod_padded(ddpm_alphas_cumprod())  # ᾱ_i = ac[i + 1]
    xs = (2 * x - 1).to(torch.float64)
    shape = x.shape[1:]
    z0 = normal_noise(shape, seed, ids, noise_word(0), STREAM_NOISE_INJECT).to(torch.float64)
    cur = ac[2].sqrt() * xs + (1 - ac[2]).sqrt() * z0  # index t − 1 = 1
    for p, (a, an) in ((1, (ac[2], ac[1])), (0, (ac[1], ac[0]))):
        eps = model(cur.float(), torch.tensor([float(p)])).to(torch.float64)
        z = normal_noise(shape, seed, ids, noise_word(p), STREAM_REVERSE_STEP).to(torch.float64)
        x0 = (cur - (1 - a).sqrt() * eps) / a.sqrt()
        var = (1 - a / an) * (1 - an) / (1 - a)
        nxt = an.sqrt() * x0 + var.sqrt() * z + (1 - an - var).sqrt() * eps
        zr = normal_noise(shape, seed, ids, noise_word(p + 1), STREAM_NOISE_INJECT).to(torch.float64)
        ref = a.sqrt() * xs + (1 - a).sqrt() * zr
        leaf = cur.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(ssim(leaf, ref).sum(), leaf)
        m = 8.0 * 2 / 255 / 3 / 50.0
        cur = nxt + var * (1 - a).sqrt() / (m * a.sqrt()) * g
    torch.testing.assert_close(out.to(torch.float64), (cur + 1) / 2, rtol=1e-4, atol=1e-4)
