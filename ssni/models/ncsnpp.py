"""NCSN++ / DDPM++ score network of score_sde (Song et al. 2021), with the original parameter names.

Built from score_sde's own configuration (the `ml_collections` config or its nested-dict form with `data`,
`model` and `training` fields), so that any config of `score_sde.models.ncsnpp.NCSNpp` gives the same module
list and an original state dict loads with `strict=True`.

Parameter-name mapping (identical to the original, nothing renamed):
- `sigmas`: float64 [num_scales] buffer, the geometric VE noise levels sigma_max → sigma_min (used only when
  `scale_by_sigma`).
- `all_modules.<i>`: one flat `nn.ModuleList`, in the original construction order: [Gaussian Fourier projection],
  [two time-embedding `nn.Linear` when conditional], input conv, the down path (res blocks, attention at the
  attention resolutions, one down-sampler per level except the last), the middle (res, attn, res), the up path
  (num_res_blocks + 1 res blocks per level, attention, one up-sampler per level except the first), the output
  GroupNorm and conv.
- Res blocks: `GroupNorm_0, Conv_0, Dense_0, GroupNorm_1, Conv_1` and the shortcut `Conv_2` (BigGAN: a 1×1 conv)
  or `NIN_0` (DDPM). Attention: `GroupNorm_0, NIN_0..NIN_3` where `NIN.W` is stored (in, out), transposed w.r.t.
  `nn.Linear`. Resamplers (DDPM res blocks only): `Conv_0`.

Forward: `model(x, labels) -> eps-like output` with `x` [B, C, H, W] (in [-1, 1] when `centered`) and `labels`
[B] the continuous label 999·t for the VP configs (what `get_score_fn(..., continuous=True)` feeds) or σ for the
Fourier (VE) configs. The score is `-out / σ_VP(t)`.

Not supported (raise NotImplementedError): FIR resampling (`fir=True`) and the progressive input/output paths,
which the public VP/DDPM++ checkpoints do not use.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DDPMPP_DEEP_CONTINUOUS_CIFAR10", "NCSNpp", "NCSNppConfig", "build_ncsnpp"]


# score_sde `get_act`: config.model.nonlinearity → activation.
_ACTIVATIONS = {
    "elu": F.elu,
    "relu": F.relu,
    "lrelu": lambda x: F.leaky_relu(x, 0.2),
    "swish": F.silu,
}


@dataclass(frozen=True)
class NCSNppConfig:
    """The fields of score_sde's config that determine the NCSN++ network (`data.*`, `model.*`, `training.*`)."""

    image_size: int = 32
    num_channels: int = 3
    centered: bool = True
    nf: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 2, 2)
    num_res_blocks: int = 8
    attn_resolutions: tuple[int, ...] = (16,)
    dropout: float = 0.1
    resamp_with_conv: bool = True
    conditional: bool = True
    fir: bool = False
    fir_kernel: tuple[int, ...] = (1, 3, 3, 1)
    skip_rescale: bool = True
    resblock_type: str = "biggan"
    progressive: str = "none"
    progressive_input: str = "none"
    progressive_combine: str = "sum"
    init_scale: float = 0.0
    embedding_type: str = "positional"
    fourier_scale: float = 16.0
    nonlinearity: str = "swish"
    scale_by_sigma: bool = False
    sigma_min: float = 0.01
    sigma_max: float = 50.0
    num_scales: int = 1000
    continuous: bool = True

    _DATA_FIELDS = ("image_size", "num_channels", "centered")
    _TRAINING_FIELDS = ("continuous",)
    # Read by the original only for Fourier embeddings; absent from a config they keep their default.
    _OPTIONAL_FIELDS = ("fourier_scale", "continuous")

    @classmethod
    def from_score_sde(cls, config: Any) -> NCSNppConfig:
        """Read a score_sde config: a nested mapping or attribute namespace with `data`, `model` (and `training`).

        `model.fourier_scale` and `training.continuous` may be absent (defaults 16, True); every other field the
        original constructor reads must be present.
        """
        sections = {name: _section(config, name) for name in ("data", "model")}
        training = _section(config, "training", required=False)
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in cls._TRAINING_FIELDS:
                if training is not None and _has(training, f.name):
                    values[f.name] = _get(training, f.name)
                continue
            section = "data" if f.name in cls._DATA_FIELDS else "model"
            if not _has(sections[section], f.name):
                if f.name in cls._OPTIONAL_FIELDS:
                    continue
                raise ValueError(f"config.{section}.{f.name} is missing from the score_sde config")
            values[f.name] = _get(sections[section], f.name)
        for name in ("ch_mult", "attn_resolutions", "fir_kernel"):
            values[name] = tuple(int(v) for v in values[name])
        for name in ("resblock_type", "progressive", "progressive_input", "progressive_combine", "embedding_type"):
            values[name] = str(values[name]).lower()
        return cls(**values)

    def __post_init__(self) -> None:
        if self.resblock_type not in ("ddpm", "biggan"):
            raise ValueError(f"resblock_type must be 'ddpm' or 'biggan', got {self.resblock_type!r}")
        if self.embedding_type not in ("positional", "fourier"):
            raise ValueError(f"embedding_type must be 'positional' or 'fourier', got {self.embedding_type!r}")
        if self.embedding_type == "fourier" and not self.continuous:
            raise ValueError("embedding_type='fourier' requires training.continuous=True (as in score_sde)")
        if self.nonlinearity.lower() not in _ACTIVATIONS:
            raise ValueError(f"nonlinearity must be one of {sorted(_ACTIVATIONS)}, got {self.nonlinearity!r}")
        if self.fir:
            raise NotImplementedError(
                "NCSN++ with fir=True (StyleGAN2 FIR up/down-sampling) is not implemented; the public DDPM++ "
                "VP checkpoints use fir=False"
            )
        if self.progressive != "none" or self.progressive_input != "none":
            raise NotImplementedError(
                "NCSN++ progressive paths (progressive / progressive_input != 'none') are not implemented; the "
                "public DDPM++ VP checkpoints use 'none'"
            )
        if self.image_size % (2 ** (len(self.ch_mult) - 1)):
            raise ValueError(f"image_size {self.image_size} is not divisible by 2^(len(ch_mult) - 1)")


