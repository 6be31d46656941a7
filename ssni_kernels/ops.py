"""The ``ssni::`` torch.library ops: schemas, fake kernels, autograd, device dispatch and the public wrappers.

Everything about an op except its kernels lives here, once:

- Schemas (namespace ``ssni``), all arguments positional so that ``noise`` can carry a gradient. The step ops
  take ``steps`` (int64 [B], a Philox step word per sample, overriding ``step``) so that rows at different
  steps of their own walks share one call (the streaming engine).
- Kernels: CPU from the compiled ``ssni_kernels._C`` (csrc/cpu/); CUDA from
  ``ssni_kernels.triton.register_cuda_impls(lib)`` (Triton, optionally ``_C_cuda``) when a GPU is present.
  Any op left without a kernel for a device runs the PyTorch reference (``reference.py``); a missing CPU
  extension is announced by one warning at import.
- Autograd: gradients w.r.t. x, eps_hat and noise. Schedule tensors (t, alphas_cumprod, mean_coef, std, sigma,
  a, a_next) are constants: asking for their gradient is an error. Generated noise is a constant too.
- Public wrappers (``ssni_kernels.<op>``) with the signatures of ``reference.py``, validating their arguments
  (``_checks.py``) before dispatch.

A CUDA kernel provider registers with ``lib.impl(name, fn, "CUDA")`` using the schemas below; it may cover any
subset of ``KERNEL_OPS``. Python kernels must give their parameters the schema's defaults: the dispatcher leaves
out trailing arguments that equal their defaults.
"""

from __future__ import annotations

import warnings

import torch

from ssni_kernels import _checks, _extension, reference
from ssni_kernels.reference import VP_BETA_MAX, VP_BETA_MIN, compute_dtype

lib = torch.library.Library("ssni", "DEF")  # noqa: TOR901 (the one definition of the namespace)

SCHEMAS = {
    "noise_inject": "(Tensor x, Tensor t, Tensor alphas_cumprod, Tensor? noise=None, int seed=0, "
    "Tensor? sample_ids=None, int step=0) -> Tensor",
    "noise_inject_levels": "(Tensor x, Tensor mean_coef, Tensor std, Tensor? noise=None, int seed=0, "
    "Tensor? sample_ids=None) -> Tensor",
    "score_norm": "(Tensor eps_hat, Tensor sigma) -> Tensor",
    "score_norm_backward": "(Tensor grad, Tensor eps_hat, Tensor sigma, Tensor norm) -> Tensor",
    "reverse_step": "(Tensor x, Tensor eps_hat, Tensor a, Tensor a_next, float eta, Tensor? noise=None, "
    "int seed=0, Tensor? sample_ids=None, int step=0, Tensor? active=None, Tensor? steps=None) -> Tensor",
    "vp_sde_step": "(Tensor x, Tensor eps_hat, Tensor t, float dt, Tensor? noise=None, int seed=0, "
    f"Tensor? sample_ids=None, int step=0, Tensor? active=None, float beta_min={VP_BETA_MIN}, "
    f"float beta_max={VP_BETA_MAX}, Tensor? steps=None) -> Tensor",
    # Debug/test op: raw Philox4x32-10 words of counters [N, 4] (int64 holding uint32) under key = seed.
    "philox_bits": "(Tensor counters, int seed) -> Tensor",
}
for _name, _schema in SCHEMAS.items():
    lib.define(_name + _schema, tags=(torch.Tag.pt2_compliant_tag,))


# ---------------------------------------------------------------------------------------------------------
# Reference kernels: the fallback for a device without a compiled/Triton kernel (outputs fresh and contiguous,
# like the real kernels, so that fake and real layouts agree)
# ---------------------------------------------------------------------------------------------------------
def _noise_inject_reference(x, t, alphas_cumprod, noise=None, seed=0, sample_ids=None, step=0):
    out = reference.noise_inject(x, t, alphas_cumprod, noise=noise, seed=seed, sample_ids=sample_ids, step=step)
    return out.contiguous()


def _noise_inject_levels_reference(x, mean_coef, std, noise=None, seed=0, sample_ids=None):
    return reference.noise_inject_levels(x, mean_coef, std, noise=noise, seed=seed, sample_ids=sample_ids).contiguous()


def _score_norm_reference(eps_hat, sigma):
    return reference.score_norm(eps_hat, sigma).contiguous()


def _score_norm_backward_reference(grad, eps_hat, sigma, norm):
    with torch.enable_grad():
        leaf = eps_hat.detach().requires_grad_()
        (grad_eps,) = torch.autograd.grad(reference.score_norm(leaf, sigma.detach()), leaf, grad)
    return grad_eps.contiguous()


