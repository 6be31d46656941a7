"""Step family: reverse_step (DDIM/DDPM) and vp_sde_step (VP-SDE Euler–Maruyama), with their per-sample
coefficients (kernels: triton/steps.py, csrc/cpu/steps.cpp).

Each op reads top to bottom: public wrapper, fake kernel, autograd, reference adapter. Both ops are
out = cx·x + ce·ε̂ + cz·z per sample (`reverse_step_coefs`, `vp_sde_step_coefs`), which is their backward. The
schemas are in ``ssni_kernels._library``.
"""

from __future__ import annotations

import torch

from ssni_kernels import _checks, _library, reference
from ssni_kernels.ops._grad import float64, require_constant, scale_rows
from ssni_kernels.reference import VP_BETA_MAX, VP_BETA_MIN


def _step_backward(ctx, grad):
    """(grad x, grad eps_hat, grad noise) of out = cx·x + ce·ε̂ + cz·z with ctx.coefs = (cx, ce, cz)."""
    cx, ce, cz = ctx.coefs
    grad_noise = scale_rows(grad, cz) if ctx.noise_given else None
    return scale_rows(grad, cx), scale_rows(grad, ce), grad_noise


# ---------------------------------------------------------------------------------------------------------
# reverse_step
# ---------------------------------------------------------------------------------------------------------
def reverse_step(x, eps_hat, a, a_next, *, eta, noise=None, seed=None, sample_ids=None, step=0, active=None):
    """Generalised DDIM/DDPM step (spec §5) with per-sample ᾱ pairs; see reference.reverse_step for the math.

    x, eps_hat: [B, ...] of one dtype; a, a_next: [B] float in (0, 1], or one float for every sample; eta ≥ 0
    (1 "ddpm", 0 "ddim"); z from noise or the Philox stream (needed when eta ≠ 0); step: an int, or an integer
    [B] tensor of any integer dtype (a step word per sample). active: [B] bool, one bool, or None; inactive
    samples and samples with a == a_next are returned unchanged. Differentiable w.r.t. x, eps_hat and noise.
    """
    op = "reverse_step"
    _checks.batch(op, "x", x)
    _checks.like(op, "eps_hat", eps_hat, x)
    a = _checks.per_sample(op, "a", a, x)
    a_next = _checks.per_sample(op, "a_next", a_next, x)
    eta = _checks.scalar(op, "eta", eta, low=0.0)
    if noise is not None:
        _checks.like(op, "noise", noise, x)
    seed = _checks.seed(op, seed, needed=noise is None and eta != 0)
    sample_ids = _checks.sample_ids(op, sample_ids, x)
    step, steps, step_ok = _checks.step_words(op, step, x)
    if active is not None:
        active = _checks.per_sample(op, "active", active, x, kind="bool")
    _checks.values(
        op,
        [
            _checks.Range("a must be finite and in (0, 1]", a, 0.0, 1.0, low_open=True),
            _checks.Range("a_next must be finite and in (0, 1]", a_next, 0.0, 1.0, low_open=True),
            *step_ok,
        ],
    )
    return torch.ops.ssni.reverse_step(x, eps_hat, a, a_next, eta, noise, seed, sample_ids, step, active, steps)


@torch.library.register_fake("ssni::reverse_step")
def _(x, eps_hat, a, a_next, eta, noise=None, seed=0, sample_ids=None, step=0, active=None, steps=None):
    return x.new_empty(x.shape)


def reverse_step_coefs(a, a_next, eta: float, active=None):
    """Per-sample (cx, ce, cz) in float64 with reverse_step(x, ε̂, z) = cx·x + ce·ε̂ + cz·z (spec §5).

    cx = sqrt(a'/a), ce = c2 − sqrt(a'(1−a)/a), cz = c1; (1, 0, 0) for samples that do not move.
    """
    a, an = float64(a), float64(a_next)
    c1 = eta * ((1 - a / an) * (1 - an) / (1 - a)).clamp_min(0).sqrt()
    c2 = (1 - an - c1**2).clamp_min(0).sqrt()
    keep = a == an if active is None else (a == an) | ~active
    one, zero = torch.ones_like(a), torch.zeros_like(a)
    cx = torch.where(keep, one, (an / a).sqrt())
    ce = torch.where(keep, zero, c2 - (an * (1 - a) / a).sqrt())
    cz = torch.where(keep, zero, c1)
    return cx, ce, cz


def _reverse_step_setup(ctx, inputs, output):
    x, eps_hat, a, a_next, eta, noise, seed, sample_ids, step, active, steps = inputs
    require_constant("reverse_step", a=a, a_next=a_next)
    ctx.coefs = reverse_step_coefs(a, a_next, eta, active)
    ctx.noise_given = noise is not None


def _reverse_step_backward(ctx, grad):
    grad_x, grad_eps, grad_noise = _step_backward(ctx, grad)
    return grad_x, grad_eps, None, None, None, grad_noise, None, None, None, None, None


torch.library.register_autograd("ssni::reverse_step", _reverse_step_backward, setup_context=_reverse_step_setup)


