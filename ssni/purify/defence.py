"""SSNI: wrap any host purifier so every sample gets its own t from its score norm (spec §2–§4).

    e = eps_score_norm(score_model, x)                 # once per input, before purification, no gradient
    t = sigmoid_t(e, μ, τ, t*, b)    (SSNI-N)   or   linear_t(e, e_min, e_max, t*, b)    (SSNI-L)
        (= round_t(continuous_timesteps(e)); the score-aware attack differentiates the continuous t and e)
    x̂ = host.purify(x, t)                              # per-stage t for multi-stage hosts (same ratio)

Step counts, as the authors' code: SSNI-N's purifications without gradient take b more steps per stage than the
host's (n + b; `Purifier.with_extra_steps`), so that with n = t* a sample with t up to t* − 1 + b still visits
every index; its differentiable surrogate keeps the host's n. SSNI-L keeps the host's n everywhere.

SSNI-L's e_min/e_max: "reference+batch" (the spec: reference set together with the current batch, so a sample's
t depends on the batch it is in) or "reference" (reference set only; batch invariant; norms outside are clamped).
With "reference+batch", `linear_batch` k takes the batch in groups of k consecutive samples, each group with its
own min/max (the authors' code attacks CIFAR-10 in batches of 16 per process and 1 image on ImageNet, and
evaluates in batches of 32); None takes the whole batch as given.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ssni.calibration import Calibration
from ssni.models.interface import CallCounter
from ssni.purify.base import Purifier
from ssni.reweight import linear_t_continuous, round_t, sigmoid_t_continuous
from ssni.score import eps_score_norm
from ssni.validate import check_choice, check_images, check_int, check_sample_ids, check_seed

__all__ = ["SSNI"]

REWEIGHTS = ("sigmoid", "linear")
LINEAR_MINMAX = ("reference+batch", "reference")


class SSNI(nn.Module):
    """Sample-specific score-aware noise injection around `purifier`.

    purifier: any host (DDPMPurifier, SDEPurifier, GNSPurifier, GDMPPurifier); calibration: clean statistics
    (§3); reweight: "sigmoid" (SSNI-N) or "linear" (SSNI-L); tau: SSNI-N temperature (None: calibration.tau);
    bias: b; score_model: the ε-network for the norm (None: the purifier's own); num_levels: T' (None: the
    calibration's; must match it); chunk_size: most samples per score-network call; model_id: if given, checked
    against the calibration; linear_batch: SSNI-L's min/max group size (module docstring); reference_linear_shift:
    the §10 quirk of the authors' SSNI-L code (reverse walk shifted up by b, noise still at t − 1; hosts with a
    discrete walk only; off by default). `purifier` is then a copy of the host (same network and counter): with
    b extra steps for SSNI-N, shifted for the quirk.
    Counters: `score_counter` (the norm) and the purifier's `counter`; `network_calls`/`samples_evaluated` sum them.
    """

    def __init__(
        self,
        purifier: Purifier,
        calibration: Calibration,
        reweight: str = "sigmoid",
        tau: float | None = None,
        bias: int = 5,
        score_model: nn.Module | None = None,
        linear_minmax: str = "reference+batch",
        num_levels: int | None = None,
        chunk_size: int | None = None,
        model_id: str | None = None,
        linear_batch: int | None = None,
        reference_linear_shift: bool = False,
    ):
        super().__init__()
        if not isinstance(purifier, Purifier):
            raise TypeError(f"purifier must be a ssni Purifier, got {type(purifier).__name__}")
        if not isinstance(calibration, Calibration):
            raise TypeError(f"calibration must be a ssni.Calibration, got {type(calibration).__name__}")
        check_choice("reweight", reweight, REWEIGHTS)
        check_choice("linear_minmax", linear_minmax, LINEAR_MINMAX)
        check_int("bias", bias, low=0)
        tau = calibration.tau if tau is None else float(tau)
        if reweight == "sigmoid" and not tau > 0:
            raise ValueError(f"tau must be > 0, got {tau!r}")
        check_int("linear_batch", linear_batch, low=1, optional=True)
        calibration.check(model_id=model_id, num_levels=num_levels)
        stars = purifier.t_star if isinstance(purifier.t_star, tuple) else (purifier.t_star,)
        if max(stars) - 1 + bias > 1000:
            raise ValueError(f"t_star − 1 + bias must be <= 1000, got {max(stars) - 1 + bias}")
        if reference_linear_shift:
            if reweight != "linear":
                raise ValueError("reference_linear_shift applies to reweight='linear' only")
            if max(stars) - 2 + 2 * bias > 999:  # the shifted walk's top index is t − 1 + b with t <= t* − 1 + b
                raise ValueError(f"t_star − 2 + 2·bias must be <= 999 with reference_linear_shift, got "
                                 f"{max(stars) - 2 + 2 * bias}")  # fmt: skip
            purifier = purifier.with_index_shift(bias)
        if reweight == "sigmoid":
            purifier = purifier.with_extra_steps(bias)
        self.purifier = purifier
        self.calibration = calibration
        self.reweight = reweight
        self.tau = tau
        self.bias = bias
        self.score_model = score_model
        self.linear_minmax = linear_minmax
        self.num_levels = calibration.num_levels
        self.chunk_size = chunk_size
        self.linear_batch = linear_batch
        self.reference_linear_shift = reference_linear_shift
        self.score_counter = CallCounter()

    # ------------------------------------------------------------------------------------------- counters
    @property
    def t_star(self):
        return self.purifier.t_star

    @property
    def host(self) -> Purifier:
        """The host as given (a copy without SSNI-N's b extra steps or the SSNI-L index shift; same network and
        counter): the constant-t* baseline of this defence."""
        host = self.purifier.with_extra_steps(0)
        return host.with_index_shift(0) if self.reference_linear_shift else host

    @property
    def network_calls(self) -> int:
        return self.score_counter.network_calls + self.purifier.network_calls

    @property
    def samples_evaluated(self) -> int:
        return self.score_counter.samples_evaluated + self.purifier.samples_evaluated

    def reset(self) -> None:
        self.score_counter.reset()
        self.purifier.reset()

    # ------------------------------------------------------------------------------------------- t
    def scores(
        self, x: torch.Tensor, *, seed: int, sample_ids=None, grad: bool = False, antithetic: bool = False
    ) -> torch.Tensor:
        """The EPS score norm e(x) [B], checked against the calibration's resolution. grad, antithetic: the
        score-aware attack's options of `eps_score_norm` (differentiable in x; negated level noise); the defence
        uses neither."""
        check_images(x)
        self.calibration.check(resolution=tuple(x.shape[-2:]))
        model = self.purifier.model if self.score_model is None else self.score_model
        return eps_score_norm(
            model,
            x,
            self.num_levels,
            seed=seed,
            sample_ids=sample_ids,
            chunk_size=self.chunk_size,
            counter=self.score_counter,
            grad=grad,
            antithetic=antithetic,
        )

    def continuous_timesteps(self, e: torch.Tensor) -> torch.Tensor:
        """§4 before rounding: float64 [B] (or [B, S]), differentiable in e; SSNI-L's batch min/max are constants."""
        cal = self.calibration
        if self.reweight == "sigmoid":
            return sigmoid_t_continuous(e, cal.mean, self.tau, self.t_star, self.bias)
        if self.linear_minmax == "reference":
            return linear_t_continuous(e, cal.min, cal.max, self.t_star, self.bias)
        groups = e.split(self.linear_batch or max(e.shape[0], 1))
        return torch.cat(
            [
                linear_t_continuous(
                    g,
                    min(cal.min, float(g.detach().min())),
                    max(cal.max, float(g.detach().max())),
                    self.t_star,
                    self.bias,
                )
                for g in groups
            ]
        )

    def timesteps_from_scores(self, e: torch.Tensor) -> torch.Tensor:
        """§4: t (int64 [B], or [B, S] for a multi-stage host) from score norms e [B] (`sigmoid_t` / `linear_t`)."""
        return round_t(self.continuous_timesteps(e.detach()))

    def with_linear_batch(self, linear_batch: int | None) -> SSNI:
        """A shallow copy (same host, calibration and counters) with another SSNI-L min/max group size."""
        check_int("linear_batch", linear_batch, low=1, optional=True)
        copied = copy.copy(self)
        copied.linear_batch = linear_batch
        return copied

    def timesteps(self, x: torch.Tensor, *, seed: int, sample_ids=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(t, e): the per-sample timesteps and the score norms they come from."""
        e = self.scores(x, seed=seed, sample_ids=sample_ids)
        return self.timesteps_from_scores(e).to(x.device), e

    # ------------------------------------------------------------------------------------------- purify
    @torch.no_grad()
    def purify(
        self,
        x: torch.Tensor,
        t: torch.Tensor | None = None,
        *,
        seed: int,
        sample_ids=None,
        draw: int = 0,
        surrogate: bool = False,
        num_steps=None,
    ) -> torch.Tensor:
        """Score, reweight, purify (no gradient, active-only). A given t (e.g. computed once by an attack or a
        vote) skips the score norm. surrogate, num_steps: as `Purifier.purify` (BPDA's attack schedule)."""
        check_images(x)
        check_seed(seed)
        ids = check_sample_ids(sample_ids, x.shape[0], x.device)
        if t is None:
            t, _ = self.timesteps(x, seed=seed, sample_ids=ids)
        return self.purifier.purify(
            x, t, seed=seed, sample_ids=ids, draw=draw, surrogate=surrogate, num_steps=num_steps
        )

    def purify_grad(
        self,
        x: torch.Tensor,
        t: torch.Tensor | None = None,
        *,
        seed: int,
        sample_ids=None,
        num_steps=None,
        draw: int = 0,
    ) -> torch.Tensor:
        """The differentiable path with the given t (the adaptive attack recomputes t without gradient each
        iteration and passes it); t None computes it here from x.detach(). No gradient through e or rounding."""
        if t is None:
            with torch.no_grad():
                t, _ = self.timesteps(x.detach(), seed=seed, sample_ids=sample_ids)
        return self.purifier.purify_grad(x, t, seed=seed, sample_ids=sample_ids, num_steps=num_steps, draw=draw)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor | None = None, *, seed: int, sample_ids=None, draw: int = 0
    ) -> torch.Tensor:
        return self.purify(x, t, seed=seed, sample_ids=sample_ids, draw=draw)

    # classifier ∘ SSNI as a plain nn.Module; t recomputed from each call's input (the adaptive protocol)
    as_classifier = Purifier.as_classifier
