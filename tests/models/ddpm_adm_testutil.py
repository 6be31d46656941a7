"""Helpers shared by test_ddpm.py and test_adm.py: deterministic non-trivial weights, manifest comparison."""

from __future__ import annotations

import json
from pathlib import Path

import torch


def randomize_(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Overwrite every parameter in named_parameters() order, the test-vector rule (shared/test-vectors/README.md).

    The stock inits zero the last layer of residual branches, which would hide wiring errors: ndim >= 2 tensors get
    randn / sqrt(fan_in), GroupNorm weights 1 + 0.1·randn, other 1-D tensors 0.1·randn (drawn in float64).
    """
    g = torch.Generator().manual_seed(seed)
    norms = {name for name, m in module.named_modules() if isinstance(m, torch.nn.GroupNorm)}
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=torch.float64)
            if p.ndim >= 2:
                value = noise / p[0].numel() ** 0.5
            elif name.rpartition(".")[0] in norms and name.endswith("weight"):
                value = 1 + 0.1 * noise
            else:
                value = 0.1 * noise
            p.copy_(value.to(p.dtype))
    return module


def read_manifest(path: Path) -> list[tuple[str, list[int], str]]:
    """(key, shape, dtype) per line of a checkpoint manifest, in file order."""
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [(e["key"], e["shape"], e["dtype"]) for e in entries]


def state_dict_signature(module: torch.nn.Module) -> list[tuple[str, list[int], str]]:
    """(key, shape, dtype) of each state-dict entry, in state_dict() order (works on the meta device)."""
    return [(k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in module.state_dict().items()]
