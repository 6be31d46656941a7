"""The DDPM CIFAR-10 UNet of Ho et al. (2020), as ported to PyTorch by pesser/pytorch_diffusion.

This is the ε-network GDMP purifies CIFAR-10 with (`ema_diffusion_cifar10_model/model-790000.ckpt`) and the same
network diffusers publishes as `google/ddpm-cifar10-32`. The module tree carries pytorch_diffusion's parameter
names (`temb.dense.*`, `conv_in`, `down.<l>.block.<i>.*`, `down.<l>.attn.<i>.*`, `down.<l>.downsample.conv`,
`mid.block_1`/`attn_1`/`block_2`, `up.<l>.block.<i>.*`, `up.<l>.upsample.conv`, `norm_out`, `conv_out`), so the
original state dict loads with `strict=True`. diffusers' naming of the same network is translated in
`ssni.models.formats.diffusers`.

Network (L = len(ch_mult) levels, level l has width ch·ch_mult[l] and resolution resolution / 2^l):

    temb  = dense1(swish(dense0(sinusoid(t, ch))))                        # [B, 4·ch]
    h     = conv_in(x)
    down  : per level, num_res_blocks × (ResnetBlock [+ AttnBlock if the level's resolution is in
            attn_resolutions]), then a stride-2 Downsample except at the last level; every output is kept as a skip
    mid   : ResnetBlock, AttnBlock, ResnetBlock
    up    : per level from coarse to fine, (num_res_blocks + 1) × (ResnetBlock on cat(h, skip) [+ AttnBlock]),
            then a nearest ×2 Upsample except at level 0
    ε̂     = conv_out(swish(norm_out(h)))

Every GroupNorm has 32 groups (`norm_groups`, for narrower models of ssni's own) and eps 1e-6; attention is
single-head over the H·W positions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import nn

from ssni.validate import value_checks_allowed

__all__ = [
    "DDPM_CIFAR10",
    "DDPMConfig",
    "DDPMUNet",
    "NORM_EPS",
    "NORM_GROUPS",
    "build_ddpm",
    "ddpm_timestep_embedding",
]

#: The GDMP / pytorch_diffusion `cifar10` configuration (35,746,307 parameters).
DDPM_CIFAR10: Mapping[str, object] = MappingProxyType(
    dict(
        ch=128,
        out_ch=3,
        ch_mult=(1, 2, 2, 2),
        num_res_blocks=2,
        attn_resolutions=(16,),
        dropout=0.1,
        resamp_with_conv=True,
        in_channels=3,
        resolution=32,
    )
)

NORM_GROUPS = 32
NORM_EPS = 1e-6


@dataclass(frozen=True)
class DDPMConfig:
    """pytorch_diffusion `Model(...)` keyword arguments, validated.

    `ch` is the base width (the time embedding has 4·ch features); `ch_mult[l]` scales it at level l;
    `attn_resolutions` lists the spatial sizes (not downsampling factors) that get self-attention.
    """

    ch: int
    out_ch: int
    num_res_blocks: int
    attn_resolutions: tuple[int, ...]
    in_channels: int
    resolution: int
    ch_mult: tuple[int, ...] = (1, 2, 4, 8)
    dropout: float = 0.0
    resamp_with_conv: bool = True
    norm_groups: int = NORM_GROUPS  # pytorch_diffusion's 32; smaller for the narrow embedded MNIST model

    def __post_init__(self) -> None:
        object.__setattr__(self, "ch_mult", tuple(int(m) for m in self.ch_mult))
        object.__setattr__(self, "attn_resolutions", tuple(int(r) for r in self.attn_resolutions))
        for name in ("ch", "out_ch", "num_res_blocks", "in_channels", "resolution", "norm_groups"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not self.ch_mult or min(self.ch_mult) < 1:
            raise ValueError(f"ch_mult must be a non-empty sequence of positive ints, got {self.ch_mult!r}")
        for name, width in (("ch", self.ch), *((f"ch*ch_mult[{i}]", self.ch * m) for i, m in enumerate(self.ch_mult))):
            if width % self.norm_groups:
                raise ValueError(f"{name} = {width} must be divisible by the {self.norm_groups} GroupNorm groups")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        # Downsample maps n -> ceil(n / 2) and Upsample doubles, so the skips only line up when every level but
        # the last halves an even size.
        factor = 2 ** (len(self.ch_mult) - 1)
        if self.resolution % factor:
            raise ValueError(
                f"resolution {self.resolution} must be divisible by 2**(len(ch_mult) - 1) = {factor} "
                "so that the up path returns to the skip sizes"
            )

    @property
    def level_resolutions(self) -> tuple[int, ...]:
        """Spatial size of each level, finest first."""
        return tuple(self.resolution // 2**level for level in range(len(self.ch_mult)))


def ddpm_timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """DDPM's sinusoidal embedding: [sin(t·f_k), cos(t·f_k)], f_k = 10000^(−k/(dim/2 − 1)), k < dim/2.

    t: [B] timestep indices (any real dtype). Returns [B, dim] float32 (a zero column is appended for odd dim).
    The frequencies are computed as in pytorch_diffusion (exp of k·(−log 10000/(half − 1)) in float32).
    """
    half = dim // 2
    step = math.log(10000.0) / (half - 1)
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=t.device) * -step)
    phase = t.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(phase), torch.cos(phase)], dim=1)
    return F.pad(emb, (0, dim % 2))


def _group_norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(groups, channels, eps=NORM_EPS)


class ResnetBlock(nn.Module):
    """h = conv2(dropout(swish(norm2(conv1(swish(norm1(x))) + temb_proj(swish(temb)))))); out = shortcut(x) + h.

    The shortcut is the 1×1 `nin_shortcut` when the width changes, the identity otherwise.
    """

    def __init__(self, in_channels: int, out_channels: int, temb_channels: int, dropout: float, groups: int) -> None:
        super().__init__()
        self.norm1 = _group_norm(in_channels, groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.temb_proj = nn.Linear(temb_channels, out_channels)
        self.norm2 = _group_norm(out_channels, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        skip = self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x
        return skip + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the H·W positions with 1×1-conv projections, residual.

    out = x + proj_out(softmax(q kᵀ / √C) v), with q, k, v = 1×1 convs of norm(x).
    """

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.norm = _group_norm(channels, groups)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, height, width = x.shape
        # Token-major [B, H·W, C] so the 1×1 convs are plain matmuls and SDPA gets a unit-stride head dim.
        h = self.norm(x).flatten(2).transpose(1, 2)
        q, k, v = (F.linear(h, proj.weight.flatten(1), proj.bias)[:, None] for proj in (self.q, self.k, self.v))
        h = F.scaled_dot_product_attention(q, k, v)[:, 0]
        h = F.linear(h, self.proj_out.weight.flatten(1), self.proj_out.bias)
        return x + h.transpose(1, 2).reshape(b, c, height, width)


