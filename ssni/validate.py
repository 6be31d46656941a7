"""Input checks of the algorithm layer (the one place they live): a clear error naming the argument.

Library functions raise ValueError/TypeError; the CLI validates user input before it reaches them and turns only
user-error types into one line (`ssni.errors`). The ops of `ssni_kernels` have their own checks (`_checks.py`).
"""

from __future__ import annotations

import torch

MAX_SEED = 2**63 - 1  # the op schemas take a signed int64 seed


def _bounds(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f" in [{low}, {high}]"
    return f" >= {low}" if low is not None else f" <= {high}" if high is not None else ""


def check_int(name: str, value, *, low: int | None = None, high: int | None = None, optional: bool = False):
    """`value` must be an int (not a bool) in [low, high] (None: unbounded); with `optional`, None passes."""
    if value is None and optional:
        return None
    ok = isinstance(value, int) and not isinstance(value, bool)
    ok = ok and (low is None or value >= low) and (high is None or value <= high)
    if not ok:
        either = "None or " if optional else ""
        raise ValueError(f"{name} must be {either}an int{_bounds(low, high)}, got {value!r}")
    return value


def check_choice(name: str, value, choices) -> object:
    """`value` must be one of `choices`."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_images(x, name: str = "x", *, unit_range: bool = True) -> torch.Tensor:
    """x must be a non-empty, finite, floating [B, C, H, W] tensor (in [0, 1] when unit_range)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{name} must have shape [B, C, H, W], got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got {x.dtype}")
    if not torch.isfinite(x.detach()).all():
        raise ValueError(f"{name} contains NaN or Inf")
    if unit_range:
        lo, hi = float(x.detach().min()), float(x.detach().max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(f"{name} must be images in [0, 1], got values in [{lo:.4g}, {hi:.4g}]")
    return x


def check_seed(seed) -> int:
    """A seed of the ops' Philox key: an int in [0, 2**63 − 1]."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be an int in [0, 2**63 - 1], got {seed!r}")
    return seed


def check_sample_ids(sample_ids, batch: int, device) -> torch.Tensor:
    """None → arange(batch) (then a sample's noise depends on its batch position: pass ids for invariance)."""
    if sample_ids is None:
        return torch.arange(batch, dtype=torch.int64, device=device)
    if not isinstance(sample_ids, torch.Tensor):
        sample_ids = torch.as_tensor(sample_ids)
    if sample_ids.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"sample_ids must be an integer tensor, got {sample_ids.dtype}")
    if sample_ids.shape != (batch,):
        raise ValueError(f"sample_ids must have shape [{batch}], got {tuple(sample_ids.shape)}")
    if (sample_ids < 0).any():
        raise ValueError("sample_ids must be >= 0")
    return sample_ids.to(device=device, dtype=torch.int64)


def check_unique_ids(sample_ids: torch.Tensor) -> torch.Tensor:
    """Sample ids that name outputs must not repeat."""
    if torch.unique(sample_ids).numel() != sample_ids.numel():
        raise ValueError("sample_ids must be unique")
    return sample_ids


def check_timesteps(t, batch: int, num_stages: int | None, device, max_t: int = 1000) -> torch.Tensor:
    """t must be an int64 tensor [B] (single stage) or [B, S] (num_stages = S), values in [0, max_t]."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"t must be an int64 tensor, got {type(t).__name__}")
    if t.dtype != torch.int64:
        raise TypeError(f"t must be an int64 tensor, got {t.dtype}")
    shape = (batch,) if num_stages is None else (batch, num_stages)
    if tuple(t.shape) != shape:
        raise ValueError(f"t must have shape {list(shape)}, got {list(t.shape)}")
    if t.numel() and (int(t.min()) < 0 or int(t.max()) > max_t):
        raise ValueError(f"t must be in [0, {max_t}], got values in [{int(t.min())}, {int(t.max())}]")
    return t.to(device)


def value_checks_allowed() -> bool:
    """False while tracing for torch.compile or capturing a CUDA graph, where a data-dependent check (a host
    read-back) would break the graph; shape and dtype checks stay on everywhere."""
    if torch.compiler.is_compiling():
        return False
    return not (torch.cuda.is_available() and torch.cuda.is_current_stream_capturing())
