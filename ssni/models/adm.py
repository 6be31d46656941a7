"""The ADM UNet of guided-diffusion (Dhariwal & Nichol, 2021), built from `create_model` keyword arguments.

This is the ImageNet ε-network DiffPure and SSNI purify with (`256x256_diffusion_uncond.pt`, preset
:data:`ADM_IMAGENET_256_UNCOND`). The module tree carries guided-diffusion's parameter names, so an original state
dict loads with `strict=True`:

    time_embed.{0,2}                       Linear(C, 4C), SiLU, Linear(4C, 4C) on the sinusoidal embedding of t
    label_emb                              Embedding(1000, 4C), only with class_cond
    input_blocks.0.0                       3×3 conv, 3 -> C·channel_mult[0]
    input_blocks.<n>.0                     ResBlock (in_layers.{0,2}, emb_layers.1, out_layers.{0,3}, skip_connection)
    input_blocks.<n>.1                     AttentionBlock (norm, qkv, proj_out) at the attention levels
    input_blocks.<n>.0                     a level's downsampler: ResBlock(down=True) or Downsample (`op`)
    middle_block.{0,1,2}                   ResBlock, AttentionBlock, ResBlock
    output_blocks.<n>.{0,1,2}              ResBlock on cat(h, skip), [AttentionBlock], [upsampler: ResBlock(up=True)
                                           or Upsample (`conv`)]
    out.{0,2}                              GroupNorm, SiLU, 3×3 conv -> 3 (ε) or 6 (ε ‖ v, learn_sigma) channels

With learn_sigma the output is [ε̂, v] (6 channels); v is the learned-range variance interpolation value.
Attention uses the legacy per-head qkv layout ([q_h, k_h, v_h] contiguous per head, `QKVAttentionLegacy`) unless
use_new_attention_order (all q, then all k, then all v). GroupNorm (32 groups, eps 1e-5) runs in float32 whatever
the activation dtype.

Mixed precision as in the reference: :meth:`ADMUNet.convert_to_fp16` turns every Conv1d/Conv2d inside
input_blocks, middle_block and output_blocks to float16 (274 tensors for the 256 preset); time_embed, every
GroupNorm, every ResBlock's emb_layers Linear and `out` stay float32. forward casts x to the torso's dtype, casts
each ResBlock's embedding projection to the activation dtype, and casts back before `out`. `use_fp16` is recorded
in the config but, as in guided-diffusion, converting is an explicit call (after loading the fp32 checkpoint).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from ssni.validate import value_checks_allowed

__all__ = [
    "ADM_IMAGENET_256_UNCOND",
    "ADMConfig",
    "ADMUNet",
    "adm_timestep_embedding",
    "build_adm",
]

#: DiffPure's ImageNet model: guided-diffusion `model_and_diffusion_defaults()` updated with DiffPure's
#: `configs/imagenet.yml` -> `256x256_diffusion_uncond.pt` (552,814,086 parameters).
ADM_IMAGENET_256_UNCOND: Mapping[str, object] = MappingProxyType(
    dict(
        image_size=256,
        num_channels=256,
        num_res_blocks=2,
        channel_mult="",
        learn_sigma=True,
        class_cond=False,
        use_checkpoint=False,
        attention_resolutions="32,16,8",
        num_heads=4,
        num_head_channels=64,
        num_heads_upsample=-1,
        use_scale_shift_norm=True,
        dropout=0.0,
        resblock_updown=True,
        use_fp16=True,
        use_new_attention_order=False,
    )
)

NUM_CLASSES = 1000  # class_cond models are ImageNet-conditional
_NORM_GROUPS = 32
# create_model's channel_mult when it is "" (keyed by image_size).
_DEFAULT_CHANNEL_MULT = {
    512: (0.5, 1, 1, 2, 2, 4, 4),
    256: (1, 1, 2, 2, 4, 4),
    128: (1, 1, 2, 3, 4),
    64: (1, 2, 3, 4),
}


@dataclass(frozen=True)
class ADMConfig:
    """guided-diffusion `create_model(...)` keyword arguments, validated and normalised.

    channel_mult: "" (the default for image_size), "1,1,2,2,4,4" or a sequence -> tuple of multipliers.
    attention_resolutions: "32,16,8" or a sequence of ints -> tuple of spatial sizes that get attention (the
    network uses the downsampling factors image_size // r, see :attr:`attention_ds`).
    num_head_channels = -1 means num_heads heads everywhere (num_heads_upsample in the decoder, -1 = num_heads);
    otherwise every attention block has channels // num_head_channels heads.
    """

    image_size: int
    num_channels: int
    num_res_blocks: int
    channel_mult: str | tuple[float, ...] = ""
    learn_sigma: bool = False
    class_cond: bool = False
    use_checkpoint: bool = False
    attention_resolutions: str | tuple[int, ...] = "16"
    num_heads: int = 1
    num_head_channels: int = -1
    num_heads_upsample: int = -1
    use_scale_shift_norm: bool = False
    dropout: float = 0.0
    resblock_updown: bool = False
    use_fp16: bool = False
    use_new_attention_order: bool = False

    def __post_init__(self) -> None:
        for name in ("image_size", "num_channels", "num_res_blocks"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        object.__setattr__(self, "channel_mult", self._parse_channel_mult())
        object.__setattr__(self, "attention_resolutions", self._parse_attention_resolutions())
        if any(r < 1 for r in self.attention_resolutions):
            raise ValueError(f"attention_resolutions must be positive, got {self.attention_resolutions}")
        if self.num_head_channels == -1:
            if self.num_heads < 1:
                raise ValueError(f"num_heads must be >= 1, got {self.num_heads}")
            if self.num_heads_upsample != -1 and self.num_heads_upsample < 1:
                raise ValueError(f"num_heads_upsample must be >= 1 or -1, got {self.num_heads_upsample}")
        elif self.num_head_channels < 1:
            raise ValueError(f"num_head_channels must be >= 1 or -1, got {self.num_head_channels}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        widths = self.level_channels
        for level, width in enumerate(widths):
            if width % _NORM_GROUPS:
                raise ValueError(
                    f"num_channels * channel_mult[{level}] = {width} must be divisible by the {_NORM_GROUPS} "
                    "GroupNorm groups"
                )
        attention_widths = [(widths[-1], False)]  # the middle block always attends
        attention_widths += [(widths[level], decoder) for level in self.attention_levels for decoder in (False, True)]
        for width, decoder in attention_widths:
            self.heads_for(width, decoder=decoder)

    def _parse_channel_mult(self) -> tuple[float, ...]:
        value = self.channel_mult
        if value == "":
            if self.image_size not in _DEFAULT_CHANNEL_MULT:
                raise ValueError(
                    f"channel_mult='' has no default for image_size {self.image_size} "
                    f"(defaults exist for {sorted(_DEFAULT_CHANNEL_MULT)}); pass channel_mult explicitly"
                )
            return _DEFAULT_CHANNEL_MULT[self.image_size]
        try:
            mult = tuple(int(m) for m in value.split(",")) if isinstance(value, str) else tuple(value)
        except ValueError as err:
            raise ValueError(f"channel_mult must be '' or comma-separated ints, got {value!r}") from err
        if not mult or any(m <= 0 for m in mult):
            raise ValueError(f"channel_mult must hold positive multipliers, got {value!r}")
        return mult

    def _parse_attention_resolutions(self) -> tuple[int, ...]:
        value = self.attention_resolutions
        try:
            return tuple(int(r) for r in value.split(",")) if isinstance(value, str) else tuple(int(r) for r in value)
        except ValueError as err:
            raise ValueError(f"attention_resolutions must be comma-separated ints, got {value!r}") from err

    @property
    def in_channels(self) -> int:
        return 3

    @property
    def out_channels(self) -> int:
        return 6 if self.learn_sigma else 3

    @property
    def num_classes(self) -> int | None:
        return NUM_CLASSES if self.class_cond else None

    @property
    def attention_ds(self) -> tuple[int, ...]:
        """Downsampling factors with attention (create_model's `image_size // int(res)`)."""
        return tuple(self.image_size // r for r in self.attention_resolutions)

    @property
    def level_channels(self) -> tuple[int, ...]:
        return tuple(int(m * self.num_channels) for m in self.channel_mult)

    @property
    def attention_levels(self) -> frozenset[int]:
        return frozenset(level for level in range(len(self.channel_mult)) if 2**level in self.attention_ds)

    def heads_for(self, channels: int, *, decoder: bool) -> int:
        """Heads of an attention block with `channels` channels (decoder blocks use num_heads_upsample)."""
        if self.num_head_channels != -1:
            heads, rest = divmod(channels, self.num_head_channels)
        else:
            heads = self.num_heads_upsample if decoder and self.num_heads_upsample != -1 else self.num_heads
            rest = channels % heads
        if rest:
            raise ValueError(
                f"attention width {channels} does not split into heads (num_heads={self.num_heads}, "
                f"num_head_channels={self.num_head_channels}, num_heads_upsample={self.num_heads_upsample})"
            )
        return heads


def adm_timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """guided-diffusion's sinusoidal embedding: [cos(t·f_k), sin(t·f_k)], f_k = max_period^(−k/(dim/2)).

    t: [B] timesteps, possibly fractional. Returns [B, dim] float32 (zero column appended for odd dim).
    The frequencies are evaluated in the reference's operation order (exp(−log(P)·k / half) in float32).
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    phase = t[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(phase), torch.sin(phase)], dim=-1)
    return F.pad(emb, (0, dim % 2))


class GroupNorm32(nn.GroupNorm):
    """GroupNorm(32 groups, eps 1e-5) evaluated in float32, returned in the input dtype."""

    def __init__(self, channels: int) -> None:
        super().__init__(_NORM_GROUPS, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).to(x.dtype)


class Upsample(nn.Module):
    """Nearest ×2, then a 3×3 conv (`conv`) when use_conv."""

    def __init__(self, channels: int, use_conv: bool) -> None:
        super().__init__()
        if use_conv:
            self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x) if hasattr(self, "conv") else x


class Downsample(nn.Module):
    """Stride-2 3×3 conv with padding 1 (`op`) when use_conv, else 2×2 average pooling."""

    def __init__(self, channels: int, use_conv: bool) -> None:
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1) if use_conv else nn.AvgPool2d(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class ResBlock(nn.Module):
    """Residual block conditioned on the time embedding, optionally resampling (up or down, parameter-free).

    h = in_conv(resample(silu(norm_in(x))));  e = emb_layers(emb)  (Linear after SiLU)
    scale-shift: h = out_conv(dropout(silu(norm_out(h)·(1 + e_scale) + e_shift)))
    additive:    h = out_conv(dropout(silu(norm_out(h + e))))
    out = skip_connection(resample(x)) + h, skip_connection = identity or a 1×1 conv when the width changes.
    """

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        dropout: float,
        out_channels: int | None = None,
        use_scale_shift_norm: bool = False,
        use_checkpoint: bool = False,
        up: bool = False,
        down: bool = False,
    ) -> None:
        super().__init__()
        out_channels = out_channels or channels
        self.use_scale_shift_norm = use_scale_shift_norm
        self.use_checkpoint = use_checkpoint
        self.in_layers = nn.Sequential(
            GroupNorm32(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1)
        )
        self.updown = up or down
        if up:
            self.h_upd, self.x_upd = Upsample(channels, False), Upsample(channels, False)
        elif down:
            self.h_upd, self.x_upd = Downsample(channels, False), Downsample(channels, False)
        else:
            self.h_upd = self.x_upd = nn.Identity()
        self.emb_layers = nn.Sequential(
            nn.SiLU(), nn.Linear(emb_channels, 2 * out_channels if use_scale_shift_norm else out_channels)
        )
        self.out_layers = nn.Sequential(
            GroupNorm32(out_channels),
            nn.SiLU(),
            nn.Dropout(p=dropout),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        self.skip_connection = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        if self.use_checkpoint and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(self._forward, x, emb, use_reentrant=False)
        return self._forward(x, emb)

    def _forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        norm_in, act_in, conv_in = self.in_layers
        h = self.h_upd(act_in(norm_in(x)))  # resample between the activation and the conv, as the reference does
        x = self.x_upd(x)
        h = conv_in(h)
        emb_out = self.emb_layers(emb).to(h.dtype)[:, :, None, None]
        norm_out, act_out, dropout, conv_out = self.out_layers
        if self.use_scale_shift_norm:
            scale, shift = emb_out.chunk(2, dim=1)
            h = norm_out(h) * (1 + scale) + shift
        else:
            h = norm_out(h + emb_out)
        h = conv_out(dropout(act_out(h)))
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    """Multi-head self-attention over the H·W positions, residual: out = x + proj_out(attn(qkv(norm(x)))).

    qkv is a 1×1 Conv1d C -> 3C. Legacy order: its output channels are per head [q_h | k_h | v_h] (each C/heads
    wide); new order: [q | k | v], each split into heads. attn = softmax(q kᵀ / √d) v per head (torch SDPA; the
    reference scales q and k by d^(−1/4) each and takes the softmax in float32, which is the same function).
    """

    def __init__(
        self, channels: int, num_heads: int, use_new_attention_order: bool = False, use_checkpoint: bool = False
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.use_new_attention_order = use_new_attention_order
        self.use_checkpoint = use_checkpoint
        self.norm = GroupNorm32(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_checkpoint and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, *spatial = x.shape
        x = x.reshape(b, c, -1)
        length, heads = x.shape[-1], self.num_heads
        # Token-major [B, T, 3C] so the 1×1 convs are plain matmuls and SDPA gets a unit-stride head dim.
        qkv = F.linear(self.norm(x).transpose(1, 2), self.qkv.weight[..., 0], self.qkv.bias)
        if self.use_new_attention_order:
            q, k, v = qkv.reshape(b, length, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        else:
            q, k, v = qkv.reshape(b, length, heads, 3, c // heads).permute(3, 0, 2, 1, 4)
        h = F.scaled_dot_product_attention(q, k, v)  # [B, heads, T, d]
        h = F.linear(h.transpose(1, 2).reshape(b, length, c), self.proj_out.weight[..., 0], self.proj_out.bias)
        return (x + h.transpose(1, 2)).reshape(b, c, *spatial)


class TimestepEmbedSequential(nn.Sequential):
    """A sequence of layers; ResBlocks also receive the time embedding."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class ADMUNet(nn.Module):
    """guided-diffusion `UNetModel`: forward(x [B, 3, H, W], t [B], y [B] | None) -> [B, 3 or 6, H, W].

    Build it from `create_model` keyword arguments with :func:`build_adm` or from an :class:`ADMConfig`.
    """

    def __init__(self, config: ADMConfig) -> None:
        super().__init__()
        self.config = config
        cfg = config
        emb_dim = 4 * cfg.num_channels
        widths = cfg.level_channels
        last = len(widths) - 1

        def res_block(cin: int, cout: int, **updown: bool) -> ResBlock:
            return ResBlock(cin, emb_dim, cfg.dropout, cout, cfg.use_scale_shift_norm, cfg.use_checkpoint, **updown)

        def attention(width: int, decoder: bool) -> AttentionBlock:
            return AttentionBlock(
                width, cfg.heads_for(width, decoder=decoder), cfg.use_new_attention_order, cfg.use_checkpoint
            )

        self.time_embed = nn.Sequential(nn.Linear(cfg.num_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        if cfg.num_classes is not None:
            self.label_emb = nn.Embedding(cfg.num_classes, emb_dim)

        ch = widths[0]
        self.input_blocks = nn.ModuleList([TimestepEmbedSequential(nn.Conv2d(cfg.in_channels, ch, 3, padding=1))])
        skip_widths = [ch]
        for level, width in enumerate(widths):
            for _ in range(cfg.num_res_blocks):
                layers: list[nn.Module] = [res_block(ch, width)]
                ch = width
                if level in cfg.attention_levels:
                    layers.append(attention(ch, decoder=False))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                skip_widths.append(ch)
            if level != last:
                down = res_block(ch, ch, down=True) if cfg.resblock_updown else Downsample(ch, use_conv=True)
                self.input_blocks.append(TimestepEmbedSequential(down))
                skip_widths.append(ch)

        self.middle_block = TimestepEmbedSequential(res_block(ch, ch), attention(ch, decoder=False), res_block(ch, ch))

        self.output_blocks = nn.ModuleList()
        for level in reversed(range(len(widths))):
            for i in range(cfg.num_res_blocks + 1):
                layers = [res_block(ch + skip_widths.pop(), widths[level])]
                ch = widths[level]
                if level in cfg.attention_levels:
                    layers.append(attention(ch, decoder=True))
                if level and i == cfg.num_res_blocks:
                    layers.append(res_block(ch, ch, up=True) if cfg.resblock_updown else Upsample(ch, use_conv=True))
                self.output_blocks.append(TimestepEmbedSequential(*layers))

        self.out = nn.Sequential(GroupNorm32(ch), nn.SiLU(), nn.Conv2d(widths[0], cfg.out_channels, 3, padding=1))
        self._zero_init_residual_outputs()

    def _zero_init_residual_outputs(self) -> None:
        """The reference initialises every residual branch's last layer and the output conv to zero (a fresh
        network is the identity on each block and outputs 0); kept so training from scratch matches."""
        last_layers = [self.out[2]]
        for module in self.modules():
            if isinstance(module, ResBlock):
                last_layers.append(module.out_layers[3])
            elif isinstance(module, AttentionBlock):
                last_layers.append(module.proj_out)
        with torch.no_grad():
            for layer in last_layers:
                layer.weight.zero_()
                layer.bias.zero_()

    # -- precision --------------------------------------------------------------------------------------------

    def convert_torso(self, dtype: torch.dtype) -> ADMUNet:
        """Cast every Conv1d/Conv2d of input_blocks, middle_block and output_blocks to `dtype` (in place)."""
        for torso in (self.input_blocks, self.middle_block, self.output_blocks):
            for module in torso.modules():
                if isinstance(module, (nn.Conv1d, nn.Conv2d)):
                    module.to(dtype)
        return self

    def convert_to_fp16(self) -> ADMUNet:
        """The reference's mixed precision: torso convolutions in float16, everything else float32."""
        return self.convert_torso(torch.float16)

    def convert_to_fp32(self) -> ADMUNet:
        """Undo :meth:`convert_to_fp16`."""
        return self.convert_torso(torch.float32)

    @property
    def torso_dtype(self) -> torch.dtype:
        """dtype the torso runs in (float16 after convert_to_fp16, else the parameters' dtype)."""
        return self.input_blocks[0][0].weight.dtype

    # -- forward ----------------------------------------------------------------------------------------------

    def forward(self, x: torch.Tensor, t: torch.Tensor | float, y: torch.Tensor | None = None) -> torch.Tensor:
        """x: [B, 3, H, W] (H, W divisible by 2^(levels−1)); t: [B] or scalar timestep (integer index or float, used
        as is, e.g. 0..999); y: [B] int64 class labels iff class_cond. Returns [B, 3 or 6, H, W] in the dtype of
        `out` (float32 unless the whole model was cast)."""
        x, t = self._check_inputs(x, t, y)
        emb = self.time_embed(adm_timestep_embedding(t, self.config.num_channels).to(self.time_embed[0].weight.dtype))
        if y is not None:
            emb = emb + self.label_emb(y)

        h = x.to(self.torso_dtype)
        skips = []
        for block in self.input_blocks:
            h = block(h, emb)
            skips.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h.to(self.out[2].weight.dtype))

    def _check_inputs(
        self, x: torch.Tensor, t: torch.Tensor | float, y: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.config
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        factor = 2 ** (len(cfg.channel_mult) - 1)
        if x.ndim != 4 or x.shape[1] != cfg.in_channels or x.shape[2] % factor or x.shape[3] % factor:
            raise ValueError(
                f"x must have shape [B, {cfg.in_channels}, H, W] with H and W divisible by {factor}, "
                f"got {tuple(x.shape)}"
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
        if (y is None) != (cfg.num_classes is None):
            raise ValueError("y (class labels) must be given if and only if the model is class-conditional")
        if y is not None and (y.shape != (x.shape[0],) or y.is_floating_point()):
            raise ValueError(f"y must be an integer tensor of shape [{x.shape[0]}], got {y.dtype} {tuple(y.shape)}")
        return x, t


def build_adm(**create_model_kwargs: object) -> ADMUNet:
    """Build the ADM UNet from guided-diffusion `create_model` keyword arguments (random weights)."""
    return ADMUNet(ADMConfig(**create_model_kwargs))
