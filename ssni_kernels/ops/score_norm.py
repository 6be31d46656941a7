"""Score-norm family: score_norm and its backward op score_norm_backward (kernels: triton/score_norm.py,
csrc/cpu/score_norm.cpp).

Reads top to bottom: public wrapper, fake kernels, autograd, reference adapters. The schemas are in
``ssni_kernels._library``.
"""

from __future__ import annotations

import torch

from ssni_kernels import _checks, _library, reference
from ssni_kernels.ops._grad import require_constant
from ssni_kernels.reference import compute_dtype


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
    _checks.values(op, [_checks.Range("sigma must be finite and > 0", sigma, 0.0, low_open=True)])
    return torch.ops.ssni.score_norm(eps_hat, sigma)


@torch.library.register_fake("ssni::score_norm")
def _(eps_hat, sigma):
    return eps_hat.new_empty((eps_hat.shape[0] // sigma.shape[0],), dtype=compute_dtype(eps_hat.dtype))


@torch.library.register_fake("ssni::score_norm_backward")
def _(grad, eps_hat, sigma, norm):
    return eps_hat.new_empty(eps_hat.shape)


def _score_norm_setup(ctx, inputs, output):
    eps_hat, sigma = inputs
    require_constant("score_norm", sigma=sigma)
    ctx.save_for_backward(eps_hat, sigma, output)


def _score_norm_backward(ctx, grad):
    eps_hat, sigma, norm = ctx.saved_tensors
    return torch.ops.ssni.score_norm_backward(grad.contiguous(), eps_hat, sigma, norm), None


torch.library.register_autograd("ssni::score_norm", _score_norm_backward, setup_context=_score_norm_setup)


@_library.fallback("score_norm")
def _score_norm_reference(eps_hat, sigma):
    # Outputs fresh and contiguous, like the real kernels, so that fake and real layouts agree.
    return reference.score_norm(eps_hat, sigma).contiguous()


@_library.fallback("score_norm_backward")
def _score_norm_backward_reference(grad, eps_hat, sigma, norm):
    with torch.enable_grad():
        leaf = eps_hat.detach().requires_grad_()
        (grad_eps,) = torch.autograd.grad(reference.score_norm(leaf, sigma.detach()), leaf, grad)
    return grad_eps.contiguous()
