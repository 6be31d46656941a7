"""The discrete DDPM/DDIM walk (spec §5), shared by the DDPM/DDIM host, GNS and GDMP, with a timestep per sample.

Per sample with integer t and a step count n:

    x_t = sqrt(ᾱ[i0])·x_s + sqrt(1 − ᾱ[i0])·ε,   i0 = max(t − 1, 0)
    walk the distinct entries of step_sequence(t, n) from the top down, each step one `reverse_step`:
        x̂0 = (x − sqrt(1−a)·ε̂(x, i))/sqrt(a),  c1 = η·sqrt((1 − a/a')(1 − a')/(1 − a)),  c2 = sqrt(1 − a' − c1²)
        x  = sqrt(a')·x̂0 + c1·z + c2·ε̂          (a = ᾱ[i], a' = ᾱ[next], ᾱ[−1] = 1)

The plan's table holds (label i, coef_a = a, coef_b = a') per step. num_steps None means every index once (n ≥ t;
the defence), so a sample costs max(t, 1) network evaluations and all samples at a global index share it
(active-only, see walks.py). The network is called with the integer index i as a float32 label (the "index"
convention of `network_labels`). t = 0 behaves as t = 1 (one step from index 0), as the spec's clamping implies.
Hosts whose sampler differs from this step (GDMP's own) override `apply` and keep this plan.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

import ssni_kernels
from ssni.models.interface import network_labels
from ssni.purify.base import Purifier, Stage, noise_word
from ssni.purify.walks import Walks
from ssni.schedules import NUM_TRAIN_STEPS, alphas_cumprod_padded, ddpm_alphas_cumprod, effective_indices
from ssni.validate import check_int

__all__ = ["DiscretePurifier", "DDPMPurifier", "inject", "resolve_alphas_cumprod"]


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
        x_s, i0, alphas_cumprod.to(x_s.device), seed=seed, sample_ids=sample_ids, step=noise_word(0, stage, draw)
    )


def _check_t_star(t_star) -> int:
    return check_int("t_star", t_star, low=1, high=NUM_TRAIN_STEPS)


def _check_steps(name: str, n) -> int | None:
    """None (every index once) or a step count >= 1."""
    return check_int(name, n, low=1, optional=True)


class DiscretePurifier(Purifier):
    """The discrete walk of §5 (plan and apply); subclasses say which stages run (`t_star`, `stages`).

    eta: 1.0 "ddpm", 0.0 "ddim"; alphas_cumprod: ᾱ [T] (default §1); inject_offset: 1 noises at index t instead
    of t − 1 (GDMP's §10 quirk); index_shift: b shifts every index of the reverse walk up by b while noising at
    t − 1 (the §10 quirk of the authors' SSNI-L code; set through `with_index_shift`).
    """

    inject_offset = 0
    index_shift = 0

    def __init__(
        self,
        model: nn.Module,
        *,
        eta: float = 1.0,
        alphas_cumprod: torch.Tensor | None = None,
        grad_checkpoint: bool = True,
        resolution: int | None = None,
    ):
        super().__init__(model, grad_checkpoint, resolution)
        if not 0.0 <= float(eta) <= 1.0:
            raise ValueError(f"eta must be in [0, 1], got {eta!r}")
        self.eta = float(eta)
        # float64 and kept off the module's buffers so that model.half() cannot round the schedule.
        self.alphas_cumprod = resolve_alphas_cumprod(alphas_cumprod)
        self._padded = alphas_cumprod_padded(self.alphas_cumprod)

    @property
    def num_train_steps(self) -> int:
        return self.alphas_cumprod.shape[0]

    def with_index_shift(self, shift: int) -> DiscretePurifier:
        """A shallow copy (same network, same counter) whose reverse walks run `shift` indices higher (see `plan`)."""
        check_int("index shift", shift, low=0)
        shifted = copy.copy(self)
        shifted.index_shift = shift
        return shifted

    def plan(self, x_s, t, sample_ids, *, seed, draw, stage, num_steps) -> Walks:
        """Noise at max(t − 1, 0) (+ inject_offset), then the distinct indices i of step_sequence(t, num_steps),
        each shifted up by index_shift, as (label i, ᾱ[i], ᾱ[next]) per step; the last step goes to ᾱ_{−1} = 1.

        With index_shift b this is the authors' SSNI-L walk exactly: their step list for t with b added to every
        entry, from t − 1 + b down to ceil(t/n) − 1 + b, then straight to x̂0; t (or n) steps, not t + b.
        """
        x = inject(
            x_s, t, self.alphas_cumprod, seed=seed, sample_ids=sample_ids, draw=draw, stage=stage,
            offset=self.inject_offset,
        )  # fmt: skip
        idx, lengths = effective_indices(t, _check_steps("num_steps", num_steps))
        idx = idx + self.index_shift
        if idx.numel() and int(idx.max()) >= self.num_train_steps:
            raise ValueError(
                f"t − 1 + index shift must be < {self.num_train_steps}, got {int(idx.max())} "
                f"(t up to {int(t.max())}, shift {self.index_shift})"
            )
        nxt = torch.cat([torch.full_like(idx[:, :1], -1), idx[:, :-1]], dim=1)
        padded = self._padded.to(idx.device)
        table = torch.stack([network_labels(idx, "index").to(torch.float64), padded[idx + 1], padded[nxt + 1]], -1)
        return Walks(x, table, lengths, noise_word(0, stage, draw))

    def apply(self, x, eps, coef_a, coef_b, words, sample_ids, *, seed):
        return ssni_kernels.reverse_step(
            x, eps, coef_a, coef_b, eta=self.eta, seed=seed, sample_ids=sample_ids, step=words
        )


class DDPMPurifier(DiscretePurifier):
    """Discrete DDPM (η = 1) / DDIM (η = 0) purification with per-sample t.

    model: ε-network called as model(x, i) with the integer index i (float32); t_star: the constant t* of the
    baseline; num_steps: defence step count (None = every index once); grad_num_steps: the surrogate step count
    of `purify_grad` (None = num_steps); eta, alphas_cumprod, grad_checkpoint, resolution: as DiscretePurifier
    and Purifier.
    """

    def __init__(
        self,
        model: nn.Module,
        t_star: int = 100,
        num_steps: int | None = None,
        eta: float = 1.0,
        grad_num_steps: int | None = None,
        alphas_cumprod: torch.Tensor | None = None,
        grad_checkpoint: bool = True,
        resolution: int | None = None,
    ):
        super().__init__(
            model, eta=eta, alphas_cumprod=alphas_cumprod, grad_checkpoint=grad_checkpoint, resolution=resolution
        )
        self.t_star = _check_t_star(t_star)
        self.num_steps = _check_steps("num_steps", num_steps)
        self.grad_num_steps = _check_steps("grad_num_steps", grad_num_steps)

    def stages(self, *, surrogate: bool, num_steps=None) -> tuple[Stage, ...]:
        if num_steps is None:
            num_steps = self.grad_num_steps if surrogate and self.grad_num_steps is not None else self.num_steps
        return (Stage(None, _check_steps("num_steps", num_steps)),)