def _section(config: Any, name: str, required: bool = True) -> Any:
    if _has(config, name):
        return _get(config, name)
    if required:
        raise ValueError(f"config has no `{name}` section (expected score_sde's config with data/model fields)")
    return None


def _has(obj: Any, name: str) -> bool:
    return name in obj if isinstance(obj, Mapping) else hasattr(obj, name)


def _get(obj: Any, name: str) -> Any:
    return obj[name] if isinstance(obj, Mapping) else getattr(obj, name)


# DiffPure configs/cifar10.yml = score_sde configs/vp/cifar10_ddpmpp_deep_continuous.py → `checkpoint_8.pth`.
DDPMPP_DEEP_CONTINUOUS_CIFAR10 = NCSNppConfig()

# --------------------------------------------------------------------------- initialisation (random-weight builds)


def _default_init_(weight: torch.Tensor, scale: float = 1.0, in_axis: int = 1, out_axis: int = 0) -> None:
    """DDPM's variance scaling, fan_avg, uniform: U(±sqrt(3·scale / fan_avg)); scale 0 means 1e-10."""
    scale = 1e-10 if scale == 0 else scale
    receptive = weight.numel() / (weight.shape[in_axis] * weight.shape[out_axis])
    fan_avg = (weight.shape[in_axis] + weight.shape[out_axis]) * receptive / 2
    bound = math.sqrt(3 * scale / fan_avg)
    with torch.no_grad():
        weight.uniform_(-bound, bound)


def _conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1, padding: int | None = None, init_scale=1.0):
    conv = nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2 if padding is None else padding)
    _default_init_(conv.weight, init_scale)
    nn.init.zeros_(conv.bias)
    return conv


