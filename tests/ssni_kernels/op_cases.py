"""Shared helpers of the ssni_kernels tests: dtypes, tolerances, schedules, random batches, test ids, opcheck."""

from __future__ import annotations

import pytest
import torch

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]

# (rtol, atol) of a kernel against the reference run in the same dtype: a few roundings of the storage dtype.
TOLERANCES = {
    torch.float64: (1e-9, 1e-9),
    torch.float32: (1e-5, 1e-5),
    torch.float16: (2e-3, 2e-3),
    torch.bfloat16: (1.6e-2, 1.6e-2),
}
# Generated normals are float32 numbers a few ulp from the float64 definition.
NOISE_ATOL = 2e-6


# Generated noise of the op tests: a seed above 2**32 (both key words used) and ids above 2**32 (taken mod 2**32).
SEED = 2**35 + 17
IDS = torch.tensor([3, 1, 4, 1_000_000, 2**32 + 9])


def noise_kwargs(given: bool, like: torch.Tensor) -> dict:
    """The noise arguments of an op: noise like `like` (given), or the Philox stream of SEED and IDS."""
    if given:
        return {"noise": batch(like.shape, like.dtype, seed=5)}
    return {"seed": SEED, "sample_ids": IDS}


def ddpm_alphas_cumprod() -> torch.Tensor:
    """DDPM ᾱ (spec §1): T = 1000, β linear in [1e-4, 2e-2], float64."""
    return torch.cumprod(1 - torch.linspace(1e-4, 2e-2, 1000, dtype=torch.float64), dim=0)


def assert_close_dtype(actual: torch.Tensor, expected: torch.Tensor, *, generated_noise: bool = False) -> None:
    rtol, atol = TOLERANCES[expected.dtype]
    if generated_noise:
        atol = max(atol, 10 * NOISE_ATOL)
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol)


def batch(shape, dtype=torch.float32, seed=0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator, dtype=torch.float64).to(dtype)


def dtype_id(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def shape_id(batch_size: int, row: tuple[int, ...]) -> str:
    """FLA-style test id of a [B, C, H, W] batch: "B5-C3-H6-W7"."""
    return "-".join([f"B{batch_size}", *(f"{axis}{n}" for axis, n in zip("CHW", row))])


def with_grad(args: tuple, differentiable: tuple[int, ...]) -> tuple:
    """args with fresh leaves requiring grad at the positions of the op's differentiable tensor inputs."""
    args = list(args)
    for i in differentiable:
        if isinstance(args[i], torch.Tensor):
            args[i] = args[i].clone().requires_grad_()
    return tuple(args)


def check_registration(op, args: tuple, differentiable: tuple[int, ...]) -> None:
    """torch.library.opcheck (schema, fake kernel, autograd registration, AOT dispatch) with and without grad."""
    torch.library.opcheck(op, with_grad(args, differentiable))
    torch.library.opcheck(op, args)


def check_gradients(op, args: tuple, differentiable: tuple[int, ...]) -> None:
    """float64 gradcheck of the op's backward against finite differences."""
    assert torch.autograd.gradcheck(lambda *a: op(*a), with_grad(args, differentiable), eps=1e-6, atol=1e-7)


def check_bad_input(error: type[Exception], match: str, call) -> None:
    """call() raises `error` with a message matching `match` (which names the argument)."""
    with pytest.raises(error, match=match):
        call()
