"""The PyTorch reference path: the executable spec every kernel is tested against.

Plain, differentiable torch code, readable next to `docs/algorithm.md` §1, §2, §5, §6. No input validation
here (the public ops in `ops.py` validate); arithmetic runs in float32 (float64 for float64 inputs) and the
result is cast back to the input dtype.

Conventions shared by all ops
- x, eps_hat, noise: [B, ...] (any trailing shape), one row per sample.
- Per-sample schedule values (t, a, a_next, active) are [B] tensors.
- Generated noise (noise=None) is the Philox stream of `philox.py`, keyed on (seed, sample id, step, stream):
  a sample's noise never depends on its position in the batch or on the batch size.
"""

from __future__ import annotations

import math

import torch

STREAM_NOISE_INJECT = 0
STREAM_NOISE_LEVELS = 1
STREAM_REVERSE_STEP = 2
STREAM_VP_SDE_STEP = 3

VP_BETA_MIN = 0.1
VP_BETA_MAX = 20.0

_PHILOX_M0 = 0xD2511F53
_PHILOX_M1 = 0xCD9E8D57
_PHILOX_W0 = 0x9E3779B9
_PHILOX_W1 = 0xBB67AE85
_MASK32 = 0xFFFFFFFF


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Arithmetic dtype for a storage dtype: float64 stays float64, everything else runs in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


# ---------------------------------------------------------------------------------------------------------
# Schedules used inside the ops (the one place these formulas live; ssni.schedules re-exports them)
# ---------------------------------------------------------------------------------------------------------
def vp_beta(t, beta_min: float = VP_BETA_MIN, beta_max: float = VP_BETA_MAX):
    """β(t) = β0 + t(β1 − β0) of the continuous VP-SDE."""
    return beta_min + t * (beta_max - beta_min)


def vp_log_mean_coef(t, beta_min: float = VP_BETA_MIN, beta_max: float = VP_BETA_MAX):
    """log m(t) = −¼t²(β1 − β0) − ½tβ0; the VP-SDE marginal is x_t = m(t)·x_0 + σ(t)·z."""
    return -0.25 * t**2 * (beta_max - beta_min) - 0.5 * t * beta_min


def vp_sigma(t, beta_min: float = VP_BETA_MIN, beta_max: float = VP_BETA_MAX):
    """σ(t) = sqrt(1 − m(t)²)."""
    log_m = vp_log_mean_coef(t, beta_min, beta_max)
    if isinstance(log_m, torch.Tensor):
        return torch.sqrt(-torch.expm1(2.0 * log_m))
    return math.sqrt(-math.expm1(2.0 * log_m))


