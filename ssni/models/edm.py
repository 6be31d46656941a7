"""EDM preconditioned denoiser (Karras et al. 2022) around the DDPM++/NCSN++ `SongUNet`, with NVlabs/edm's names.

`build_edm(**kwargs)` takes the keyword arguments of `training.networks.EDMPrecond` (and, through them, of
`SongUNet`), so the module tree and the state dict equal NVlabs/edm's: `model.map_noise`, `model.map_label`,
`model.map_augment`, `model.map_layer0/1`, `model.enc.<res>x<res>_{conv,down,block<i>,aux_*}`,
`model.dec.<res>x<res>_{in0,in1,up,block<i>,aux_*}`; blocks hold `norm0, conv0, affine, norm1, conv1, skip,
norm2, qkv, proj`; resampling convs carry a `resample_filter` buffer. Only `model_type='SongUNet'` is built
(the ADM-style `DhariwalUNet` of EDM is not needed by any DBP checkpoint).

`EDMPrecond.forward(x, sigma) = D(x; σ) = c_skip·x + c_out·F(c_in·x, c_noise)` with σ_data = 0.5:
c_skip = σd²/(σ²+σd²), c_out = σ·σd/√(σ²+σd²), c_in = 1/√(σ²+σd²), c_noise = ln(σ)/4. x in [-1, 1] data scale;
`score = (D − x)/σ²`. `EDMEpsAdapter` turns the denoiser into a VP ε-network called with the label 999·t.

The real checkpoint `edm-cifar10-32x32-uncond-vp.pkl` is a pickle with embedded code; convert it once with
`python -m ssni.models.convert --edm-repo` (`ssni.models.formats.edm_pickle`) and load the safetensors file.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ssni_kernels.reference import vp_log_mean_coef, vp_sigma

__all__ = ["EDM_CIFAR10_UNCOND_VP", "EDMEpsAdapter", "EDMPrecond", "SongUNet", "build_edm"]

# `train.py --cond=0 --arch=ddpmpp --precond=edm` (the network of edm-cifar10-32x32-uncond-vp.pkl).
EDM_CIFAR10_UNCOND_VP: dict[str, Any] = dict(
    img_resolution=32,
    img_channels=3,
    label_dim=0,
    use_fp16=False,
    model_type="SongUNet",
    embedding_type="positional",
    encoder_type="standard",
    decoder_type="standard",
    channel_mult_noise=1,
    resample_filter=[1, 1],
    model_channels=128,
    channel_mult=[2, 2, 2],
    augment_dim=9,
    dropout=0.13,
)


def _xavier_uniform(shape, fan_in: int, fan_out: int, gain: float = 1.0) -> torch.Tensor:
    return math.sqrt(6 / (fan_in + fan_out)) * (torch.rand(*shape) * 2 - 1) * gain


class Linear(nn.Module):
    """y = x @ Wᵀ + b, weights cast to x's dtype (EDM runs the torso in fp16 on request)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, init_weight: float = 1.0):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(_xavier_uniform([out_features, in_features], in_features, out_features, init_weight))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight.to(x.dtype), None if self.bias is None else self.bias.to(x.dtype))