class Downsample(nn.Module):
    """Halve H and W: pad (0, 1) right/bottom then a stride-2 3×3 conv (TensorFlow 'SAME'), or 2×2 average pool."""

    def __init__(self, channels: int, with_conv: bool) -> None:
        super().__init__()
        if with_conv:
            self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "conv"):
            return self.conv(F.pad(x, (0, 1, 0, 1)))
        return F.avg_pool2d(x, 2)


class Upsample(nn.Module):
    """Double H and W by nearest-neighbour interpolation, then an optional 3×3 conv."""

    def __init__(self, channels: int, with_conv: bool) -> None:
        super().__init__()
        if with_conv:
            self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.conv(x) if hasattr(self, "conv") else x


class _TimestepMLP(nn.Module):
    """`temb.dense = [Linear(ch, 4ch), Linear(4ch, 4ch)]`; swish between them."""

    def __init__(self, ch: int, temb_ch: int) -> None:
        super().__init__()
        self.dense = nn.ModuleList([nn.Linear(ch, temb_ch), nn.Linear(temb_ch, temb_ch)])

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return self.dense[1](F.silu(self.dense[0](emb)))


class _Level(nn.Module):
    """One resolution level: `block` (ResnetBlocks), `attn` (AttnBlocks, empty or one per block), a resampler."""

    def __init__(self, blocks: list[ResnetBlock], attns: list[AttnBlock]) -> None:
        super().__init__()
        self.block = nn.ModuleList(blocks)
        self.attn = nn.ModuleList(attns)

    def run_block(self, i: int, h: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.block[i](h, temb)
        return self.attn[i](h) if len(self.attn) else h


class _Middle(nn.Module):
    def __init__(self, channels: int, temb_channels: int, dropout: float, groups: int) -> None:
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels, temb_channels, dropout, groups)
        self.attn_1 = AttnBlock(channels, groups)
        self.block_2 = ResnetBlock(channels, channels, temb_channels, dropout, groups)

    def forward(self, h: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(h, temb)), temb)