# ---------------------------------------------------------------------------------------------------------
# Philox normal stream (torch, int64 emulation of uint32 arithmetic)
# ---------------------------------------------------------------------------------------------------------
def _mulhilo(a: int, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # a·b < 2**64 may wrap in signed int64; shifting then masking recovers the unsigned halves.
    prod = b * a
    return (prod >> 32) & _MASK32, prod & _MASK32


def philox4x32_10(c0, c1, c2, c3, k0: int, k1: int):
    """Philox4x32-10 on int64 tensors holding uint32 values. Returns four int64 tensors of uint32 words."""
    for r in range(10):
        if r > 0:
            k0 = (k0 + _PHILOX_W0) & _MASK32
            k1 = (k1 + _PHILOX_W1) & _MASK32
        hi0, lo0 = _mulhilo(_PHILOX_M0, c0)
        hi1, lo1 = _mulhilo(_PHILOX_M1, c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


def normal_noise(
    shape: tuple[int, ...] | torch.Size,
    seed: int,
    sample_ids: torch.Tensor,
    step: int | torch.Tensor,
    stream: int,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Standard normals [B, *shape] from the ssni Philox stream (definition in `philox.py`).

    Row b uses counter (e div 4, step_b, sample_ids[b], stream) and key (seed lo, seed hi); step is one int for
    every row or an integer [B] tensor of per-row step words.
    """
    device = sample_ids.device if device is None else device
    numel = math.prod(shape)
    groups = torch.arange((numel + 3) // 4, dtype=torch.int64, device=device)
    ids = (sample_ids.to(device=device, dtype=torch.int64) & _MASK32)[:, None]
    c0 = groups[None, :].expand(ids.shape[0], -1)
    if isinstance(step, torch.Tensor):
        c1 = (step.to(device=device, dtype=torch.int64) & _MASK32)[:, None].expand_as(c0)
    else:
        c1 = torch.full_like(c0, step & _MASK32)
    c2 = ids.expand_as(c0)
    c3 = torch.full_like(c0, stream & _MASK32)
    words = philox4x32_10(c0, c1, c2, c3, seed & _MASK32, (seed >> 32) & _MASK32)
    u = [((w >> 9).to(torch.float64) * 2.0**-23 + 2.0**-24) for w in words]
    z = []
    for a, b in ((0, 1), (2, 3)):
        radius = torch.sqrt(-2.0 * torch.log(u[a]))
        z += [radius * torch.cos(2.0 * math.pi * u[b]), radius * torch.sin(2.0 * math.pi * u[b])]
    z = torch.stack(z, dim=-1).reshape(ids.shape[0], -1)[:, :numel]
    return z.to(torch.float32).to(dtype).reshape(ids.shape[0], *shape)


def _per_sample(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """[B] → [B, 1, 1, ...] to broadcast against a [B, ...] tensor."""
    return v.reshape(-1, *([1] * (like.dim() - 1)))


def _resolve_noise(noise, x, seed, sample_ids, step, stream) -> torch.Tensor:
    if noise is not None:
        return noise
    if sample_ids is None:
        sample_ids = torch.arange(x.shape[0], device=x.device)
    return normal_noise(x.shape[1:], seed, sample_ids, step, stream, dtype=x.dtype, device=x.device)


# ---------------------------------------------------------------------------------------------------------
# Ops
# ---------------------------------------------------------------------------------------------------------
def noise_inject(x, t, alphas_cumprod, *, noise=None, seed=None, sample_ids=None, step=0):
    """Forward diffusion with a timestep per sample: sqrt(ᾱ[t_b])·x_b + sqrt(1 − ᾱ[t_b])·ε_b.

    x: [B, ...] float; t: [B] int64 indices into alphas_cumprod ([T] float); noise: like x, or None to draw
    ε from the Philox stream (seed, sample_ids, step, STREAM_NOISE_INJECT). Returns x.dtype.
    """
    cdt = compute_dtype(x.dtype)
    a = alphas_cumprod.to(torch.float64)[t]
    eps = _resolve_noise(noise, x, seed, sample_ids, step, STREAM_NOISE_INJECT)
    out = _per_sample(a.sqrt().to(cdt), x) * x.to(cdt) + _per_sample((1 - a).sqrt().to(cdt), x) * eps.to(cdt)
    return out.to(x.dtype)


def noise_inject_levels(x, mean_coef, std, *, noise=None, seed=None, sample_ids=None):
    """K noise levels of one batch, level-major: out[k·B + b] = mean_coef[k]·x_b + std[k]·ε_{k,b}.

    x: [B, ...]; mean_coef, std: [K]; noise: [K·B, ...] or None (level k draws with step = k from
    STREAM_NOISE_LEVELS). Returns [K·B, ...] in x.dtype. Used by the EPS score norm (spec §2).
    """
    cdt = compute_dtype(x.dtype)
    K, B = mean_coef.shape[0], x.shape[0]
    if noise is None:
        ids = torch.arange(B, device=x.device) if sample_ids is None else sample_ids
        noise = torch.cat(
            [normal_noise(x.shape[1:], seed, ids, k, STREAM_NOISE_LEVELS, x.dtype, x.device) for k in range(K)]
        )
    eps = noise.to(cdt).reshape(K, B, *x.shape[1:])
    m = mean_coef.to(cdt).reshape(K, 1, *([1] * (x.dim() - 1)))
    s = std.to(cdt).reshape(K, 1, *([1] * (x.dim() - 1)))
    out = m * x.to(cdt)[None] + s * eps
    return out.reshape(K * B, *x.shape[1:]).to(x.dtype)


def score_norm(eps_hat, sigma):
    """EPS score norm: e_b = ‖ (1/K) Σ_k −eps_hat[k·B + b] / σ_k ‖₂ over all non-batch elements.

    eps_hat: [K·B, ...] level-major (as produced by noise_inject_levels); sigma: [K] > 0.
    Returns [B] in float32 (float64 for float64 eps_hat): the norm of the MEAN score, not the mean of norms.
    """
    cdt = compute_dtype(eps_hat.dtype)
    K = sigma.shape[0]
    eps = eps_hat.to(cdt).reshape(K, eps_hat.shape[0] // K, -1)
    score = -(eps / sigma.to(cdt)[:, None, None]).mean(dim=0)
    return torch.linalg.vector_norm(score, dim=-1)


def reverse_step(x, eps_hat, a, a_next, *, eta, noise=None, seed=None, sample_ids=None, step=0, active=None):
    """Generalised DDIM/DDPM step (spec §5) with per-sample ᾱ pairs.

        x̂0 = (x − sqrt(1−a)·ε̂) / sqrt(a)
        c1 = η·sqrt((1 − a/a')(1 − a')/(1 − a)),   c2 = sqrt(1 − a' − c1²)
        out = sqrt(a')·x̂0 + c1·z + c2·ε̂

    x, eps_hat: [B, ...]; a, a_next: [B] (ᾱ at the current and the next index; a' = 1 after the last step);
    eta: 1.0 ancestral "ddpm", 0.0 "ddim"; z from `noise` or the Philox stream (seed, sample_ids, step,
    STREAM_REVERSE_STEP), step an int or an integer [B] tensor (a step word per sample). Samples with
    active=False, or with a == a_next (a repeated index), are returned unchanged.
    """
    cdt = compute_dtype(x.dtype)
    a_ = _per_sample(a.to(cdt), x)
    an = _per_sample(a_next.to(cdt), x)
    xc, ec = x.to(cdt), eps_hat.to(cdt)
    x0 = (xc - torch.sqrt(1 - a_) * ec) / torch.sqrt(a_)
    c1 = eta * torch.sqrt(((1 - a_ / an) * (1 - an) / (1 - a_)).clamp_min(0))
    c2 = torch.sqrt((1 - an - c1**2).clamp_min(0))
    out = torch.sqrt(an) * x0 + c2 * ec
    if eta != 0:
        z = _resolve_noise(noise, x, seed, sample_ids, step, STREAM_REVERSE_STEP)
        out = out + c1 * z.to(cdt)
    keep = a == a_next
    if active is not None:
        keep = keep | ~active
    return torch.where(_per_sample(keep, x), xc, out).to(x.dtype)


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
    """One reverse VP-SDE Euler–Maruyama step from t to t − dt (spec §6), per-sample t.

        s   = −ε̂ / σ(t)
        out = x + [½β(t)·x + β(t)·s]·dt + sqrt(β(t)·dt)·z

    x, eps_hat: [B, ...]; t: [B] float time in (0, 1]; dt: float > 0; z from `noise` or the Philox stream
    (seed, sample_ids, step, STREAM_VP_SDE_STEP), step an int or an integer [B] tensor. Samples with
    active=False are returned unchanged.
    """
    cdt = compute_dtype(x.dtype)
    tc = _per_sample(t.to(torch.float64), x)
    beta = vp_beta(tc, beta_min, beta_max)
    sigma = vp_sigma(tc, beta_min, beta_max)
    xc, ec = x.to(cdt), eps_hat.to(cdt)
    z = _resolve_noise(noise, x, seed, sample_ids, step, STREAM_VP_SDE_STEP).to(cdt)
    drift = (0.5 * beta * dt).to(cdt) * xc - (beta * dt / sigma).to(cdt) * ec
    out = xc + drift + torch.sqrt(beta * dt).to(cdt) * z
    if active is not None:
        out = torch.where(_per_sample(active, x), out, xc)
    return out.to(x.dtype)
