"""The discrete DDPM/DDIM purifier (spec §5), the host of SSNI's experiments, with a timestep per sample.

Per sample with integer t and a step count n:

    x_t = sqrt(ᾱ[i0])·x_s + sqrt(1 − ᾱ[i0])·ε,   i0 = max(t − 1, 0)
    walk the distinct entries of step_sequence(t, n) from the top down, each step one `reverse_step`:
        x̂0 = (x − sqrt(1−a)·ε̂(x, i))/sqrt(a),  c1 = η·sqrt((1 − a/a')(1 − a')/(1 − a)),  c2 = sqrt(1 − a' − c1²)
        x  = sqrt(a')·x̂0 + c1·z + c2·ε̂          (a = ᾱ[i], a' = ᾱ[next], ᾱ[−1] = 1)

num_steps None means every index once (n ≥ t; the defence), so a sample costs max(t, 1) network evaluations and
all samples at a global index share it (active-only, see engine.py). The network is called with the integer
index i as a float32 label. t = 0 behaves as t = 1 (one step from index 0), as the spec's clamping implies.
"""

from __future__ import annotations

import torch
from torch import nn

import ssni_kernels
from ssni.models.interface import LABEL_DTYPE
from ssni.purify.base import Purifier, noise_step
from ssni.purify.engine import run_active
from ssni.schedules import NUM_TRAIN_STEPS, alphas_cumprod_padded, ddpm_alphas_cumprod, effective_indices

__all__ = ["DDPMPurifier", "inject", "resolve_alphas_cumprod"]


def _check_steps(name: str, n) -> None:
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"{name} must be None (every index once) or an int >= 1, got {n!r}")


def _check_t_star(t_star) -> None:
    if isinstance(t_star, bool) or not isinstance(t_star, int) or not 1 <= t_star <= NUM_TRAIN_STEPS:
        raise ValueError(f"t_star must be an int in [1, {NUM_TRAIN_STEPS}], got {t_star!r}")


def resolve_alphas_cumprod(alphas_cumprod: torch.Tensor | None) -> torch.Tensor:
    """The §1 schedule (None) or a given ᾱ [T], validated, as float64 on the CPU."""
    if alphas_cumprod is None:
        return ddpm_alphas_cumprod()
    ac = torch.as_tensor(alphas_cumprod).detach().to("cpu", torch.float64)
    if ac.dim() != 1 or ac.numel() == 0 or not ((ac > 0) & (ac <= 1)).all():
        raise ValueError("alphas_cumprod must be a non-empty 1-D tensor with values in (0, 1]")
    return ac


def inject(x_s, t, alphas_cumprod, *, seed, sample_ids, draw, stage: int = 0, offset: int = 0) -> torch.Tensor:
    """One-shot noising of every host: x_t at index max(t − 1, 0) + offset, noise key (0, stage, draw).

    x_s: model space [B, ...]; t: int64 [B]; alphas_cumprod: float64 [T]; offset 1 is GDMP's §10 quirk.
    """
    i0 = (t - 1).clamp_min(0) + offset
    if int(i0.max()) >= alphas_cumprod.shape[0]:
        raise ValueError(f"t must be <= {alphas_cumprod.shape[0] - offset}, got {int(t.max())}")
    return ssni_kernels.noise_inject(
        x_s, i0, alphas_cumprod.to(x_s.device), seed=seed, sample_ids=sample_ids, step=noise_step(0, stage, draw)
    )


class DDPMPurifier(Purifier):
    """Discrete DDPM (η = 1) / DDIM (η = 0) purification with per-sample t.

    model: ε-network called as model(x, i) with the integer index i (float32); t_star: the constant t* of the
    baseline; num_steps: defence step count (None = every index once); grad_num_steps: the surrogate step count
    of `purify_grad` (None = num_steps); eta: 1.0 "ddpm", 0.0 "ddim"; alphas_cumprod: ᾱ [T] (default §1).
    `purify(..., reverse_shift=b)` runs the reverse walk from t − 1 + b while noising at t − 1: the §10 quirk
    of the authors' SSNI-L code (off by default).
    """

    def __init__(
        self,
        model: nn.Module,
        t_star: int = 100,
        num_steps: int | None = None,
        eta: float = 1.0,
        grad_num_steps: int | None = None,
        alphas_cumprod: torch.Tensor | None = None,
        checkpoint: bool = True,
    ):
        super().__init__(model, checkpoint)
        _check_t_star(t_star)
        _check_steps("num_steps", num_steps)
        _check_steps("grad_num_steps", grad_num_steps)
        if not 0.0 <= float(eta) <= 1.0:
            raise ValueError(f"eta must be in [0, 1], got {eta!r}")
        ac = resolve_alphas_cumprod(alphas_cumprod)
        self.t_star = t_star
        self.num_steps = num_steps
        self.grad_num_steps = grad_num_steps
        self.eta = float(eta)
        # float64 and kept off the module's buffers so that model.half() cannot round the schedule.
        self.alphas_cumprod = ac
        self._padded = alphas_cumprod_padded(ac)

    @property
    def num_train_steps(self) -> int:
        return self.alphas_cumprod.shape[0]

    def _purify(self, x_s, t, *, seed, sample_ids, draw, grad, num_steps, reverse_shift: int = 0):
        if num_steps is None:
            num_steps = self.grad_num_steps if grad and self.grad_num_steps is not None else self.num_steps
        _check_steps("num_steps", num_steps)
        x = inject(x_s, t, self.alphas_cumprod, seed=seed, sample_ids=sample_ids, draw=draw)
        if isinstance(reverse_shift, bool) or not isinstance(reverse_shift, int) or reverse_shift < 0:
            raise ValueError(f"reverse_shift must be an int >= 0, got {reverse_shift!r}")
        t_rev = (t + reverse_shift).clamp_max(self.num_train_steps)
        return self.reverse(x, t_rev, num_steps=num_steps, seed=seed, sample_ids=sample_ids, draw=draw, grad=grad)

    def reverse(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        *,
        num_steps: int | None,
        seed: int,
        sample_ids: torch.Tensor,
        draw: int,
        grad: bool,
        stage: int = 0,
        guidance=None,
    ) -> torch.Tensor:
        """The reverse walk of x (model space, already noised) over step_sequence(t, num_steps), active-only.

        Step p of a sample uses the noise key (p, stage, draw). `guidance(x, p, rows, i, a, a_next)`, if given,
        returns a term added to the step's output (the posterior mean shift of GDMP).
        """
        if int(t.max()) > self.num_train_steps:
            raise ValueError(f"t must be <= {self.num_train_steps}, got {int(t.max())}")
        idx, lengths = effective_indices(t, num_steps)
        padded = self._padded.to(x.device)

        def step(xk: torch.Tensor, p: int, rows: torch.Tensor) -> torch.Tensor:
            i = idx[rows, p]
            nxt = idx[rows, p - 1] if p > 0 else torch.full_like(i, -1)
            a, a_next = padded[i + 1], padded[nxt + 1]
            eps = self.model(xk, i.to(LABEL_DTYPE))
            out = ssni_kernels.reverse_step(
                xk,
                eps,
                a,
                a_next,
                eta=self.eta,
                seed=seed,
                sample_ids=sample_ids[rows],
                step=noise_step(p, stage, draw),
            )
            if guidance is not None:
                out = out + guidance(xk, p, rows, i, a, a_next)
            return out

        return run_active(x, lengths, step, counter=self.counter, grad=grad, checkpoint=self.checkpoint)
