"""EPS score norm (spec §2): the norm of the mean score over K small noise levels.

    x_s = 2x − 1;  t_k = k/1000 (k = 1..K);  x_k = m(t_k)·x_s + σ(t_k)·z_k
    e(x) = ‖ (1/K) Σ_k −ε̂(x_k, 999·t_k)/σ(t_k) ‖₂        (over C·H·W; the norm of the MEAN score)

The K levels are evaluated as one level-major batch of K·B (`noise_inject_levels`), in network calls of at most
`chunk_size` samples, and reduced by `score_norm`. No gradient flows (the reference protocol). Noise: level k
(0-based) of sample id s draws from (seed, s, step=k, stream noise_inject_levels), so e(x) of a sample does not
depend on its batch or on the chunking.
"""

from __future__ import annotations

import torch
from torch import nn

import ssni_kernels
from ssni.models.interface import CallCounter, as_eps_model, network_labels
from ssni.schedules import eps_levels
from ssni.validate import check_images, check_int, check_sample_ids, check_seed

__all__ = ["eps_score_norm", "score_levels"]


def score_levels(num_levels: int, device=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The K levels of §2 as the network and the ops take them: (labels 999·t_k float32 [K], m(t_k), σ(t_k)
    float64 [K]), on `device`."""
    t, m, sigma = eps_levels(num_levels)
    return network_labels(t, "continuous").to(device), m.to(device), sigma.to(device)


@torch.no_grad()
def eps_score_norm(
    model: nn.Module,
    x: torch.Tensor,
    num_levels: int = 20,
    *,
    seed: int,
    sample_ids: torch.Tensor | None = None,
    chunk_size: int | None = None,
    counter: CallCounter | None = None,
) -> torch.Tensor:
    """e(x) for images x in [0, 1] [B, C, H, W] → float32 [B] (float64 for float64 x).

    model: ε-network called with the continuous label 999·t_k (float32); num_levels: K (T' in the paper: 20 for
    CIFAR-10, 50 for ImageNet); chunk_size: the most samples per network call (None: all K·B at once);
    counter: a CallCounter to add the network calls to.
    """
    check_images(x)
    check_seed(seed)
    ids = check_sample_ids(sample_ids, x.shape[0], x.device)
    check_int("chunk_size", chunk_size, low=1, optional=True)
    model = as_eps_model(model)
    labels, m, sigma = score_levels(num_levels, x.device)
    K, B = num_levels, x.shape[0]
    # Chunk over samples (all K levels of a sample stay together) so the noise keys do not change.
    per_chunk = B if chunk_size is None else max(1, chunk_size // K)
    norms = []
    for start in range(0, B, per_chunk):
        xs = 2 * x[start : start + per_chunk] - 1
        b = xs.shape[0]
        noisy = ssni_kernels.noise_inject_levels(xs, m, sigma, seed=seed, sample_ids=ids[start : start + b])
        lab = labels.repeat_interleave(b)
        step = K * b if chunk_size is None else min(chunk_size, K * b)
        eps = []
        for j in range(0, K * b, step):
            eps.append(model(noisy[j : j + step], lab[j : j + step]))
            if counter is not None:
                counter.add(eps[-1].shape[0])
        norms.append(ssni_kernels.score_norm(torch.cat(eps), sigma))
    return torch.cat(norms)