def _reverse_step_reference(
    x, eps_hat, a, a_next, eta, noise=None, seed=0, sample_ids=None, step=0, active=None, steps=None
):
    step = step if steps is None else steps
    out = reference.reverse_step(
        x, eps_hat, a, a_next, eta=eta, noise=noise, seed=seed, sample_ids=sample_ids, step=step, active=active
    )
    return out.contiguous()


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


def _philox_bits_reference(counters, seed):
    mask = 0xFFFFFFFF
    words = reference.philox4x32_10(*counters.unbind(1), seed & mask, (seed >> 32) & mask)
    return torch.stack(words, dim=1)


REFERENCE_KERNELS = {
    "noise_inject": _noise_inject_reference,
    "noise_inject_levels": _noise_inject_levels_reference,
    "score_norm": _score_norm_reference,
    "score_norm_backward": _score_norm_backward_reference,
    "reverse_step": _reverse_step_reference,
    "vp_sde_step": _vp_sde_step_reference,
    "philox_bits": _philox_bits_reference,
}
KERNEL_OPS = tuple(name for name in SCHEMAS if name != "philox_bits")


# ---------------------------------------------------------------------------------------------------------
# Fake kernels (shapes only; outputs are contiguous)
# ---------------------------------------------------------------------------------------------------------
@torch.library.register_fake("ssni::noise_inject")
def _(x, t, alphas_cumprod, noise=None, seed=0, sample_ids=None, step=0):
    return x.new_empty(x.shape)


@torch.library.register_fake("ssni::noise_inject_levels")
def _(x, mean_coef, std, noise=None, seed=0, sample_ids=None):
    return x.new_empty((mean_coef.shape[0] * x.shape[0], *x.shape[1:]))


