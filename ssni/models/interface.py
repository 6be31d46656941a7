"""The ε-model interface: how purifiers and the score norm call a diffusion network.

Contract: any `nn.Module` with `forward(x, t) -> ε̂`, where x is [B, C, H, W] in model space [−1, 1] and t is a
float32 tensor [B] of the labels the network expects (float32 always, never int64: they are not always integers):
- discrete purifiers (DDPM/DDIM, GNS, GDMP) pass the integer index i of the DDPM schedule (as float32,
  integer-valued, 0 ≤ i ≤ 999). A constant t* noises at index t* − 1 and walks i = t* − 1, …, 0 (DiffPure's
  convention): t* = 100 means x_t = sqrt(ᾱ[99])·x_s + sqrt(1 − ᾱ[99])·z, then 100 reverse steps;
- the score norm (§2) passes the continuous label 999·t_k, t_k = k/1000, k = 1..K: FRACTIONAL values 0.999,
  1.998, …, 0.999·K; the SDE purifier (§6) passes 999·τ along its time grid (or floor(1000·τ) for the discrete
  ImageNet ADM, an option of the SDE purifier).
A network that truncates its label (an `nn.Embedding` indexed by `t.long()`, say) works in the discrete walks but
gets wrong score norms, hence wrong SSNI t, silently (0.999 → 0). `check_time_labels` probes every network once
when score norms are computed with it and warns when it truncates or rounds.
A plain module works everywhere without wrapping: `as_eps_model` wraps it in `EpsModel`, which
- keeps the first C channels of a learned-σ output (2C channels, e.g. ADM's 6), or `out_channels` if given;
- unwraps outputs that carry the tensor in `.sample` (diffusers) or as the first element of a tuple;
- checks that ε̂ has the shape of x, with a clear error otherwise.
"""

from __future__ import annotations

import warnings
import weakref
from dataclasses import dataclass

import torch
from torch import nn

from ssni.validate import value_checks_allowed

__all__ = [
    "CallCounter",
    "EpsModel",
    "as_eps_model",
    "check_time_labels",
    "LABEL_DTYPE",
    "LABEL_CONVENTIONS",
    "network_labels",
]

LABEL_DTYPE = torch.float32
LABEL_CONVENTIONS = ("index", "continuous", "discrete")


def network_labels(values: torch.Tensor, convention: str) -> torch.Tensor:
    """The float32 time labels an ε-network is called with (the one place the convention lives).

    "index": values are discrete DDPM indices i (int), label i (DDPM/DDIM, GNS, GDMP walks);
    "continuous": values are times τ ∈ (0, 1], label 999·τ (score_sde's continuous models; the score norm's
    levels, §2; the SDE host's default);
    "discrete": values are times τ, label floor(1000·τ) (DiffPure's SDE with the discrete ImageNet ADM).
    """
    if convention == "index":
        return values.to(LABEL_DTYPE)
    if convention == "continuous":
        return (999 * values).to(LABEL_DTYPE)
    if convention == "discrete":
        # The guard keeps float64 rounding of a time grid (1000·(0.1 − 0.001) = 98.99999999999999) on the index.
        return torch.floor(1000 * values + 1e-6).to(LABEL_DTYPE)
    raise ValueError(f"convention must be one of {LABEL_CONVENTIONS}, got {convention!r}")


@dataclass
class CallCounter:
    """Network forward passes and per-sample evaluations since the last reset()."""

    network_calls: int = 0
    samples_evaluated: int = 0

    def add(self, batch: int) -> None:
        self.network_calls += 1
        self.samples_evaluated += int(batch)

    def reset(self) -> None:
        self.network_calls = 0
        self.samples_evaluated = 0