class DDPMUNet(nn.Module):
    """ε-prediction UNet of DDPM (pytorch_diffusion `Model`): forward(x [B, in_channels, R, R], t [B]) -> ε̂.

    Build it from the original keyword arguments with :func:`build_ddpm` or from a :class:`DDPMConfig`.
    """

    def __init__(self, config: DDPMConfig) -> None:
        super().__init__()
        self.config = config
        ch, mult, n_blocks, dropout = config.ch, config.ch_mult, config.num_res_blocks, config.dropout
        groups = config.norm_groups
        temb_ch = 4 * ch
        level_res = config.level_resolutions
        last = len(mult) - 1

        self.temb = _TimestepMLP(ch, temb_ch)
        self.conv_in = nn.Conv2d(config.in_channels, ch, 3, padding=1)

        self.down = nn.ModuleList()
        width = ch
        for level, m in enumerate(mult):
            blocks, attns = [], []
            for _ in range(n_blocks):
                blocks.append(ResnetBlock(width, ch * m, temb_ch, dropout, groups))
                width = ch * m
                if level_res[level] in config.attn_resolutions:
                    attns.append(AttnBlock(width, groups))
            down = _Level(blocks, attns)
            if level != last:
                down.downsample = Downsample(width, config.resamp_with_conv)
            self.down.append(down)

        self.mid = _Middle(width, temb_ch, dropout, groups)

        # The up path is built coarse-to-fine but stored by level index, so `up.<l>` has level l's resolution.
        ups: list[_Level] = []
        for level in reversed(range(len(mult))):
            blocks, attns = [], []
            for i in range(n_blocks + 1):
                # The last block of a level consumes the skip taken before that level's first down block.
                skip = ch * (mult[level] if i < n_blocks else (mult[level - 1] if level > 0 else 1))
                blocks.append(ResnetBlock(width + skip, ch * mult[level], temb_ch, dropout, groups))
                width = ch * mult[level]
                if level_res[level] in config.attn_resolutions:
                    attns.append(AttnBlock(width, groups))
            up = _Level(blocks, attns)
            if level != 0:
                up.upsample = Upsample(width, config.resamp_with_conv)
            ups.insert(0, up)
        self.up = nn.ModuleList(ups)

        self.norm_out = _group_norm(width, groups)
        self.conv_out = nn.Conv2d(width, config.out_ch, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """x: [B, in_channels, resolution, resolution] (data scaled to [-1, 1]); t: timestep index, a number or a
        [B] / 0-d tensor (integer or float; the reference embeds t directly, e.g. 0..999). Returns ε̂ shaped like x
        with out_ch channels, in the parameters' dtype."""
        x, t = self._check_inputs(x, t)
        temb = self.temb(ddpm_timestep_embedding(t, self.config.ch).to(self.conv_in.weight.dtype))

        skips = [self.conv_in(x)]
        h = skips[-1]
        for down in self.down:
            for i in range(len(down.block)):
                h = down.run_block(i, h, temb)
                skips.append(h)
            if hasattr(down, "downsample"):
                h = down.downsample(h)
                skips.append(h)

        h = self.mid(h, temb)

        for up in reversed(self.up):
            for i in range(len(up.block)):
                h = up.run_block(i, torch.cat([h, skips.pop()], dim=1), temb)
            if hasattr(up, "upsample"):
                h = up.upsample(h)

        return self.conv_out(F.silu(self.norm_out(h)))

    def _check_inputs(self, x: torch.Tensor, t: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.config
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 4 or x.shape[1] != cfg.in_channels or x.shape[2] != cfg.resolution or x.shape[3] != cfg.resolution:
            raise ValueError(
                f"x must have shape [B, {cfg.in_channels}, {cfg.resolution}, {cfg.resolution}], got {tuple(x.shape)}"
            )
        if x.shape[0] == 0:
            raise ValueError("x is an empty batch")
        if not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
        t = torch.as_tensor(t, device=x.device)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        if t.ndim != 1 or t.shape[0] != x.shape[0]:
            raise ValueError(f"t must be a number or a tensor of shape [{x.shape[0]}], got shape {tuple(t.shape)}")
        if t.is_floating_point() and value_checks_allowed() and not torch.isfinite(t).all():
            raise ValueError("t contains NaN or Inf")
        return x, t


def build_ddpm(**kwargs: object) -> DDPMUNet:
    """Build the DDPM UNet from pytorch_diffusion `Model` keyword arguments (`ch`, `out_ch`, `ch_mult`, …)."""
    return DDPMUNet(DDPMConfig(**kwargs))