@torch.library.register_fake("ssni::score_norm")
def _(eps_hat, sigma):
    return eps_hat.new_empty((eps_hat.shape[0] // sigma.shape[0],), dtype=compute_dtype(eps_hat.dtype))


@torch.library.register_fake("ssni::score_norm_backward")
def _(grad, eps_hat, sigma, norm):
    return eps_hat.new_empty(eps_hat.shape)


@torch.library.register_fake("ssni::reverse_step")
def _(x, eps_hat, a, a_next, eta, noise=None, seed=0, sample_ids=None, step=0, active=None, steps=None):
    return x.new_empty(x.shape)


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


@torch.library.register_fake("ssni::philox_bits")
def _(counters, seed):
    return counters.new_empty(counters.shape)


# ---------------------------------------------------------------------------------------------------------
# Autograd. Every op is affine in (x, eps_hat, noise) per sample, so backward is a per-sample scaling whose
# coefficients are computed here in float64 from the schedule.
# ---------------------------------------------------------------------------------------------------------
def _require_constant(op: str, **schedule) -> None:
    for name, value in schedule.items():
        if isinstance(value, torch.Tensor) and value.requires_grad:
            raise ValueError(
                f"{op}: {name} requires grad, but ssni ops treat schedule tensors as constants "
                f"(no gradient w.r.t. {name}); pass {name}.detach()"
            )


def _float64(v: torch.Tensor) -> torch.Tensor:
    # Always a copy: an op may not return one of its inputs (opcheck's schema test), and `.to` would when v is
    # already float64.
    return v.to(torch.float64, copy=True)


def _scale_rows(grad: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
    """grad_b · coef_b for [B, ...] grad and [B] float64 coef, in the op's arithmetic dtype."""
    cdt = compute_dtype(grad.dtype)
    return (grad.to(cdt) * coef.to(cdt).reshape(-1, *([1] * (grad.dim() - 1)))).to(grad.dtype)


def _noise_inject_setup(ctx, inputs, output):
    x, t, alphas_cumprod, noise = inputs[:4]
    _require_constant("noise_inject", alphas_cumprod=alphas_cumprod)
    a = _float64(alphas_cumprod[t])
    ctx.coef_x, ctx.coef_noise = a.sqrt(), (1 - a).sqrt()
    ctx.noise_given = noise is not None


def _noise_inject_backward(ctx, grad):
    grad_noise = _scale_rows(grad, ctx.coef_noise) if ctx.noise_given else None
    return _scale_rows(grad, ctx.coef_x), None, None, grad_noise, None, None, None


def _noise_inject_levels_setup(ctx, inputs, output):
    x, mean_coef, std, noise = inputs[:4]
    _require_constant("noise_inject_levels", mean_coef=mean_coef, std=std)
    ctx.mean_coef, ctx.std = _float64(mean_coef), _float64(std)
    ctx.noise_given = noise is not None


def _noise_inject_levels_backward(ctx, grad):
    K = ctx.mean_coef.shape[0]
    B = grad.shape[0] // K
    per_level = grad.reshape(K, B, *grad.shape[1:])
    grad_x = _scale_rows(per_level, ctx.mean_coef).to(compute_dtype(grad.dtype)).sum(0).to(grad.dtype)
    grad_noise = _scale_rows(per_level, ctx.std).reshape(grad.shape) if ctx.noise_given else None
    return grad_x, None, None, grad_noise, None, None


def _score_norm_setup(ctx, inputs, output):
    eps_hat, sigma = inputs
    _require_constant("score_norm", sigma=sigma)
    ctx.save_for_backward(eps_hat, sigma, output)


def _score_norm_backward(ctx, grad):
    eps_hat, sigma, norm = ctx.saved_tensors
    return torch.ops.ssni.score_norm_backward(grad.contiguous(), eps_hat, sigma, norm), None


def reverse_step_coefs(a, a_next, eta: float, active=None):
    """Per-sample (cx, ce, cz) in float64 with reverse_step(x, ε̂, z) = cx·x + ce·ε̂ + cz·z (spec §5).

    cx = sqrt(a'/a), ce = c2 − sqrt(a'(1−a)/a), cz = c1; (1, 0, 0) for samples that do not move.
    """
    a, an = _float64(a), _float64(a_next)
    c1 = eta * ((1 - a / an) * (1 - an) / (1 - a)).clamp_min(0).sqrt()
    c2 = (1 - an - c1**2).clamp_min(0).sqrt()
    keep = a == an if active is None else (a == an) | ~active
    one, zero = torch.ones_like(a), torch.zeros_like(a)
    cx = torch.where(keep, one, (an / a).sqrt())
    ce = torch.where(keep, zero, c2 - (an * (1 - a) / a).sqrt())
    cz = torch.where(keep, zero, c1)
    return cx, ce, cz


def vp_sde_step_coefs(t, dt: float, active=None, beta_min=VP_BETA_MIN, beta_max=VP_BETA_MAX):
    """Per-sample (cx, ce, cz) in float64 with vp_sde_step(x, ε̂, z) = cx·x + ce·ε̂ + cz·z (spec §6)."""
    t = _float64(t)
    beta = reference.vp_beta(t, beta_min, beta_max)
    cx, ce, cz = 1 + 0.5 * beta * dt, -beta * dt / reference.vp_sigma(t, beta_min, beta_max), (beta * dt).sqrt()
    if active is None:
        return cx, ce, cz
    return torch.where(active, cx, 1.0), torch.where(active, ce, 0.0), torch.where(active, cz, 0.0)


def _step_backward(ctx, grad):
    cx, ce, cz = ctx.coefs
    grad_noise = _scale_rows(grad, cz) if ctx.noise_given else None
    return _scale_rows(grad, cx), _scale_rows(grad, ce), grad_noise


def _reverse_step_setup(ctx, inputs, output):
    x, eps_hat, a, a_next, eta, noise, seed, sample_ids, step, active, steps = inputs
    _require_constant("reverse_step", a=a, a_next=a_next)
    ctx.coefs = reverse_step_coefs(a, a_next, eta, active)
    ctx.noise_given = noise is not None


def _reverse_step_backward(ctx, grad):
    grad_x, grad_eps, grad_noise = _step_backward(ctx, grad)
    return grad_x, grad_eps, None, None, None, grad_noise, None, None, None, None, None


def _vp_sde_step_setup(ctx, inputs, output):
    x, eps_hat, t, dt, noise, seed, sample_ids, step, active, beta_min, beta_max, steps = inputs
    _require_constant("vp_sde_step", t=t)
    ctx.coefs = vp_sde_step_coefs(t, dt, active, beta_min, beta_max)
    ctx.noise_given = noise is not None


def _vp_sde_step_backward(ctx, grad):
    grad_x, grad_eps, grad_noise = _step_backward(ctx, grad)
    return grad_x, grad_eps, None, None, grad_noise, None, None, None, None, None, None, None


for _name, _backward, _setup in (
    ("noise_inject", _noise_inject_backward, _noise_inject_setup),
    ("noise_inject_levels", _noise_inject_levels_backward, _noise_inject_levels_setup),
    ("score_norm", _score_norm_backward, _score_norm_setup),
    ("reverse_step", _reverse_step_backward, _reverse_step_setup),
    ("vp_sde_step", _vp_sde_step_backward, _vp_sde_step_setup),
):
    torch.library.register_autograd(f"ssni::{_name}", _backward, setup_context=_setup)


# ---------------------------------------------------------------------------------------------------------
# Kernel registration: compiled CPU library, CUDA provider, reference for whatever is left
# ---------------------------------------------------------------------------------------------------------
def _has_kernel(name: str, dispatch_key: str) -> bool:
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"ssni::{name}", dispatch_key)


def _register_cuda_provider() -> None:
    """CUDA kernels of ssni_kernels.triton (Triton; it loads the optional _C_cuda itself), when a GPU is present."""
    if not torch.cuda.is_available():
        return
    try:
        from ssni_kernels.triton import register_cuda_impls
    except ModuleNotFoundError as error:
        if error.name not in ("triton", "ssni_kernels.triton"):
            raise
        warnings.warn(f"ssni_kernels: no Triton kernels ({error}); CUDA ops use the reference path", stacklevel=3)
        return
    register_cuda_impls(lib)


def _register_kernels() -> _extension.LibraryStatus:
    cpu_library = _extension.load("_C")
    if not cpu_library.loaded:
        warnings.warn(
            f"ssni_kernels: compiled CPU kernels unavailable ({cpu_library.reason}); CPU ops run the slower "
            "PyTorch reference path",
            stacklevel=3,
        )
    _register_cuda_provider()
    for name, kernel in REFERENCE_KERNELS.items():
        for dispatch_key in ("CPU", "CUDA"):
            if not _has_kernel(name, dispatch_key):
                lib.impl(name, kernel, dispatch_key)
    return cpu_library


CPU_LIBRARY = _register_kernels()


def cpu_kernels_compiled() -> bool:
    """True when the CPU ops run the compiled C++ kernels (False: reference fallback)."""
    return CPU_LIBRARY.loaded


# ---------------------------------------------------------------------------------------------------------
# Public ops (signatures of reference.py; the math is documented there)
# ---------------------------------------------------------------------------------------------------------
def noise_inject(x, t, alphas_cumprod, *, noise=None, seed=None, sample_ids=None, step=0):
    """Forward diffusion with a timestep per sample: sqrt(ᾱ[t_b])·x_b + sqrt(1 − ᾱ[t_b])·ε_b.

    x: [B, ...] float16/bfloat16/float32/float64; t: [B] integer indices into alphas_cumprod ([T] float);
    noise: like x, or None to draw ε from the Philox stream (seed, sample_ids, step). Returns x's dtype.
    Differentiable w.r.t. x and noise.
    """
    op = "noise_inject"
    _checks.batch(op, "x", x)
    _checks.vector(op, "t", t, x.device, x.shape[0], kind="int")
    _checks.vector(op, "alphas_cumprod", alphas_cumprod, x.device)
    if noise is not None:
        _checks.like(op, "noise", noise, x)
    seed = _checks.seed(op, seed, needed=noise is None)
    _checks.sample_ids(op, sample_ids, x)
    _checks.counter_int(op, "step", step)
    T = alphas_cumprod.shape[0]
    _checks.values(
        op,
        [
            (f"t must be in [0, {T}) (T = len(alphas_cumprod))", (t >= 0) & (t < T)),
            ("alphas_cumprod must be finite and in [0, 1]", _checks.finite_in(alphas_cumprod, 0.0, 1.0)),
        ],
    )
    return torch.ops.ssni.noise_inject(x, t, alphas_cumprod, noise, seed, sample_ids, step)


def noise_inject_levels(x, mean_coef, std, *, noise=None, seed=None, sample_ids=None):
    """K noise levels of one batch, level-major: out[k·B + b] = mean_coef[k]·x_b + std[k]·ε_{k,b}.

    x: [B, ...]; mean_coef, std: [K]; noise: [K·B, ...] or None (level k draws with step = k). Returns
    [K·B, ...] in x's dtype without materialising K copies of x. Differentiable w.r.t. x and noise.
    """
    op = "noise_inject_levels"
    _checks.batch(op, "x", x)
    _checks.vector(op, "mean_coef", mean_coef, x.device)
    K = mean_coef.shape[0]
    _checks.vector(op, "std", std, x.device, K)
    if noise is not None:
        _checks.like(op, "noise", noise, x, shape=(K * x.shape[0], *x.shape[1:]))
    seed = _checks.seed(op, seed, needed=noise is None)
    _checks.sample_ids(op, sample_ids, x)
    _checks.values(
        op,
        [
            ("mean_coef must be finite", torch.isfinite(mean_coef)),
            ("std must be finite and >= 0", _checks.finite_in(std, 0.0, float("inf"))),
        ],
    )
    return torch.ops.ssni.noise_inject_levels(x, mean_coef, std, noise, seed, sample_ids)


def score_norm(eps_hat, sigma):
    """EPS score norm: e_b = ‖ (1/K) Σ_k −eps_hat[k·B + b] / σ_k ‖₂ over all non-batch elements.

    eps_hat: [K·B, ...] level-major; sigma: [K] > 0. Returns [B] float32 (float64 for float64 eps_hat).
    Differentiable w.r.t. eps_hat.
    """
    op = "score_norm"
    _checks.batch(op, "eps_hat", eps_hat)
    _checks.vector(op, "sigma", sigma, eps_hat.device)
    K = sigma.shape[0]
    if eps_hat.shape[0] % K:
        raise ValueError(f"{op}: eps_hat has {eps_hat.shape[0]} rows, not a multiple of K = len(sigma) = {K}")
    _checks.values(op, [("sigma must be finite and > 0", _checks.finite_in(sigma, 0.0, float("inf"), low_open=True))])
    return torch.ops.ssni.score_norm(eps_hat, sigma)


def reverse_step(x, eps_hat, a, a_next, *, eta, noise=None, seed=None, sample_ids=None, step=0, active=None):
    """Generalised DDIM/DDPM step (spec §5) with per-sample ᾱ pairs; see reference.reverse_step for the math.

    x, eps_hat: [B, ...] of one dtype; a, a_next: [B] float in (0, 1]; eta ≥ 0 (1 "ddpm", 0 "ddim"); z from
    noise or the Philox stream (needed when eta ≠ 0); step: an int, or an integer [B] tensor (a step word per
    sample). active: [B] bool or None; inactive samples and samples with a == a_next are returned unchanged.
    Differentiable w.r.t. x, eps_hat and noise.
    """
    op = "reverse_step"
    _checks.batch(op, "x", x)
    _checks.like(op, "eps_hat", eps_hat, x)
    _checks.vector(op, "a", a, x.device, x.shape[0])
    _checks.vector(op, "a_next", a_next, x.device, x.shape[0])
    eta = _checks.scalar(op, "eta", eta, low=0.0)
    if noise is not None:
        _checks.like(op, "noise", noise, x)
    seed = _checks.seed(op, seed, needed=noise is None and eta != 0)
    _checks.sample_ids(op, sample_ids, x)
    step, steps, step_ok = _checks.step_words(op, step, x)
    if active is not None:
        _checks.vector(op, "active", active, x.device, x.shape[0], kind="bool")
    _checks.values(
        op,
        [
            ("a must be finite and in (0, 1]", _checks.finite_in(a, 0.0, 1.0, low_open=True)),
            ("a_next must be finite and in (0, 1]", _checks.finite_in(a_next, 0.0, 1.0, low_open=True)),
            *step_ok,
        ],
    )
    return torch.ops.ssni.reverse_step(x, eps_hat, a, a_next, eta, noise, seed, sample_ids, step, active, steps)


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

    x, eps_hat: [B, ...] of one dtype; t: [B] float in (0, 1]; dt > 0; z from noise or the Philox stream; step:
    an int or an integer [B] tensor. active: [B] bool or None (inactive samples are returned unchanged).
    Differentiable w.r.t. x, eps_hat, noise.
    """
    op = "vp_sde_step"
    _checks.batch(op, "x", x)
    _checks.like(op, "eps_hat", eps_hat, x)
    _checks.vector(op, "t", t, x.device, x.shape[0])
    dt = _checks.scalar(op, "dt", dt, low=0.0, low_open=True)
    beta_min = _checks.scalar(op, "beta_min", beta_min, low=0.0)
    beta_max = _checks.scalar(op, "beta_max", beta_max, low=beta_min)
    if noise is not None:
        _checks.like(op, "noise", noise, x)
    seed = _checks.seed(op, seed, needed=noise is None)
    _checks.sample_ids(op, sample_ids, x)
    step, steps, step_ok = _checks.step_words(op, step, x)
    if active is not None:
        _checks.vector(op, "active", active, x.device, x.shape[0], kind="bool")
    t_ok = ("t must be finite and in (0, 1]", _checks.finite_in(t, 0.0, 1.0, low_open=True))
    _checks.values(op, [t_ok, *step_ok])
    return torch.ops.ssni.vp_sde_step(
        x, eps_hat, t, dt, noise, seed, sample_ids, step, active, beta_min, beta_max, steps
    )
