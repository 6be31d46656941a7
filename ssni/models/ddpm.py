"""The DDPM CIFAR-10 UNet of Ho et al. (2020), as ported to PyTorch by pesser/pytorch_diffusion.

This is the ε-network GDMP purifies CIFAR-10 with (`ema_diffusion_cifar10_model/model-790000.ckpt`) and the same
network diffusers publishes as `google/ddpm-cifar10-32`. The module tree carries pytorch_diffusion's parameter
names (`temb.dense.*`, `conv_in`, `down.<l>.block.<i>.*`, `down.<l>.attn.<i>.*`, `down.<l>.downsample.conv`,
`mid.block_1`/`attn_1`/`block_2`, `up.<l>.block.<i>.*`, `up.<l>.upsample.conv`, `norm_out`, `conv_out`), so the
original state dict loads with `strict=True`. A diffusers folder (`config.json` +
`diffusion_pytorch_model.safetensors` or `.bin`) loads through :func:`load_diffusers_folder`, which renames the
keys with :func:`ddpm_state_dict_from_diffusers` (mapping documented there).

Network (L = len(ch_mult) levels, level l has width ch·ch_mult[l] and resolution resolution / 2^l):

    temb  = dense1(swish(dense0(sinusoid(t, ch))))                        # [B, 4·ch]
    h     = conv_in(x)
    down  : per level, num_res_blocks × (ResnetBlock [+ AttnBlock if the level's resolution is in
            attn_resolutions]), then a stride-2 Downsample except at the last level; every output is kept as a skip
    mid   : ResnetBlock, AttnBlock, ResnetBlock
    up    : per level from coarse to fine, (num_res_blocks + 1) × (ResnetBlock on cat(h, skip) [+ AttnBlock]),
            then a nearest ×2 Upsample except at level 0
    ε̂     = conv_out(swish(norm_out(h)))

Every GroupNorm has 32 groups and eps 1e-6; attention is single-head over the H·W positions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import nn

from ssni.validate import value_checks_allowed

__all__ = [
    "DDPM_CIFAR10",
    "DDPMConfig",
    "DDPMUNet",
    "build_ddpm",
    "ddpm_config_from_diffusers",
    "ddpm_state_dict_from_diffusers",
    "ddpm_timestep_embedding",
    "load_diffusers_folder",
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

_NORM_GROUPS = 32
_NORM_EPS = 1e-6


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

    def __post_init__(self) -> None:
        object.__setattr__(self, "ch_mult", tuple(int(m) for m in self.ch_mult))
        object.__setattr__(self, "attn_resolutions", tuple(int(r) for r in self.attn_resolutions))
        for name in ("ch", "out_ch", "num_res_blocks", "in_channels", "resolution"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not self.ch_mult or min(self.ch_mult) < 1:
            raise ValueError(f"ch_mult must be a non-empty sequence of positive ints, got {self.ch_mult!r}")
        for name, width in (("ch", self.ch), *((f"ch*ch_mult[{i}]", self.ch * m) for i, m in enumerate(self.ch_mult))):
            if width % _NORM_GROUPS:
                raise ValueError(f"{name} = {width} must be divisible by the {_NORM_GROUPS} GroupNorm groups")
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


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(_NORM_GROUPS, channels, eps=_NORM_EPS)


class ResnetBlock(nn.Module):
    """h = conv2(dropout(swish(norm2(conv1(swish(norm1(x))) + temb_proj(swish(temb)))))); out = shortcut(x) + h.

    The shortcut is the 1×1 `nin_shortcut` when the width changes, the identity otherwise.
    """

    def __init__(self, in_channels: int, out_channels: int, temb_channels: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = _group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.temb_proj = nn.Linear(temb_channels, out_channels)
        self.norm2 = _group_norm(out_channels)
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

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = _group_norm(channels)
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
    def __init__(self, channels: int, temb_channels: int, dropout: float) -> None:
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels, temb_channels, dropout)
        self.attn_1 = AttnBlock(channels)
        self.block_2 = ResnetBlock(channels, channels, temb_channels, dropout)

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
                blocks.append(ResnetBlock(width, ch * m, temb_ch, dropout))
                width = ch * m
                if level_res[level] in config.attn_resolutions:
                    attns.append(AttnBlock(width))
            down = _Level(blocks, attns)
            if level != last:
                down.downsample = Downsample(width, config.resamp_with_conv)
            self.down.append(down)

        self.mid = _Middle(width, temb_ch, dropout)

        # The up path is built coarse-to-fine but stored by level index, so `up.<l>` has level l's resolution.
        ups: list[_Level] = []
        for level in reversed(range(len(mult))):
            blocks, attns = [], []
            for i in range(n_blocks + 1):
                # The last block of a level consumes the skip taken before that level's first down block.
                skip = ch * (mult[level] if i < n_blocks else (mult[level - 1] if level > 0 else 1))
                blocks.append(ResnetBlock(width + skip, ch * mult[level], temb_ch, dropout))
                width = ch * mult[level]
                if level_res[level] in config.attn_resolutions:
                    attns.append(AttnBlock(width))
            up = _Level(blocks, attns)
            if level != 0:
                up.upsample = Upsample(width, config.resamp_with_conv)
            ups.insert(0, up)
        self.up = nn.ModuleList(ups)

        self.norm_out = _group_norm(width)
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


# ---------------------------------------------------------------------------------------------------------------
# diffusers `UNet2DModel` folders (google/ddpm-cifar10-32)
# ---------------------------------------------------------------------------------------------------------------

# diffusers config fields whose value must be the one below for the network to be this architecture.
_DIFFUSERS_FIXED = {
    "act_fn": "silu",
    "center_input_sample": False,
    "downsample_padding": 0,
    "flip_sin_to_cos": False,
    "freq_shift": 1,
    "mid_block_scale_factor": 1,
    "norm_eps": _NORM_EPS,
    "norm_num_groups": _NORM_GROUPS,
    "time_embedding_type": "positional",
    "resnet_time_scale_shift": "default",
    "add_attention": True,
    "class_embed_type": None,
    "num_class_embeds": None,
    "downsample_type": "conv",
    "upsample_type": "conv",
}

_DIFFUSERS_RESNET = {"time_emb_proj": "temb_proj", "conv_shortcut": "nin_shortcut"}
_DIFFUSERS_ATTN = {
    "group_norm": "norm",
    "to_q": "q",
    "query": "q",
    "to_k": "k",
    "key": "k",
    "to_v": "v",
    "value": "v",
    "to_out.0": "proj_out",
    "proj_attn": "proj_out",
}


def ddpm_config_from_diffusers(config: Mapping[str, object]) -> DDPMConfig:
    """The DDPMConfig of a diffusers `UNet2DModel` config.json; ValueError if it describes another architecture.

    block_out_channels = ch·ch_mult; layers_per_block = num_res_blocks; a level whose down block is
    `AttnDownBlock2D` has its resolution (sample_size / 2^l) in attn_resolutions; attention_head_dim must be null
    (single head, as in DDPM); dropout defaults to 0 (diffusers' default; it only matters in training).
    """
    if config.get("_class_name", "UNet2DModel") != "UNet2DModel":
        raise ValueError(f"config: expected a UNet2DModel config, got _class_name={config.get('_class_name')!r}")
    for field, expected in _DIFFUSERS_FIXED.items():
        if field in config and config[field] != expected:
            raise ValueError(f"config: {field}={config[field]!r} is not supported (DDPM needs {expected!r})")
    widths = [int(w) for w in config["block_out_channels"]]
    down_types = list(config["down_block_types"])
    up_types = list(config["up_block_types"])
    if len(down_types) != len(widths) or up_types != [t.replace("Down", "Up") for t in reversed(down_types)]:
        raise ValueError(
            f"config: up_block_types {up_types} must mirror down_block_types {down_types}, one per block_out_channel"
        )
    if any(t not in ("DownBlock2D", "AttnDownBlock2D") for t in down_types):
        raise ValueError(f"config: down_block_types {down_types} may only hold DownBlock2D / AttnDownBlock2D")
    head_dim = config.get("attention_head_dim", 8)
    if head_dim is not None and any(head_dim != w for w, t in zip(widths, down_types) if t.startswith("Attn")):
        raise ValueError(f"config: attention_head_dim={head_dim!r} means multi-head attention; DDPM has one head")
    if head_dim is not None and head_dim != widths[-1]:
        raise ValueError(f"config: attention_head_dim={head_dim!r} gives the middle attention several heads")
    ch = widths[0]
    if any(w % ch for w in widths):
        raise ValueError(f"config: block_out_channels {widths} must be multiples of the first one")
    resolution = int(config["sample_size"])
    return DDPMConfig(
        ch=ch,
        out_ch=int(config.get("out_channels", 3)),
        ch_mult=tuple(w // ch for w in widths),
        num_res_blocks=int(config.get("layers_per_block", 2)),
        attn_resolutions=tuple(resolution // 2**l for l, t in enumerate(down_types) if t == "AttnDownBlock2D"),
        dropout=float(config.get("dropout", 0.0)),
        resamp_with_conv=True,
        in_channels=int(config.get("in_channels", 3)),
        resolution=resolution,
    )


def ddpm_state_dict_from_diffusers(
    state_dict: Mapping[str, torch.Tensor], num_levels: int | None = None
) -> dict[str, torch.Tensor]:
    """Rename a diffusers `UNet2DModel` state dict to pytorch_diffusion names (values are not copied).

    num_levels (len(ch_mult)) defaults to the number of `down_blocks.<l>` found in the state dict.
    Mapping (L = num_levels; diffusers numbers its up blocks coarse-to-fine, pytorch_diffusion by level):
        conv_in.*                                  -> conv_in.*
        time_embedding.linear_{1,2}.*              -> temb.dense.{0,1}.*
        down_blocks.l.resnets.i.*                  -> down.l.block.i.*
        up_blocks.j.resnets.i.*                    -> up.(L-1-j).block.i.*
        mid_block.resnets.{0,1}.*                  -> mid.block_{1,2}.*
          inside a resnet: time_emb_proj -> temb_proj, conv_shortcut -> nin_shortcut (norm1/conv1/norm2/conv2 kept)
        down_blocks.l.attentions.i.*               -> down.l.attn.i.*   (up_blocks likewise, mid -> mid.attn_1)
          inside an attention: group_norm -> norm; to_q|query -> q; to_k|key -> k; to_v|value -> v;
          to_out.0|proj_attn -> proj_out; Linear weights [C, C] become 1×1 conv weights [C, C, 1, 1]
        down_blocks.l.downsamplers.0.conv.*        -> down.l.downsample.conv.*
        up_blocks.j.upsamplers.0.conv.*            -> up.(L-1-j).upsample.conv.*
        conv_norm_out.* / conv_out.*               -> norm_out.* / conv_out.*
    Raises ValueError listing every key it does not recognise.
    """
    if num_levels is None:
        levels = {key.split(".")[1] for key in state_dict if key.startswith("down_blocks.")}
        num_levels = len(levels)
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in state_dict.items():
        new = _rename_diffusers_key(key, num_levels)
        if new is None:
            unknown.append(key)
            continue
        if ".attn" in new and value.ndim == 2:  # diffusers attention projections are Linear, DDPM's are 1×1 convs
            value = value[:, :, None, None]
        out[new] = value
    if unknown:
        raise ValueError(f"state_dict: {len(unknown)} diffusers key(s) have no DDPM counterpart: {unknown}")
    return out


def _rename_diffusers_key(key: str, num_levels: int) -> str | None:
    head, _, param = key.rpartition(".")
    if param not in ("weight", "bias"):
        return None
    simple = {
        "conv_in": "conv_in",
        "conv_out": "conv_out",
        "conv_norm_out": "norm_out",
        "time_embedding.linear_1": "temb.dense.0",
        "time_embedding.linear_2": "temb.dense.1",
    }
    if head in simple:
        return f"{simple[head]}.{param}"
    parts = head.split(".")
    if parts[0] in ("down_blocks", "up_blocks") and len(parts) >= 4 and parts[1].isdigit():
        level = int(parts[1]) if parts[0] == "down_blocks" else num_levels - 1 - int(parts[1])
        prefix = f"{'down' if parts[0] == 'down_blocks' else 'up'}.{level}"
        kind, index, rest = parts[2], parts[3], ".".join(parts[4:])
        if kind == "resnets":
            return _resnet_key(f"{prefix}.block.{index}", rest, param)
        if kind == "attentions":
            return _attn_key(f"{prefix}.attn.{index}", rest, param)
        if kind in ("downsamplers", "upsamplers") and index == "0" and rest == "conv":
            return f"{prefix}.{'downsample' if kind == 'downsamplers' else 'upsample'}.conv.{param}"
        return None
    if parts[0] == "mid_block" and len(parts) >= 3:
        kind, index, rest = parts[1], parts[2], ".".join(parts[3:])
        if kind == "resnets" and index in ("0", "1"):
            return _resnet_key(f"mid.block_{int(index) + 1}", rest, param)
        if kind == "attentions" and index == "0":
            return _attn_key("mid.attn_1", rest, param)
    return None


def _resnet_key(prefix: str, name: str, param: str) -> str | None:
    if name in ("norm1", "conv1", "norm2", "conv2"):
        return f"{prefix}.{name}.{param}"
    return f"{prefix}.{_DIFFUSERS_RESNET[name]}.{param}" if name in _DIFFUSERS_RESNET else None


def _attn_key(prefix: str, name: str, param: str) -> str | None:
    return f"{prefix}.{_DIFFUSERS_ATTN[name]}.{param}" if name in _DIFFUSERS_ATTN else None


def load_diffusers_folder(path: str | Path) -> DDPMUNet:
    """Build and load a DDPM UNet from a diffusers folder: `config.json` + `diffusion_pytorch_model.safetensors`
    (or `.bin`, read with `torch.load(weights_only=True)`). A pipeline folder whose UNet lives in `unet/` works too.

    Every weight must be present and match (strict load; CheckpointError lists missing / unexpected keys and
    shape mismatches); the model is returned in eval mode.
    """
    from ssni.models.convert import load_state_dict_checked, read_checkpoint

    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"path: {folder} is not a directory")
    if not (folder / "config.json").is_file() and (folder / "unet" / "config.json").is_file():
        folder = folder / "unet"
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"path: {folder} has no config.json")
    try:
        config = ddpm_config_from_diffusers(json.loads(config_file.read_text()))
    except json.JSONDecodeError as err:
        raise ValueError(f"path: {config_file} is not valid JSON ({err})") from err
    weights = [folder / f"diffusion_pytorch_model.{ext}" for ext in ("safetensors", "bin")]
    weights = [file for file in weights if file.is_file()]
    if not weights:
        raise FileNotFoundError(f"path: {folder} has neither diffusion_pytorch_model.safetensors nor .bin")
    state_dict = read_checkpoint(weights[0])
    model = DDPMUNet(config)
    renamed = ddpm_state_dict_from_diffusers(state_dict, len(config.ch_mult))
    load_state_dict_checked(model, renamed, source=f"diffusers weights {weights[0]}")
    return model.eval()
