"""The op benchmark cases, shared by the CPU suite (bench_ops.py, pytest-benchmark) and the GPU command (gpu.py).

A case is one op at one shape (float32): its inputs, the bytes it must move at minimum (each input read once,
each output written once; that is what GB/s and the fraction of copy bandwidth are computed from), and the three
implementations compared: the public op (`ssni_kernels.<op>`: C++ on CPU, Triton/CUDA on GPU), the eager
reference (`ssni_kernels.reference`) and `torch.compile(reference)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

import ssni_kernels
from ssni_kernels import reference

SHAPES = {"cifar": (256, 3, 32, 32), "imagenet": (16, 3, 256, 256)}
LEVELS = 20  # K of the score-norm shape
IMPLS = ("ssni", "eager", "compiled")
FLOAT32_BYTES = 4


@dataclass(frozen=True)
class Case:
    """One op at one shape. `levels` is K for the multi-level ops (noise_inject_levels, score_norm)."""

    op: str
    shape_name: str
    levels: int | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return SHAPES[self.shape_name]

    @property
    def name(self) -> str:
        return f"{self.op}-{self.shape_name}" + (f"-K{self.levels}" if self.levels else "")

    @property
    def numel(self) -> int:
        """Elements of one [B, C, H, W] batch."""
        return math.prod(self.shape)

    @property
    def bytes_moved(self) -> int:
        """Minimum memory traffic: every input element read once and every output element written once."""
        n, k = self.numel, self.levels or 1
        elements = {
            "noise_inject": 2 * n,  # read x, write out (noise generated in registers)
            "noise_inject_levels": n + k * n,  # read x once, write K levels
            "score_norm": k * n,  # read eps_hat
            "reverse_step": 3 * n,  # read x, eps_hat; write out
            "vp_sde_step": 3 * n,
        }[self.op]
        return elements * FLOAT32_BYTES

    @property
    def copy_numel(self) -> int:
        """Size of the copy whose bandwidth this case is compared with: its largest tensor."""
        return self.numel * (self.levels or 1)

    def inputs(self, device: str | torch.device) -> dict:
        """Keyword arguments of the op (fixed seeds, so every implementation computes the same thing)."""
        g = torch.Generator().manual_seed(0)
        batch = self.shape[0]

        def randn(*shape):
            return torch.randn(*shape, generator=g).to(device)

        if self.op == "noise_inject":
            betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
            alphas_cumprod = torch.cumprod(1 - betas, 0).float()
            t = torch.randint(0, 1000, (batch,), generator=g)
            return dict(
                x=randn(*self.shape),
                t=t.to(device),
                alphas_cumprod=alphas_cumprod.to(device),
                seed=1234,
                sample_ids=torch.arange(batch).to(device),
                step=3,
            )
        if self.op == "noise_inject_levels":
            mean_coef = torch.linspace(0.99, 0.2, self.levels)
            return dict(
                x=randn(*self.shape),
                mean_coef=mean_coef.to(device),
                std=(1 - mean_coef**2).sqrt().to(device),
                seed=1234,
            )
        if self.op == "score_norm":
            return dict(
                eps_hat=randn(self.levels * batch, *self.shape[1:]),
                sigma=torch.linspace(0.05, 1.0, self.levels).to(device),
            )
        if self.op == "reverse_step":
            a = torch.rand(batch, generator=g) * 0.9 + 0.05
            return dict(
                x=randn(*self.shape),
                eps_hat=randn(*self.shape),
                a=a.to(device),
                a_next=(a + 0.04).to(device),
                eta=1.0,
                seed=1234,
                step=5,
            )
        if self.op == "vp_sde_step":
            return dict(
                x=randn(*self.shape),
                eps_hat=randn(*self.shape),
                t=(torch.rand(batch, generator=g) * 0.9 + 0.1).to(device),
                dt=1e-3,
                seed=1234,
                step=5,
            )
        raise ValueError(f"unknown op {self.op!r}")

    def implementations(self, inputs: dict) -> dict[str, Callable[[], object]]:
        """impl name → zero-argument callable running the op on `inputs`."""
        public = getattr(ssni_kernels, self.op)
        ref = getattr(reference, self.op)
        compiled = torch.compile(ref, dynamic=False)
        return {
            "ssni": lambda: public(**inputs),
            "eager": lambda: ref(**inputs),
            "compiled": lambda: compiled(**inputs),
        }


CASES = [
    Case("noise_inject", "cifar"),
    Case("noise_inject", "imagenet"),
    Case("noise_inject_levels", "cifar", LEVELS),
    Case("score_norm", "cifar", LEVELS),
    Case("score_norm", "imagenet", LEVELS),
    Case("reverse_step", "cifar"),
    Case("reverse_step", "imagenet"),
    Case("vp_sde_step", "cifar"),
    Case("vp_sde_step", "imagenet"),
]
