"""The ε-model interface: how purifiers and the score norm call a diffusion network.

Contract: any `nn.Module` with `forward(x, t) -> ε̂`, where x is [B, C, H, W] in model space [−1, 1] and t is a
float32 tensor [B] of the labels the network expects:
- discrete purifiers (DDPM/DDIM, GNS, GDMP) pass the integer index i (as float32, integer-valued);
- the score norm (§2) and the SDE purifier (§6) pass the continuous label 999·t (or floor(1000·t) for the
  discrete ImageNet ADM, an option of the SDE purifier).
A plain module works everywhere without wrapping: `as_eps_model` wraps it in `EpsModel`, which
- keeps the first C channels of a learned-σ output (2C channels, e.g. ADM's 6), or `out_channels` if given;
- unwraps outputs that carry the tensor in `.sample` (diffusers) or as the first element of a tuple;
- checks that ε̂ has the shape of x, with a clear error otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["CallCounter", "EpsModel", "as_eps_model", "LABEL_DTYPE", "LABEL_CONVENTIONS", "network_labels"]

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