def _linear(in_features: int, out_features: int) -> nn.Linear:
    linear = nn.Linear(in_features, out_features)
    _default_init_(linear.weight)
    nn.init.zeros_(linear.bias)
    return linear


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=min(channels // 4, 32), num_channels=channels, eps=1e-6)


# --------------------------------------------------------------------------- layers


class NIN(nn.Module):
    """Per-pixel dense layer: y[b, :, h, w] = x[b, :, h, w] @ W + b, with W stored (in, out)."""

    def __init__(self, in_dim: int, num_units: int, init_scale: float = 0.1):
        super().__init__()
        self.W = nn.Parameter(torch.empty(in_dim, num_units))
        self.b = nn.Parameter(torch.zeros(num_units))
        _default_init_(self.W, init_scale, in_axis=0, out_axis=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.W.t().contiguous()[:, :, None, None], self.b)


class AttnBlockpp(nn.Module):
    """Single-head self-attention over the H·W positions, scale C^-1/2; residual joined, /√2 if skip_rescale."""

    def __init__(self, channels: int, skip_rescale: bool, init_scale: float):
        super().__init__()
        self.GroupNorm_0 = _group_norm(channels)
        self.NIN_0 = NIN(channels, channels)
        self.NIN_1 = NIN(channels, channels)
        self.NIN_2 = NIN(channels, channels)
        self.NIN_3 = NIN(channels, channels, init_scale=init_scale)
        self.skip_rescale = skip_rescale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        normed = self.GroupNorm_0(x)
        # [B, 1, HW, C] so SDPA's default scale 1/sqrt(C) is the original's int(C) ** -0.5.
        q, k, v = (m(normed).reshape(b, 1, c, h * w).transpose(-1, -2) for m in (self.NIN_0, self.NIN_1, self.NIN_2))
        attended = F.scaled_dot_product_attention(q, k, v).transpose(-1, -2).reshape(b, c, h, w)
        return _join(x, self.NIN_3(attended), self.skip_rescale)


def _join(x: torch.Tensor, h: torch.Tensor, skip_rescale: bool) -> torch.Tensor:
    return (x + h) / math.sqrt(2.0) if skip_rescale else x + h


class ResnetBlockBigGANpp(nn.Module):
    """BigGAN-style residual block; optional nearest ×2 up / 2×2 average down on both branches (fir=False)."""

    def __init__(self, act, in_ch, out_ch, temb_dim, up, down, dropout, skip_rescale, init_scale):
        super().__init__()
        self.GroupNorm_0 = _group_norm(in_ch)
        self.Conv_0 = _conv(in_ch, out_ch, 3)
        self.Dense_0 = _linear(temb_dim, out_ch)
        self.GroupNorm_1 = _group_norm(out_ch)
        self.Dropout_0 = nn.Dropout(dropout)
        self.Conv_1 = _conv(out_ch, out_ch, 3, init_scale=init_scale)
        if in_ch != out_ch or up or down:
            self.Conv_2 = _conv(in_ch, out_ch, 1)
        self.act, self.up, self.down, self.skip_rescale = act, up, down, skip_rescale

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        if self.up:
            return F.interpolate(x, scale_factor=2.0, mode="nearest")
        if self.down:
            return F.avg_pool2d(x, 2)
        return x

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None) -> torch.Tensor:
        h = self._resample(self.act(self.GroupNorm_0(x)))
        x = self._resample(x)
        h = self.Conv_0(h)
        if temb is not None:
            h = h + self.Dense_0(self.act(temb))[:, :, None, None]
        h = self.Conv_1(self.Dropout_0(self.act(self.GroupNorm_1(h))))
        if hasattr(self, "Conv_2"):
            x = self.Conv_2(x)
        return _join(x, h, self.skip_rescale)


class ResnetBlockDDPMpp(nn.Module):
    """DDPM residual block; the shortcut is a NIN when the channel count changes."""

    def __init__(self, act, in_ch, out_ch, temb_dim, dropout, skip_rescale, init_scale):
        super().__init__()
        self.GroupNorm_0 = _group_norm(in_ch)
        self.Conv_0 = _conv(in_ch, out_ch, 3)
        self.Dense_0 = _linear(temb_dim, out_ch)
        self.GroupNorm_1 = _group_norm(out_ch)
        self.Dropout_0 = nn.Dropout(dropout)
        self.Conv_1 = _conv(out_ch, out_ch, 3, init_scale=init_scale)
        if in_ch != out_ch:
            self.NIN_0 = NIN(in_ch, out_ch)
        self.act, self.skip_rescale = act, skip_rescale

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None) -> torch.Tensor:
        h = self.Conv_0(self.act(self.GroupNorm_0(x)))
        if temb is not None:
            h = h + self.Dense_0(self.act(temb))[:, :, None, None]
        h = self.Conv_1(self.Dropout_0(self.act(self.GroupNorm_1(h))))
        if hasattr(self, "NIN_0"):
            x = self.NIN_0(x)
        return _join(x, h, self.skip_rescale)