class EpsModel(nn.Module):
    """Adapter around an ε-predicting network: ε̂ = net(x, t)[:, :C], shape-checked.

    t: float32 [B] time labels (module docstring): integer-valued DDPM indices in the discrete walks (t* noises at
    index t* − 1), fractional 999·t_k in the score norm, so `net` must accept non-integer labels.

    net: the network; out_channels: how many leading output channels are ε̂ (None: C of the input, with a 2C
    learned-σ output detected automatically).
    """

    def __init__(self, net: nn.Module, out_channels: int | None = None):
        super().__init__()
        if isinstance(net, EpsModel):
            net = net.net
        if not callable(net):
            raise TypeError(f"net must be a callable nn.Module, got {type(net).__name__}")
        if out_channels is not None and (not isinstance(out_channels, int) or out_channels < 1):
            raise ValueError(f"out_channels must be a positive int or None, got {out_channels!r}")
        self.net = net
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = self.net(x, t)
        if hasattr(out, "sample"):
            out = out.sample
        elif isinstance(out, (tuple, list)):
            out = out[0]
        if not isinstance(out, torch.Tensor) or out.dim() != x.dim() or out.shape[0] != x.shape[0]:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"the ε-model must return a tensor shaped like x {tuple(x.shape)}, got {got}")
        c = x.shape[1] if self.out_channels is None else self.out_channels
        if self.out_channels is None and out.shape[1] not in (c, 2 * c):
            raise ValueError(
                f"the ε-model returned {out.shape[1]} channels for a {c}-channel input (expected {c}, or {2 * c} "
                "with learned σ); pass EpsModel(net, out_channels=...)"
            )
        out = out[:, :c]
        if out.shape != x.shape:
            raise ValueError(f"ε̂ has shape {tuple(out.shape)}, expected {tuple(x.shape)}")
        return out


def as_eps_model(model: nn.Module) -> EpsModel:
    """`model` itself if it is an EpsModel, else `EpsModel(model)` (auto-detecting learned-σ outputs)."""
    return model if isinstance(model, EpsModel) else EpsModel(model)


#: Labels of the truncation probe: a, a + ½, a + 1 (floor, trunc, ceil and round all map a + ½ onto a neighbour).
PROBE_LABELS = (1.0, 1.5, 2.0)
#: The a + ½ output counts as equal to a neighbour's when within this fraction of the a-to-(a + 1) difference.
PROBE_TOLERANCE = 1e-4
_probed: weakref.WeakSet = weakref.WeakSet()  # networks already probed (each once per process)


def check_time_labels(model: nn.Module, x_s: torch.Tensor) -> bool:
    """Warn (once per network) when `model` truncates or rounds fractional time labels; returns whether it did.

    The probe evaluates ε̂(x, a), ε̂(x, a + ½), ε̂(x, a + 1) for the first row x of x_s (model space [B, C, H, W])
    and a = 1, each in its own call without gradient (3 single-row evaluations, not counted by the call counters).
    If the outputs at a and a + 1 differ but the one at a + ½ equals either of them (within PROBE_TOLERANCE of
    their difference), the network does not see fractional labels and the score norm, which calls it with
    999·t_k (0.999, 1.998, …), is wrong: one UserWarning. A network that ignores t (equal outputs at a and a + 1)
    is not flagged. Skipped while tracing for torch.compile or capturing a CUDA graph.
    """
    net = model.net if isinstance(model, EpsModel) else model
    if net in _probed or not value_checks_allowed():
        return False
    _probed.add(net)
    eps_model = as_eps_model(model)
    row = x_s[:1].detach()
    with torch.no_grad():
        lo, mid, hi = (
            eps_model(row, torch.full((1,), label, dtype=LABEL_DTYPE, device=row.device)).double()
            for label in PROBE_LABELS
        )
    span = float((hi - lo).abs().max())
    nearest = min(float((mid - lo).abs().max()), float((mid - hi).abs().max()))
    truncates = span > 0 and nearest <= PROBE_TOLERANCE * span
    if truncates:
        warnings.warn(
            f"the ε-network {type(net).__name__} gives the same output for the time label 1.5 as for 1 or 2 (but "
            "different ones for 1 and 2): it truncates or rounds fractional labels (e.g. nn.Embedding(t.long())). "
            "The EPS score norm calls it with the continuous labels 999·t_k = 0.999, 1.998, …, so its score norms "
            "and SSNI's per-sample t will be wrong. Make forward(x, t) use t as a real number (e.g. a sinusoidal "
            "embedding of the float32 label); the discrete purifiers pass integer-valued float32 indices.",
            UserWarning,
            stacklevel=3,
        )
    return truncates