@_library.fallback("reverse_step")
def _reverse_step_reference(
    x, eps_hat, a, a_next, eta, noise=None, seed=0, sample_ids=None, step=0, active=None, steps=None
):
    # Outputs fresh and contiguous, like the real kernels, so that fake and real layouts agree.
    step = step if steps is None else steps
    out = reference.reverse_step(
        x, eps_hat, a, a_next, eta=eta, noise=noise, seed=seed, sample_ids=sample_ids, step=step, active=active
    )
    return out.contiguous()


# ---------------------------------------------------------------------------------------------------------
# vp_sde_step
# ---------------------------------------------------------------------------------------------------------
def vp_sde_step(
    x,
    eps_hat,
    t,
    dt,
    *,
    noise=None,
    seed=None,
    sample_ids=None,
    step=0,
    active=None,
    beta_min=VP_BETA_MIN,
    beta_max=VP_BETA_MAX,
):
    """One reverse VP-SDE Euler–Maruyama step from t to t − dt (spec §6); see reference.vp_sde_step.

    x, eps_hat: [B, ...] of one dtype; t: [B] float in (0, 1], or one float for every sample; dt > 0; z from
    noise or the Philox stream; step: an int or an integer [B] tensor of any integer dtype. active: [B] bool, one
    bool, or None (inactive samples are returned unchanged). Differentiable w.r.t. x, eps_hat, noise.
    """
    op = "vp_sde_step"
    _checks.batch(op, "x", x)
    _checks.like(op, "eps_hat", eps_hat, x)
    t = _checks.per_sample(op, "t", t, x)
    dt = _checks.scalar(op, "dt", dt, low=0.0, low_open=True)
    beta_min = _checks.scalar(op, "beta_min", beta_min, low=0.0)
    beta_max = _checks.scalar(op, "beta_max", beta_max, low=beta_min)
    if noise is not None:
        _checks.like(op, "noise", noise, x)
    seed = _checks.seed(op, seed, needed=noise is None)
    sample_ids = _checks.sample_ids(op, sample_ids, x)
    step, steps, step_ok = _checks.step_words(op, step, x)
    if active is not None:
        active = _checks.per_sample(op, "active", active, x, kind="bool")
    t_ok = _checks.Range("t must be finite and in (0, 1]", t, 0.0, 1.0, low_open=True)
    _checks.values(op, [t_ok, *step_ok])
    return torch.ops.ssni.vp_sde_step(
        x, eps_hat, t, dt, noise, seed, sample_ids, step, active, beta_min, beta_max, steps
    )


@torch.library.register_fake("ssni::vp_sde_step")
def _(
    x,
    eps_hat,
    t,
    dt,
    noise=None,
    seed=0,
    sample_ids=None,
    step=0,
    active=None,
    beta_min=VP_BETA_MIN,
    beta_max=VP_BETA_MAX,
    steps=None,
):
    return x.new_empty(x.shape)


def vp_sde_step_coefs(t, dt: float, active=None, beta_min=VP_BETA_MIN, beta_max=VP_BETA_MAX):
    """Per-sample (cx, ce, cz) in float64 with vp_sde_step(x, ε̂, z) = cx·x + ce·ε̂ + cz·z (spec §6)."""
    t = float64(t)
    beta = reference.vp_beta(t, beta_min, beta_max)
    cx, ce, cz = 1 + 0.5 * beta * dt, -beta * dt / reference.vp_sigma(t, beta_min, beta_max), (beta * dt).sqrt()
    if active is None:
        return cx, ce, cz
    return torch.where(active, cx, 1.0), torch.where(active, ce, 0.0), torch.where(active, cz, 0.0)


def _vp_sde_step_setup(ctx, inputs, output):
    x, eps_hat, t, dt, noise, seed, sample_ids, step, active, beta_min, beta_max, steps = inputs
    require_constant("vp_sde_step", t=t)
    ctx.coefs = vp_sde_step_coefs(t, dt, active, beta_min, beta_max)
    ctx.noise_given = noise is not None


def _vp_sde_step_backward(ctx, grad):
    grad_x, grad_eps, grad_noise = _step_backward(ctx, grad)
    return grad_x, grad_eps, None, None, grad_noise, None, None, None, None, None, None, None


torch.library.register_autograd("ssni::vp_sde_step", _vp_sde_step_backward, setup_context=_vp_sde_step_setup)


@_library.fallback("vp_sde_step")
def _vp_sde_step_reference(
    x,
    eps_hat,
    t,
    dt,
    noise=None,
    seed=0,
    sample_ids=None,
    step=0,
    active=None,
    beta_min=VP_BETA_MIN,
    beta_max=VP_BETA_MAX,
    steps=None,
):
    step = step if steps is None else steps
    out = reference.vp_sde_step(
        x, eps_hat, t, dt, noise=noise, seed=seed, sample_ids=sample_ids, step=step, active=active,
        beta_min=beta_min, beta_max=beta_max,
    )  # fmt: skip
    return out.contiguous()
