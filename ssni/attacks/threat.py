"""The threat model: Linf / L2 balls around x intersected with [0, 1], ascent directions, argument checks.

All functions work per sample on [B, ...] tensors (norms over every non-batch dimension).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from ssni.attacks.defended import STREAM_RANDOM_START, derive_seed
from ssni_kernels.reference import normal_noise

__all__ = [
    "Norm",
    "ascent_direction",
    "check_attack_inputs",
    "check_positive_int",
    "check_radius",
    "require_eps",
    "lp_norm",
    "per_sample",
    "project",
    "random_start",
    "uniform_in_ball",
]

Norm = Literal["Linf", "L2"]
NORMS = ("Linf", "L2")

# Keeps g/||g|| finite where the gradient vanishes (then the step is zero, not NaN).
_TINY = 1e-12


def per_sample(v: Tensor, like: Tensor) -> Tensor:
    """[B] → [B, 1, 1, ...] to broadcast against a [B, ...] tensor."""
    return v.reshape(-1, *([1] * (like.dim() - 1)))


def lp_norm(delta: Tensor, norm: Norm) -> Tensor:
    """Per-sample ||delta||_∞ or ||delta||_2 over all non-batch dimensions → [B]."""
    flat = delta.flatten(1)
    return flat.abs().amax(dim=1) if norm == "Linf" else flat.norm(p=2, dim=1)


def project(x_adv: Tensor, x: Tensor, norm: Norm, eps: float) -> Tensor:
    """Nearest point of the ε-ball around x (Linf: clip to [x − ε, x + ε]; L2: radial rescale), then clamp to [0, 1].

    The Linf clip is min(max(x_adv, x − ε), x + ε), AutoAttack's arithmetic: a point inside the ball comes back
    bit for bit, so APGD's iterates equal AutoAttack's exactly. Clamping after the L2 rescale stays inside the
    ball because x itself lies in [0, 1].
    """
    if norm == "Linf":
        return torch.minimum(torch.maximum(x_adv, x - eps), x + eps).clamp(0.0, 1.0)
    delta = x_adv - x
    scale = (eps / lp_norm(delta, "L2").clamp_min(_TINY)).clamp(max=1.0)
    return (x + delta * per_sample(scale, delta)).clamp(0.0, 1.0)


def ascent_direction(grad: Tensor, norm: Norm, *, l2_step: Literal["normalized", "sign"] = "normalized") -> Tensor:
    """The steepest-ascent unit step of the norm: sign(g) for Linf, g/||g||_2 for L2.

    `l2_step="sign"` is the reference code's L2 PGD quirk (spec §10): a sign step, then the L2 projection.
    """
    if norm == "Linf" or l2_step == "sign":
        return grad.sign()
    return grad / per_sample(lp_norm(grad, "L2").clamp_min(_TINY), grad)


def _start_noise(x: Tensor, extra: int, *, seed: int, sample_ids: Tensor, restart: int) -> Tensor:
    """Philox normals [B, C·H·W + extra] keyed on (derive_seed(seed, STREAM_RANDOM_START, restart), sample id)."""
    seed = derive_seed(seed, STREAM_RANDOM_START, restart)
    return normal_noise((x[0].numel() + extra,), seed, sample_ids, 0, 0, dtype=x.dtype, device=x.device)


def random_start(x: Tensor, norm: Norm, eps: float, *, seed: int, sample_ids: Tensor, restart: int) -> Tensor:
    """A batch-invariant random point ON the ε-sphere (Croce & Hein's APGD start), clamped to [0, 1].

    Linf: u ~ U(−1, 1)^d (as erf(z/√2) of Philox normals z), x + ε·u/||u||_∞. L2: x + ε·z/||z||_2.
    The noise is the ssni Philox stream keyed on (derive_seed(seed, STREAM_RANDOM_START, restart), sample id).
    """
    z = _start_noise(x, 0, seed=seed, sample_ids=sample_ids, restart=restart).reshape(x.shape)
    u = torch.erf(z / math.sqrt(2.0)) if norm == "Linf" else z
    return (x + eps * u / per_sample(lp_norm(u, norm).clamp_min(_TINY), u)).clamp(0.0, 1.0)


def uniform_in_ball(x: Tensor, norm: Norm, eps: float, *, seed: int, sample_ids: Tensor) -> Tensor:
    """A batch-invariant point drawn uniformly from the ε-ball around x, clamped to [0, 1] (PGD's random start,
    Madry et al. 2018).

    Linf: x + ε·u with u ~ U(−1, 1)^d per pixel (u = erf(z/√2) of Philox normals z).
    L2: x + ε·r^(1/d)·z/||z||_2 with r ~ U(0, 1) (r = Φ(z₀) of one more normal): uniform in the d-ball.
    The noise is `random_start`'s stream (restart 0) keyed on (seed, sample id).
    """
    if norm == "Linf":
        z = _start_noise(x, 0, seed=seed, sample_ids=sample_ids, restart=0).reshape(x.shape)
        return (x + eps * torch.erf(z / math.sqrt(2.0))).clamp(0.0, 1.0)
    noise = _start_noise(x, 1, seed=seed, sample_ids=sample_ids, restart=0)
    z, z0 = noise[:, :-1].reshape(x.shape), noise[:, -1]
    radius = eps * (0.5 * (1 + torch.erf(z0 / math.sqrt(2.0)))) ** (1.0 / x[0].numel())
    return (x + per_sample(radius, z) * z / per_sample(lp_norm(z, "L2").clamp_min(_TINY), z)).clamp(0.0, 1.0)


def check_positive_int(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")


def check_radius(value: object, name: str, *, allow_zero: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value}")


def require_eps(norm: str, eps: float | None, attack: str) -> float:
    """eps itself; None is an error naming it (`attack` has no default radius: the right one depends on the data)."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if eps is None:
        raise ValueError(
            f"{attack} needs eps, the radius of the {norm} threat ball in [0, 1] pixel units (e.g. 8/255 Linf or "
            "0.5 L2 on CIFAR-10, 4/255 Linf on ImageNet, 0.3 Linf on MNIST); it has no default"
        )
    return eps


def check_attack_inputs(x: Tensor, y: Tensor, sample_ids: Tensor, *, norm: str, eps: float) -> None:
    """Clear errors for what every attack needs: images in [0, 1], one label and one id per sample, a ball."""
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {getattr(x, 'dtype', type(x).__name__)}")
    if x.dim() < 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty batch [B, ...], got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("x contains NaN or Inf")
    if x.min() < 0 or x.max() > 1:
        raise ValueError(f"x must lie in [0, 1], got values in [{x.min().item():.4g}, {x.max().item():.4g}]")
    for name, v in (("y", y), ("sample_ids", sample_ids)):
        if not isinstance(v, Tensor) or v.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"{name} must be an int64 tensor, got {getattr(v, 'dtype', type(v).__name__)}")
        if v.shape != (x.shape[0],):
            raise ValueError(f"{name} must have shape ({x.shape[0]},) to match x, got {tuple(v.shape)}")
        if v.device != x.device:
            raise ValueError(f"{name} is on {v.device} but x is on {x.device}")
    if (y < 0).any():
        raise ValueError("y must hold class indices >= 0")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    check_radius(eps, "eps", allow_zero=True)
