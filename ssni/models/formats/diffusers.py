"""diffusers `UNet2DModel` folders of the DDPM network (e.g. google/ddpm-cifar10-32) in pytorch_diffusion naming.

A folder holds `config.json` + `diffusion_pytorch_model.safetensors` (or `.bin`); a pipeline folder keeps them in
`unet/`. `ddpm_config_from_diffusers` turns the config into a `DDPMConfig` (refusing any other architecture),
`ddpm_state_dict_from_diffusers` renames the keys (mapping documented there) and `load_diffusers_folder` does both
and loads strictly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch

from ssni.models.checkpoint import CheckpointError, load_state_dict_checked, read_checkpoint
from ssni.models.ddpm import NORM_EPS, NORM_GROUPS, DDPMConfig, DDPMUNet

__all__ = ["ddpm_config_from_diffusers", "ddpm_state_dict_from_diffusers", "load_diffusers_folder"]

# diffusers config fields whose value must be the one below for the network to be this architecture.
_DIFFUSERS_FIXED = {
    "act_fn": "silu",
    "center_input_sample": False,
    "downsample_padding": 0,
    "flip_sin_to_cos": False,
    "freq_shift": 1,
    "mid_block_scale_factor": 1,
    "norm_eps": NORM_EPS,
    "norm_num_groups": NORM_GROUPS,
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
    Raises ValueError naming the keys it does not recognise.
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
        shown = ", ".join(unknown[:5]) + (f", … (+{len(unknown) - 5} more)" if len(unknown) > 5 else "")
        raise ValueError(f"state_dict: {len(unknown)} diffusers key(s) have no DDPM counterpart: {shown}")
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
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"path: {folder} is not a directory")
    if not (folder / "config.json").is_file() and (folder / "unet" / "config.json").is_file():
        folder = folder / "unet"
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"path: {folder} has no config.json (not a diffusers UNet2DModel folder)")
    try:
        config = ddpm_config_from_diffusers(json.loads(config_file.read_text()))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{config_file} is not valid JSON ({err})") from None
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{config_file} does not describe the DDPM UNet: {err}") from None
    weights = [folder / f"diffusion_pytorch_model.{ext}" for ext in ("safetensors", "bin")]
    weights = [file for file in weights if file.is_file()]
    if not weights:
        raise FileNotFoundError(f"path: {folder} has neither diffusion_pytorch_model.safetensors nor .bin")
    state_dict = read_checkpoint(weights[0])
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(f"diffusers weights {weights[0]}: expected a state dict, got {type(state_dict).__name__}")
    model = DDPMUNet(config)
    try:
        renamed = ddpm_state_dict_from_diffusers(state_dict, len(config.ch_mult))
    except ValueError as err:
        raise CheckpointError(f"diffusers weights {weights[0]}: {err}") from None
    load_state_dict_checked(model, renamed, source=f"diffusers weights {weights[0]}")
    return model.eval()
