"""EPS score norm (spec §2): the norm of the mean score over K small noise levels.

    x_s = 2x − 1;  t_k = k/1000 (k = 1..K);  x_k = m(t_k)·x_s + σ(t_k)·z_k
    e(x) = ‖ (1/K) Σ_k −ε̂(x_k, 999·t_k)/σ(t_k) ‖₂        (over C·H·W; the norm of the MEAN score)

The K levels are evaluated as one level-major batch of K·B (`noise_inject_levels`), in network calls of at most
`chunk_size` samples, and reduced by `score_norm`. The defence takes no gradient (the reference protocol);
`grad=True` is the score-aware attack's path (`ssni.attacks.score_aware`): e(x) is then differentiable in x through
`noise_inject_levels`, the network and `score_norm`'s backward op, with each chunk of samples recomputed in the
backward pass (gradient checkpointing). Noise: level k (0-based) of sample id s draws from (seed, s, step=k, stream
noise_inject_levels), so e(x) of a sample does not depend on its batch or on the chunking, and the recomputation
is exact.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

import ssni_kernels
from ssni.models.interface import CallCounter, as_eps_model, check_time_labels, network_labels
from ssni.schedules import eps_levels
from ssni.validate import check_images, check_int, check_sample_ids, check_seed

__all__ = ["eps_score_norm", "score_levels"]


def score_levels(num_levels: int, device=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The K levels of §2 as the network and the ops take them: (labels 999·t_k float32 [K], m(t_k), σ(t_k)
    float64 [K]), on `device`."""
    t, m, sigma = eps_levels(num_levels)
    return network_labels(t, "continuous").to(device), m.to(device), sigma.to(device)


def eps_score_norm(
    model: nn.Module,
    x: torch.Tensor,
    num_levels: int = 20,
    *,
    seed: int,
    sample_ids: torch.Tensor | None = None,
    chunk_size: int | None = None,
    counter: CallCounter | None = None,
    grad: bool = False,
    antithetic: bool = False,
) -> torch.Tensor:
    """e(x) for images x in [0, 1] [B, C, H, W] → float32 [B] (float64 for float64 x).

    model: ε-network called with the continuous, fractional label 999·t_k (float32; probed once by
    `ssni.models.interface.check_time_labels`, which warns when the network truncates it); num_levels: K (T' in
    the paper: 20 for CIFAR-10, 50 for ImageNet); chunk_size: the most samples per network call (None: all K·B at once);
    counter: a CallCounter to add the network calls to (forward passes only, not the backward recomputation);
    grad: False (no graph, whatever the grad mode) or True (differentiable in x; memory: the activations of one
    chunk of at most max(chunk_size, K) network rows at a time, plus the inputs and norms);
    antithetic: the levels m_k·x_s − σ_k·z_k (the same keyed z_k, negated; equally distributed). The defence never
    uses it: averaging a draw with its antithetic draw cancels the leading noise term of ∇e (the score of x_k is
    ≈ −z_k/σ_k near the data), which an attack's gradient estimate needs (`ssni.attacks.score_aware`).
    """
    check_images(x)
    check_seed(seed)
    ids = check_sample_ids(sample_ids, x.shape[0], x.device)
    check_int("chunk_size", chunk_size, low=1, optional=True)
    for name, flag in (("grad", grad), ("antithetic", antithetic)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be a bool, got {flag!r}")
    model = as_eps_model(model)
    check_time_labels(model, 2 * x[:1] - 1)  # fractional labels below: warn once if the network truncates them
    labels, m, sigma = score_levels(num_levels, x.device)
    K, B = num_levels, x.shape[0]
    # Chunk over samples (all K levels of a sample stay together) so the noise keys do not change.
    per_chunk = B if chunk_size is None else max(1, chunk_size // K)

    def network_rows(b: int) -> list[slice]:
        """The network calls of a chunk of b samples: slices of its K·b level-major rows."""
        step = K * b if chunk_size is None else min(chunk_size, K * b)
        return [slice(j, min(j + step, K * b)) for j in range(0, K * b, step)]

    def chunk_norms(xs: torch.Tensor, chunk_ids: torch.Tensor) -> torch.Tensor:
        x_s = 2 * xs - 1
        noisy = ssni_kernels.noise_inject_levels(x_s, m, sigma, seed=seed, sample_ids=chunk_ids)
        if antithetic:  # m·x − σz = 2·(m·x) − (m·x + σz)
            noisy = 2 * torch.einsum("k,b...->kb...", m.to(x_s.dtype), x_s).reshape(noisy.shape) - noisy
        lab = labels.repeat_interleave(xs.shape[0])
        eps = torch.cat([model(noisy[rows], lab[rows]) for rows in network_rows(xs.shape[0])])
        return ssni_kernels.score_norm(eps, sigma)

    norms = []
    with torch.set_grad_enabled(grad):
        for start in range(0, B, per_chunk):
            xs, chunk_ids = x[start : start + per_chunk], ids[start : start + per_chunk]
            if grad:
                norms.append(checkpoint(chunk_norms, xs, chunk_ids, use_reentrant=False))
            else:
                norms.append(chunk_norms(xs, chunk_ids))
            if counter is not None:
                for rows in network_rows(xs.shape[0]):
                    counter.add(rows.stop - rows.start)
    return torch.cat(norms)