class Conv2d(nn.Module):
    """Convolution with optional ×2 up/down resampling by the separable `resample_filter` (buffer [1,1,k,k]).

    kernel=0 means resampling only. `fused_resample` merges the resampling into the conv's padding/stride.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        bias: bool = True,
        up: bool = False,
        down: bool = False,
        resample_filter=(1, 1),
        fused_resample: bool = False,
        init_weight: float = 1.0,
    ):
        if up and down:
            raise ValueError("Conv2d: up and down are exclusive")
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.up, self.down, self.fused_resample = up, down, fused_resample
        fan_in, fan_out = in_channels * kernel * kernel, out_channels * kernel * kernel
        shape = [out_channels, in_channels, kernel, kernel]
        self.weight = nn.Parameter(_xavier_uniform(shape, fan_in, fan_out, init_weight)) if kernel else None
        self.bias = nn.Parameter(torch.zeros(out_channels)) if kernel and bias else None
        f = torch.as_tensor(resample_filter, dtype=torch.float32)
        f = torch.outer(f, f)[None, None] / f.sum().square()
        self.register_buffer("resample_filter", f if up or down else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = None if self.weight is None else self.weight.to(x.dtype)
        f = None if self.resample_filter is None else self.resample_filter.to(x.dtype)
        w_pad = w.shape[-1] // 2 if w is not None else 0
        f_pad = (f.shape[-1] - 1) // 2 if f is not None else 0
        if self.fused_resample and self.up and w is not None:
            up_filter = f.mul(4).tile([self.in_channels, 1, 1, 1])
            x = F.conv_transpose2d(x, up_filter, groups=self.in_channels, stride=2, padding=max(f_pad - w_pad, 0))
            x = F.conv2d(x, w, padding=max(w_pad - f_pad, 0))
        elif self.fused_resample and self.down and w is not None:
            x = F.conv2d(x, w, padding=w_pad + f_pad)
            x = F.conv2d(x, f.tile([self.out_channels, 1, 1, 1]), groups=self.out_channels, stride=2)
        else:
            if self.up:
                up_filter = f.mul(4).tile([self.in_channels, 1, 1, 1])
                x = F.conv_transpose2d(x, up_filter, groups=self.in_channels, stride=2, padding=f_pad)
            if self.down:
                x = F.conv2d(x, f.tile([self.in_channels, 1, 1, 1]), groups=self.in_channels, stride=2, padding=f_pad)
            if w is not None:
                x = F.conv2d(x, w, padding=w_pad)
        if self.bias is not None:
            x = x + self.bias.to(x.dtype).reshape(1, -1, 1, 1)
        return x


class GroupNorm(nn.Module):
    """GroupNorm with min(num_groups, C // min_channels_per_group) groups."""

    def __init__(self, num_channels: int, num_groups: int = 32, min_channels_per_group: int = 4, eps: float = 1e-5):
        super().__init__()
        self.num_groups = min(num_groups, num_channels // min_channels_per_group)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x, self.num_groups, self.weight.to(x.dtype), self.bias.to(x.dtype), self.eps)


class UNetBlock(nn.Module):
    """SongUNet residual block (additive embedding, skip scale √½) with optional up/down and 1-head attention."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        emb_channels: int,
        up: bool = False,
        down: bool = False,
        attention: bool = False,
        dropout: float = 0.0,
        resample_filter=(1, 1),
    ):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.dropout = dropout
        self.skip_scale = math.sqrt(0.5)
        self.norm0 = GroupNorm(in_channels, eps=1e-6)
        self.conv0 = Conv2d(in_channels, out_channels, 3, up=up, down=down, resample_filter=resample_filter)
        self.affine = Linear(emb_channels, out_channels)
        self.norm1 = GroupNorm(out_channels, eps=1e-6)
        self.conv1 = Conv2d(out_channels, out_channels, 3, init_weight=1e-5)
        self.skip = None
        if out_channels != in_channels or up or down:
            # resample_proj=True in SongUNet: the shortcut always has a 1×1 projection.
            self.skip = Conv2d(in_channels, out_channels, 1, up=up, down=down, resample_filter=resample_filter)
        self.attention = attention
        if attention:
            self.norm2 = GroupNorm(out_channels, eps=1e-6)
            self.qkv = Conv2d(out_channels, out_channels * 3, 1, init_weight=math.sqrt(0.2))
            self.proj = Conv2d(out_channels, out_channels, 1, init_weight=1e-5)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        orig = x
        x = self.conv0(F.silu(self.norm0(x)))
        x = F.silu(self.norm1(x + self.affine(emb)[:, :, None, None].to(x.dtype)))
        x = self.conv1(F.dropout(x, p=self.dropout, training=self.training))
        x = (x + (self.skip(orig) if self.skip is not None else orig)) * self.skip_scale
        if self.attention:
            b, c, h, w = x.shape
            # qkv channels are laid out (head=1, c, 3): channel 3·i + {0, 1, 2} is q/k/v of channel i.
            q, k, v = self.qkv(self.norm2(x)).reshape(b, c, 3, h * w).unbind(2)
            # Softmax in fp32 as EDM's AttentionOp; SDPA's default scale is 1/sqrt(c).
            a = F.scaled_dot_product_attention(*(t.transpose(1, 2).float() for t in (q, k, v)))
            x = (self.proj(a.to(x.dtype).transpose(1, 2).reshape(b, c, h, w)) + x) * self.skip_scale
        return x


class PositionalEmbedding(nn.Module):
    """[cos(x·f_k), sin(x·f_k)], f_k = (1/max_positions)^(k / (C/2 − endpoint))."""

    def __init__(self, num_channels: int, max_positions: int = 10000, endpoint: bool = False):
        super().__init__()
        self.num_channels, self.max_positions, self.endpoint = num_channels, max_positions, endpoint

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = self.num_channels // 2
        freqs = torch.arange(half, dtype=torch.float32, device=x.device) / (half - (1 if self.endpoint else 0))
        freqs = (1 / self.max_positions) ** freqs
        x = torch.outer(x, freqs.to(x.dtype))
        return torch.cat([x.cos(), x.sin()], dim=1)


class FourierEmbedding(nn.Module):
    """[cos(2π·x·f), sin(2π·x·f)] with fixed random frequencies (buffer `freqs`)."""

    def __init__(self, num_channels: int, scale: float = 16):
        super().__init__()
        self.register_buffer("freqs", torch.randn(num_channels // 2) * scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.outer(x, (2 * np.pi * self.freqs).to(x.dtype))
        return torch.cat([x.cos(), x.sin()], dim=1)


class SongUNet(nn.Module):
    """EDM's re-implementation of DDPM++ / NCSN++ (same keyword arguments and defaults as NVlabs/edm)."""

    def __init__(
        self,
        img_resolution: int,
        in_channels: int,
        out_channels: int,
        label_dim: int = 0,
        augment_dim: int = 0,
        model_channels: int = 128,
        channel_mult=(1, 2, 2, 2),
        channel_mult_emb: int = 4,
        num_blocks: int = 4,
        attn_resolutions=(16,),
        dropout: float = 0.10,
        label_dropout: float = 0.0,
        embedding_type: str = "positional",
        channel_mult_noise: int = 1,
        encoder_type: str = "standard",
        decoder_type: str = "standard",
        resample_filter=(1, 1),
    ):
        if embedding_type not in ("fourier", "positional"):
            raise ValueError(f"embedding_type must be 'fourier' or 'positional', got {embedding_type!r}")
        if encoder_type not in ("standard", "skip", "residual"):
            raise ValueError(f"encoder_type must be 'standard', 'skip' or 'residual', got {encoder_type!r}")
        if decoder_type not in ("standard", "skip"):
            raise ValueError(f"decoder_type must be 'standard' or 'skip', got {decoder_type!r}")
        super().__init__()
        self.label_dropout = label_dropout
        emb_channels = model_channels * channel_mult_emb
        noise_channels = model_channels * channel_mult_noise
        block = dict(emb_channels=emb_channels, dropout=dropout, resample_filter=resample_filter)

        if embedding_type == "positional":
            self.map_noise = PositionalEmbedding(noise_channels, endpoint=True)
        else:
            self.map_noise = FourierEmbedding(noise_channels)
        self.map_label = Linear(label_dim, noise_channels) if label_dim else None
        self.map_augment = Linear(augment_dim, noise_channels, bias=False) if augment_dim else None
        self.map_layer0 = Linear(noise_channels, emb_channels)
        self.map_layer1 = Linear(emb_channels, emb_channels)

        self.enc = nn.ModuleDict()
        cout = caux = in_channels
        for level, mult in enumerate(channel_mult):
            res = img_resolution >> level
            if level == 0:
                cin, cout = cout, model_channels
                self.enc[f"{res}x{res}_conv"] = Conv2d(cin, cout, 3)
            else:
                self.enc[f"{res}x{res}_down"] = UNetBlock(cout, cout, down=True, **block)
                if encoder_type == "skip":
                    self.enc[f"{res}x{res}_aux_down"] = Conv2d(
                        caux, caux, 0, down=True, resample_filter=resample_filter
                    )
                    self.enc[f"{res}x{res}_aux_skip"] = Conv2d(caux, cout, 1)
                if encoder_type == "residual":
                    self.enc[f"{res}x{res}_aux_residual"] = Conv2d(
                        caux, cout, 3, down=True, resample_filter=resample_filter, fused_resample=True
                    )
                    caux = cout
            for idx in range(num_blocks):
                cin, cout = cout, model_channels * mult
                attn = res in attn_resolutions
                self.enc[f"{res}x{res}_block{idx}"] = UNetBlock(cin, cout, attention=attn, **block)
        skips = [b.out_channels for name, b in self.enc.items() if "aux" not in name]

        self.dec = nn.ModuleDict()
        for level, mult in reversed(list(enumerate(channel_mult))):
            res = img_resolution >> level
            if level == len(channel_mult) - 1:
                self.dec[f"{res}x{res}_in0"] = UNetBlock(cout, cout, attention=True, **block)
                self.dec[f"{res}x{res}_in1"] = UNetBlock(cout, cout, **block)
            else:
                self.dec[f"{res}x{res}_up"] = UNetBlock(cout, cout, up=True, **block)
            for idx in range(num_blocks + 1):
                cin, cout = cout + skips.pop(), model_channels * mult
                attn = idx == num_blocks and res in attn_resolutions
                self.dec[f"{res}x{res}_block{idx}"] = UNetBlock(cin, cout, attention=attn, **block)
            if decoder_type == "skip" or level == 0:
                if decoder_type == "skip" and level < len(channel_mult) - 1:
                    self.dec[f"{res}x{res}_aux_up"] = Conv2d(
                        out_channels, out_channels, 0, up=True, resample_filter=resample_filter
                    )
                self.dec[f"{res}x{res}_aux_norm"] = GroupNorm(cout, eps=1e-6)
                self.dec[f"{res}x{res}_aux_conv"] = Conv2d(cout, out_channels, 3, init_weight=1e-5)

    def forward(self, x, noise_labels, class_labels=None, augment_labels=None):
        emb = self.map_noise(noise_labels)
        emb = emb.reshape(emb.shape[0], 2, -1).flip(1).reshape(*emb.shape)  # [cos, sin] → [sin, cos]
        if self.map_label is not None:
            labels = class_labels
            if self.training and self.label_dropout:
                keep = torch.rand([x.shape[0], 1], device=x.device) >= self.label_dropout
                labels = labels * keep.to(labels.dtype)
            emb = emb + self.map_label(labels * math.sqrt(self.map_label.in_features))
        if self.map_augment is not None and augment_labels is not None:
            emb = emb + self.map_augment(augment_labels)
        emb = F.silu(self.map_layer1(F.silu(self.map_layer0(emb))))

        skips = []
        aux = x
        for name, block in self.enc.items():
            if "aux_down" in name:
                aux = block(aux)
            elif "aux_skip" in name:
                x = skips[-1] = x + block(aux)
            elif "aux_residual" in name:
                x = skips[-1] = aux = (x + block(aux)) / math.sqrt(2)
            else:
                x = block(x, emb) if isinstance(block, UNetBlock) else block(x)
                skips.append(x)

        aux = tmp = None
        for name, block in self.dec.items():
            if "aux_up" in name:
                aux = block(aux)
            elif "aux_norm" in name:
                tmp = block(x)
            elif "aux_conv" in name:
                tmp = block(F.silu(tmp))
                aux = tmp if aux is None else tmp + aux
            else:
                if x.shape[1] != block.in_channels:
                    x = torch.cat([x, skips.pop()], dim=1)
                x = block(x, emb)
        return aux


class EDMPrecond(nn.Module):
    """D(x; σ) of EDM; `forward(x, sigma, class_labels=None, force_fp32=False, augment_labels=None)`."""

    def __init__(
        self,
        img_resolution: int,
        img_channels: int,
        label_dim: int = 0,
        use_fp16: bool = False,
        sigma_min: float = 0.0,
        sigma_max: float = float("inf"),
        sigma_data: float = 0.5,
        model_type: str = "SongUNet",
        **model_kwargs,
    ):
        super().__init__()
        if model_type != "SongUNet":
            raise NotImplementedError(f"EDMPrecond: only model_type='SongUNet' is implemented, got {model_type!r}")
        self.img_resolution, self.img_channels, self.label_dim = img_resolution, img_channels, label_dim
        self.use_fp16, self.sigma_min, self.sigma_max, self.sigma_data = use_fp16, sigma_min, sigma_max, sigma_data
        self.model = SongUNet(img_resolution, img_channels, img_channels, label_dim=label_dim, **model_kwargs)

    def forward(self, x, sigma, class_labels=None, force_fp32: bool = False, augment_labels=None):
        """x: [B, C, H, W] (cast to fp32); sigma: scalar or [B] noise level > 0 → D(x; σ) [B, C, H, W] fp32."""
        if x.ndim != 4 or x.shape[1] != self.img_channels or x.shape[0] == 0 or not x.is_floating_point():
            raise ValueError(
                f"x must be a non-empty float tensor [B, {self.img_channels}, H, W], got {x.dtype} {tuple(x.shape)}"
            )
        x = x.to(torch.float32)
        sigma = torch.as_tensor(sigma, device=x.device).to(torch.float32)
        if sigma.numel() == 1:
            sigma = sigma.reshape(1).expand(x.shape[0])
        if sigma.shape != (x.shape[0],):
            raise ValueError(f"sigma must be a scalar or have shape [{x.shape[0]}], got {tuple(sigma.shape)}")
        sigma = sigma.reshape(-1, 1, 1, 1)
        if self.label_dim == 0:
            class_labels = None
        elif class_labels is None:
            class_labels = torch.zeros([1, self.label_dim], device=x.device)
        else:
            class_labels = class_labels.to(torch.float32).reshape(-1, self.label_dim)
        use_half = self.use_fp16 and not force_fp32 and x.device.type == "cuda"
        dtype = torch.float16 if use_half else torch.float32

        sd2 = self.sigma_data**2
        c_skip = sd2 / (sigma**2 + sd2)
        c_out = sigma * self.sigma_data / (sigma**2 + sd2).sqrt()
        c_in = 1 / (sd2 + sigma**2).sqrt()
        c_noise = sigma.log() / 4
        f_x = self.model((c_in * x).to(dtype), c_noise.flatten(), class_labels, augment_labels)
        return c_skip * x + c_out * f_x.to(torch.float32)

    def round_sigma(self, sigma):
        return torch.as_tensor(sigma)


class EDMEpsAdapter(nn.Module):
    """An EDM denoiser as a VP ε-network: `forward(x, labels)` with labels = 999·t (continuous VP time).

    With m = m(t), s = σ_VP(t) (β0 = 0.1, β1 = 20): x_vp = m·x0 + s·ε ⇔ x_vp/m = x0 + (s/m)·ε, so
    D = D(x/m; s/m) and ε̂ = (x − m·D)/s; the score is −ε̂/s = (m·D − x)/s².
    """

    def __init__(self, denoiser: EDMPrecond):
        super().__init__()
        self.denoiser = denoiser

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(labels, device=x.device, dtype=torch.float64) / 999
        m = torch.exp(vp_log_mean_coef(t)).reshape(-1, 1, 1, 1)
        s = vp_sigma(t).reshape(-1, 1, 1, 1)
        denoised = self.denoiser(x / m.to(x.dtype), (s / m).flatten().to(torch.float32))
        return ((x - m.to(x.dtype) * denoised) / s.to(x.dtype)).to(x.dtype)


def build_edm(**kwargs) -> EDMPrecond:
    """EDMPrecond from NVlabs/edm's keyword arguments (`class_name` is accepted and must be EDMPrecond);
    no arguments builds the edm-cifar10-32x32-uncond-vp network."""
    kwargs = dict(kwargs or EDM_CIFAR10_UNCOND_VP)
    class_name = kwargs.pop("class_name", "training.networks.EDMPrecond")
    if class_name.rsplit(".", 1)[-1] != "EDMPrecond":
        raise NotImplementedError(f"build_edm: only EDMPrecond is implemented, got class_name={class_name!r}")
    return EDMPrecond(**kwargs)