class Upsample(nn.Module):
    """Nearest ×2, then an optional 3×3 conv (DDPM res-block configs)."""

    def __init__(self, in_ch: int, with_conv: bool):
        super().__init__()
        if with_conv:
            self.Conv_0 = _conv(in_ch, in_ch, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.Conv_0(x) if hasattr(self, "Conv_0") else x


class Downsample(nn.Module):
    """3×3 stride-2 conv after (0, 1, 0, 1) padding (TF 'SAME'), or 2×2 average pooling without conv."""

    def __init__(self, in_ch: int, with_conv: bool):
        super().__init__()
        if with_conv:
            self.Conv_0 = _conv(in_ch, in_ch, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "Conv_0"):
            return self.Conv_0(F.pad(x, (0, 1, 0, 1)))
        return F.avg_pool2d(x, 2)


class GaussianFourierProjection(nn.Module):
    """[sin(2π·x·W), cos(2π·x·W)] with a fixed random W (requires_grad=False, so not in the EMA list)."""

    def __init__(self, embedding_size: int, scale: float):
        super().__init__()
        self.W = nn.Parameter(torch.randn(embedding_size) * scale, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        proj = x[:, None] * self.W[None, :] * (2 * math.pi)
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_positions: int = 10000) -> torch.Tensor:
    """DDPM sinusoidal embedding [sin(t·f_k), cos(t·f_k)], f_k = max_positions^(−k/(dim/2 − 1)); float32 always."""
    half = dim // 2
    freqs = torch.exp(
        torch.arange(half, dtype=torch.float32, device=timesteps.device) * -(math.log(max_positions) / (half - 1))
    )
    args = timesteps.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


# --------------------------------------------------------------------------- the network


class NCSNpp(nn.Module):
    """NCSN++ / DDPM++ U-Net, `forward(x, labels)`; see the module docstring for names and conventions."""

    def __init__(self, config: NCSNppConfig):
        super().__init__()
        self.config = cfg = config
        # score_sde `get_sigmas`: float64 geometric sequence σmax → σmin, computed with numpy as the original.
        sigmas = np.exp(np.linspace(np.log(cfg.sigma_max), np.log(cfg.sigma_min), cfg.num_scales))
        self.register_buffer("sigmas", torch.from_numpy(sigmas))
        self.act = _ACTIVATIONS[cfg.nonlinearity.lower()]
        nf, temb_dim = cfg.nf, cfg.nf * 4
        resolutions = [cfg.image_size >> level for level in range(len(cfg.ch_mult))]

        def res_block(in_ch, out_ch=None, up=False, down=False):
            out_ch = out_ch or in_ch
            common = dict(dropout=cfg.dropout, skip_rescale=cfg.skip_rescale, init_scale=cfg.init_scale)
            if cfg.resblock_type == "biggan":
                return ResnetBlockBigGANpp(self.act, in_ch, out_ch, temb_dim, up=up, down=down, **common)
            return ResnetBlockDDPMpp(self.act, in_ch, out_ch, temb_dim, **common)

        def attn_block(channels):
            return AttnBlockpp(channels, skip_rescale=cfg.skip_rescale, init_scale=cfg.init_scale)

        modules: list[nn.Module] = []
        if cfg.embedding_type == "fourier":
            modules.append(GaussianFourierProjection(nf, cfg.fourier_scale))
        if cfg.conditional:
            embed_dim = 2 * nf if cfg.embedding_type == "fourier" else nf
            modules += [_linear(embed_dim, temb_dim), _linear(temb_dim, temb_dim)]

        modules.append(_conv(cfg.num_channels, nf, 3))
        skip_channels = [nf]
        ch = nf
        for level, mult in enumerate(cfg.ch_mult):
            for _ in range(cfg.num_res_blocks):
                modules.append(res_block(ch, nf * mult))
                ch = nf * mult
                if resolutions[level] in cfg.attn_resolutions:
                    modules.append(attn_block(ch))
                skip_channels.append(ch)
            if level != len(cfg.ch_mult) - 1:
                if cfg.resblock_type == "ddpm":
                    modules.append(Downsample(ch, cfg.resamp_with_conv))
                else:
                    modules.append(res_block(ch, down=True))
                skip_channels.append(ch)

        modules += [res_block(ch), attn_block(ch), res_block(ch)]

        for level in reversed(range(len(cfg.ch_mult))):
            for _ in range(cfg.num_res_blocks + 1):
                modules.append(res_block(ch + skip_channels.pop(), nf * cfg.ch_mult[level]))
                ch = nf * cfg.ch_mult[level]
            if resolutions[level] in cfg.attn_resolutions:
                modules.append(attn_block(ch))
            if level != 0:
                if cfg.resblock_type == "ddpm":
                    modules.append(Upsample(ch, cfg.resamp_with_conv))
                else:
                    modules.append(res_block(ch, up=True))
        assert not skip_channels

        modules += [_group_norm(ch), _conv(ch, cfg.num_channels, 3, init_scale=cfg.init_scale)]
        self.all_modules = nn.ModuleList(modules)
        self._resolutions = resolutions

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """x: [B, C, H, W] float; labels: [B] (999·t for VP configs, σ for Fourier/VE configs) → [B, C, H, W]."""
        cfg = self.config
        size = (cfg.num_channels, cfg.image_size, cfg.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != size or x.shape[0] == 0 or not x.is_floating_point():
            raise ValueError(
                f"x must be a non-empty float tensor [B, {', '.join(map(str, size))}], got {x.dtype} {tuple(x.shape)}"
            )
        labels = torch.as_tensor(labels, device=x.device)
        if labels.ndim == 0:
            labels = labels.expand(x.shape[0])
        if labels.shape != (x.shape[0],):
            raise ValueError(f"labels must have shape [{x.shape[0]}], got {tuple(labels.shape)}")
        modules = iter(self.all_modules)

        if cfg.embedding_type == "fourier":
            temb = next(modules)(torch.log(labels))
        else:
            temb = timestep_embedding(labels, cfg.nf)
        if cfg.conditional:
            dense_0, dense_1 = next(modules), next(modules)
            temb = temb.to(dense_0.weight.dtype)
            temb = dense_1(self.act(dense_0(temb)))
        else:
            temb = None

        if not cfg.centered:
            x = 2 * x - 1.0

        hs = [next(modules)(x)]
        for level in range(len(cfg.ch_mult)):
            for _ in range(cfg.num_res_blocks):
                h = next(modules)(hs[-1], temb)
                if self._resolutions[level] in cfg.attn_resolutions:
                    h = next(modules)(h)
                hs.append(h)
            if level != len(cfg.ch_mult) - 1:
                down = next(modules)
                hs.append(down(hs[-1]) if cfg.resblock_type == "ddpm" else down(hs[-1], temb))

        h = next(modules)(hs[-1], temb)
        h = next(modules)(h)
        h = next(modules)(h, temb)

        for level in reversed(range(len(cfg.ch_mult))):
            for _ in range(cfg.num_res_blocks + 1):
                h = next(modules)(torch.cat([h, hs.pop()], dim=1), temb)
            if self._resolutions[level] in cfg.attn_resolutions:
                h = next(modules)(h)
            if level != 0:
                up = next(modules)
                h = up(h) if cfg.resblock_type == "ddpm" else up(h, temb)

        norm_out, conv_out = next(modules), next(modules)
        h = conv_out(self.act(norm_out(h)))
        if cfg.scale_by_sigma:
            # The original indexes `sigmas` with the label (positional) or uses the label itself (Fourier);
            # cast to h's dtype so a float32 network keeps a float32 output.
            used = labels if cfg.embedding_type == "fourier" else self.sigmas[labels.long()]
            h = h / used.to(h.dtype).reshape(-1, 1, 1, 1)
        return h


def build_ncsnpp(config: Any = None) -> NCSNpp:
    """NCSN++ from a score_sde config (nested mapping / namespace), an `NCSNppConfig`, or None for DDPM++ deep
    continuous CIFAR-10 (`checkpoint_8.pth`)."""
    if config is None:
        config = DDPMPP_DEEP_CONTINUOUS_CIFAR10
    elif not isinstance(config, NCSNppConfig):
        config = NCSNppConfig.from_score_sde(config)
    return NCSNpp(config)
