"""Square Attack (Andriushchenko et al., ECCV 2020), score-based and gradient-free, as AutoAttack "standard" runs it.

Per sample, minimise the margin m(x') = f_y(x') − max_{i≠y} f_i(x') over random square updates of the
perturbation, keeping an update when it lowers the margin, until m ≤ 0 or the queries run out:

- Linf: start at x + ε·(±1 per vertical stripe of each channel); query k adds ±2ε (one sign per channel) on an
  s×s window, then projects onto the ball ∩ [0, 1].
- L2: start at x + ε·δ/‖δ‖ with δ a grid of ±η-windows (η: a square of nested rings, 1/(r+1)² weights, positive
  in one half and negative in the other); query k moves the mass of a second s×s window into the first,
  reshaped as ±η plus the old window content, and rescales the whole perturbation to ‖δ‖ = ε.

The window side follows AutoAttack's schedule without rescaling (`resc_schedule=False`): p = p_init/2^j after
query 10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000, and s = round(√(p·H·W)) (at least 1 for Linf; odd and at
least 3 for L2), at most min(H, W); windows start at [0, H − s) × [0, W − s).

Differences from AutoAttack, by design: every sample draws its own window positions, signs and η orientations
from the Philox stream keyed on (derive_seed(seed, STREAM_SQUARE, 0), sample id, query) (batch-invariant;
AutoAttack draws one window per query for the whole batch, like its torch.rand), and queries go to the
surrogate with fresh draws (`surrogate_logits`), the final judgement to `model.logits`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ssni.attacks.defended import STREAM_SQUARE, DefendedModel, derive_seed, surrogate_logits
from ssni.attacks.losses import margin
from ssni.attacks.pgd_eot import AttackResult, misclassified
from ssni.attacks.threat import Norm, check_attack_inputs, check_positive_int, lp_norm, per_sample, project, require_eps
from ssni_kernels.reference import normal_noise

__all__ = ["check_square_images", "square", "square_window_size"]

_SCHEDULE = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
_QUERY_CHUNK = 100  # queries whose random numbers are drawn in one call


def square_window_size(query: int, *, p_init: float, height: int, width: int, norm: Norm) -> int:
    """Side s of the window that query `query` (0-based) changes; see the module docstring."""
    p = p_init / 2 ** sum(query > boundary for boundary in _SCHEDULE)
    s = round(math.sqrt(p * height * width))
    if norm == "L2":
        s = max(s, 3)
        s += 1 - s % 2
    return min(max(s, 1), height, width)


def check_square_images(x: Tensor, norm: Norm) -> None:
    """Square needs images [B, C, H, W], at least 5×5 for L2 (its start point is a 5×5 grid of windows)."""
    if x.dim() != 4:
        raise ValueError(f"square needs images [B, C, H, W], got shape {tuple(x.shape)}")
    if norm == "L2" and min(x.shape[-2:]) < 5:
        raise ValueError(f"L2 square needs images of at least 5×5 pixels, got {x.shape[-2]}×{x.shape[-1]}")


def _normals(count: int, square_seed: int, sample_ids: Tensor, queries: range) -> Tensor:
    """[len(queries), B, count] standard normals of the given queries (0: the start point) from the Philox stream:
    entry [k, b] depends only on (square_seed, sample_ids[b], queries[k]), so the squares do not depend on the
    batch. One call for many queries: the per-call cost of the generator dominates at small sizes."""
    steps = torch.arange(queries.start, queries.stop, device=sample_ids.device).repeat_interleave(sample_ids.shape[0])
    z = normal_noise((count,), square_seed, sample_ids.repeat(len(queries)), steps, 0, device=sample_ids.device)
    return z.view(len(queries), sample_ids.shape[0], count)


def _signs(z: Tensor) -> Tensor:
    return torch.where(z >= 0, 1.0, -1.0)


def _positions(z: Tensor, choices: int) -> Tensor:
    """Uniform integers in [0, choices) from standard normals z (through Φ)."""
    u = 0.5 * torch.erfc(-z / math.sqrt(2.0))
    return (u * choices).long().clamp(max=choices - 1)


def _window_index(top: Tensor, left: Tensor, s: int, channels: int) -> tuple[Tensor, ...]:
    """Advanced indices selecting the s×s window at (top[b], left[b]) of every channel: t[idx] is [B, C, s, s]."""
    offsets = torch.arange(s, device=top.device)
    batch = torch.arange(top.shape[0], device=top.device)[:, None, None, None]
    channel = torch.arange(channels, device=top.device)[None, :, None, None]
    return batch, channel, (top[:, None] + offsets)[:, None, :, None], (left[:, None] + offsets)[:, None, None, :]


def _window_mask(top: Tensor, left: Tensor, s: int, height: int, width: int) -> Tensor:
    rows = torch.arange(height, device=top.device)
    cols = torch.arange(width, device=top.device)
    in_rows = (rows >= top[:, None]) & (rows < top[:, None] + s)
    in_cols = (cols >= left[:, None]) & (cols < left[:, None] + s)
    return (in_rows[:, :, None] & in_cols[:, None, :])[:, None]  # [B, 1, H, W]


def _rings(rows: int, cols: int, device) -> Tensor:
    """rows×cols block of nested square rings around (rows//2, cols//2): the cell at Chebyshev distance r gets
    Σ_{r ≤ j < n} 1/(j+1)², n = max(rows//2, cols//2) + 1 (added ring by ring, j ascending); unit L2 norm."""
    i = (torch.arange(rows, device=device) - rows // 2).abs()
    j = (torch.arange(cols, device=device) - cols // 2).abs()
    ring = torch.maximum(i[:, None], j[None, :])
    block = torch.zeros(rows, cols, device=device)
    for r in range(max(rows // 2, cols // 2) + 1):
        block = block + (ring <= r) / float(r + 1) ** 2
    return block / block.pow(2).sum().sqrt()


def _eta(s: int, transpose: Tensor) -> Tensor:
    """The L2 update shape [B, 1, s, s]: rings in the top half, negated rings in the bottom half, unit norm;
    transposed for the samples where `transpose` [B] is set."""
    eta = torch.cat([_rings(s // 2, s, transpose.device), -_rings(s - s // 2, s, transpose.device)], dim=0)
    eta = eta / eta.pow(2).sum().sqrt()
    return torch.where(transpose[:, None, None, None], eta.T, eta)


def _l2_normalized(delta: Tensor) -> Tensor:
    return delta / per_sample(lp_norm(delta, "L2") + 1e-12, delta)


def _linf_start(x: Tensor, eps: float, z: Callable[[int], Tensor]) -> Tensor:
    b, c, _, w = x.shape
    stripes = _signs(z(c * w)).view(b, c, 1, w)
    return (x + eps * stripes).clamp(0.0, 1.0)


def _l2_start(x: Tensor, eps: float, z: Callable[[int], Tensor]) -> Tensor:
    b, c, h, w = x.shape
    s = h // 5
    first = (h - 5 * s) // 2
    tops = [first + k * s for k in range(h // s) if first + (k + 1) * s <= h]
    lefts = [first + k * s for k in range(w // s) if first + (k + 1) * s <= w]
    z = z(len(tops) * len(lefts) * (c + 1)).view(b, len(tops) * len(lefts), c + 1)
    delta = torch.zeros_like(x)
    for n, (top, left) in enumerate((t, left) for t in tops for left in lefts):
        eta = _eta(s, z[:, n, c] > 0)
        delta[:, :, top : top + s, left : left + s] += eta * _signs(z[:, n, :c])[:, :, None, None]
    return (x + eps * _l2_normalized(delta)).clamp(0.0, 1.0)


def _linf_query(x: Tensor, x_best: Tensor, eps: float, s: int, z: Tensor) -> Tensor:
    b, c, h, w = x.shape
    top, left = _positions(z[:, c], max(h - s, 1)), _positions(z[:, c + 1], max(w - s, 1))
    update = 2.0 * eps * _signs(z[:, :c])[:, :, None, None] * _window_mask(top, left, s, h, w)
    return project(x_best + update, x, "Linf", eps)


def _l2_query(x: Tensor, x_best: Tensor, eps: float, s: int, z: Tensor) -> Tensor:
    b, c, h, w = x.shape
    top, left, top2, left2 = (_positions(z[:, c + k], max((h, w, h, w)[k] - s, 1)) for k in range(4))
    delta = x_best - x
    window = _window_index(top, left, s, c)
    old = delta[window]
    old_norm = old.pow(2).sum(dim=(-2, -1), keepdim=True).sqrt()
    both = _window_mask(top, left, s, h, w) | _window_mask(top2, left2, s, h, w)
    both_norm = (delta * both).pow(2).sum(dim=(-2, -1), keepdim=True).sqrt()
    image_norm = per_sample(lp_norm(delta, "L2"), delta)
    new = _eta(s, z[:, c + 4] > 0) * _signs(z[:, :c])[:, :, None, None] + old / (1e-12 + old_norm)
    budget = ((eps**2 - image_norm**2).clamp_min(0.0) / c + both_norm**2).sqrt()
    new = new / (1e-12 + new.pow(2).sum(dim=(-2, -1), keepdim=True).sqrt()) * budget
    delta = delta * ~_window_mask(top2, left2, s, h, w)
    delta[window] = new
    return (x + eps * _l2_normalized(delta)).clamp(0.0, 1.0)


def square(
    model: DefendedModel,
    x: Tensor,
    y: Tensor,
    *,
    sample_ids: Tensor,
    norm: Norm = "Linf",
    eps: float,
    queries: int = 5000,
    p_init: float = 0.8,
    seed: int = 0,
    first_iteration: int = 0,
    on_iteration: Callable[[int], None] | None = None,
) -> AttackResult:
    """Square Attack (margin loss, one restart) against `model`: x [B, C, H, W] in [0, 1], y [B] int64,
    sample_ids [B]; eps: the radius, no default; L2 needs H, W ≥ 5.

    queries: square updates after the start point (AutoAttack "standard": 5,000); query k goes to the surrogate
      at iteration first_iteration + 1 + k, the start point at first_iteration.
    seed: keys the random squares (see the module docstring).
    on_iteration: called with k after query k (only while some sample is still unbroken).

    Returns `AttackResult`: x_adv [B, C, H, W], per sample the lowest-margin point found (in the ball);
    success [B] bool judged by `model.logits`.
    """
    eps = require_eps(norm, eps, "Square")
    check_attack_inputs(x, y, sample_ids, norm=norm, eps=eps)
    check_positive_int(queries, "queries")
    check_square_images(x, norm)
    if not 0.0 < p_init <= 1.0:
        raise ValueError(f"p_init must lie in (0, 1], got {p_init}")
    _, c, h, w = x.shape
    x = x.detach()
    square_seed = derive_seed(seed, STREAM_SQUARE, 0)
    start = _linf_start if norm == "Linf" else _l2_start
    x_best = start(x, eps, lambda count: _normals(count, square_seed, sample_ids, range(1))[0])
    margin_best = margin(surrogate_logits(model, x_best, sample_ids=sample_ids, iteration=first_iteration), y)
    query = _linf_query if norm == "Linf" else _l2_query
    draw_count = c + (2 if norm == "Linf" else 5)
    for k in range(queries):
        todo = (margin_best > 0).nonzero().squeeze(1)
        if todo.numel() == 0:
            break
        if k % _QUERY_CHUNK == 0:
            chunk = _normals(draw_count, square_seed, sample_ids, range(k + 1, min(k + _QUERY_CHUNK, queries) + 1))
        s = square_window_size(k, p_init=p_init, height=h, width=w, norm=norm)
        ids = sample_ids[todo]
        x_new = query(x[todo], x_best[todo], eps, s, chunk[k % _QUERY_CHUNK, todo])
        m = margin(surrogate_logits(model, x_new, sample_ids=ids, iteration=first_iteration + 1 + k), y[todo])
        better = m < margin_best[todo]
        x_best[todo] = torch.where(per_sample(better, x_new), x_new, x_best[todo])
        margin_best[todo] = torch.where(better, m, margin_best[todo])
        if on_iteration is not None:
            on_iteration(k)
    return AttackResult(x_adv=x_best, success=misclassified(model, x_best, y, sample_ids))
