"""The real evaluation backend: defences built from one host purifier, attacks from `ssni.attacks`.

`ModelBackend` is what `ssni.eval.runner` runs (its `Backend` protocol) and what `ssni purify` uses: per method it
builds the defence (constant t*, a constant t of a sweep, SSNI-N, SSNI-L around the same host purifier) and runs
the attacks against it (`AdaptiveSSNI` for SSNI: t recomputed at every attack iteration).

Each method purifies with its own copy of the host (`SSNI.purifier`; same network and counter): SSNI-N's takes b
more steps without gradient, as the authors' code. A point of a constant-t sweep (constant@t) above the host's step
count n takes t − n more when the host visits every index (n = t*), so that every point of the sweep visits every
index from t − 1 down to 0 as the baseline does (t evaluations per image), never a strided walk. SSNI-L's min/max
groups are the preset's `linear_batch_eval` while evaluating and `linear_batch_attack` while attacking.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ssni.errors import SSNIUserError
from ssni.eval.loading import Models, build_purifier
from ssni.eval.methods import Method
from ssni.eval.presets import AttackSpec, Preset
from ssni.eval.runner import DefenceOutput
from ssni.validate import check_int

__all__ = ["ModelBackend", "recorded_t"]


def _runs(n: int, size: int) -> list[slice]:
    """Consecutive slices of at most `size` covering range(n)."""
    return [slice(s, s + size) for s in range(0, n, size)]


def _same(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a.cpu(), b.cpu()))


def recorded_t(t: Tensor) -> Tensor:
    """The t a record keeps: t [B] itself, or for a multi-stage host ([B, S]) the largest stage's t."""
    return t.max(dim=1).values if t.dim() == 2 else t


class ModelBackend:
    """Defences and attacks on the preset's models.

    network_batch: the most rows the diffusion network evaluates in one call outside the attacks' gradients
    (score norms and purification; None: the preset's batch size). Inputs with more samples than that go through
    the streaming engine (`ssni.purify.StreamingPurifier`, continuous batching at network_batch rows) when the host
    streams (every host but guided GDMP); GNS's vote runs stream together as draws. The results equal the chunked
    path's up to float rounding, since every sample's noise is keyed on (seed, sample id, noise word).
    """

    def __init__(self, preset: Preset, models: Models, calibration, tau: float | None, device: str, network_batch=None):
        from ssni import SSNI

        network_batch = check_int("network_batch", preset.batch_size if network_batch is None else network_batch, low=1)
        purifier = build_purifier(preset.purifier, models.diffusion).to(device)
        common = dict(bias=preset.bias, chunk_size=network_batch)
        ssni = {
            "ssni-n": SSNI(purifier, calibration, reweight="sigmoid", tau=tau, **common),
            "ssni-l": SSNI(purifier, calibration, reweight="linear", linear_batch=preset.linear_batch_eval, **common),
        }
        self._attach(preset, models, purifier, ssni, device, network_batch)

    @classmethod
    def from_defences(
        cls, preset: Preset, models: Models, purifier, ssni: dict, device: str, network_batch=None
    ) -> ModelBackend:
        """A backend on defences built by the caller (`ssni.evaluate`): `purifier` is the host at its constant t*,
        `ssni` maps method kinds ("ssni-n", "ssni-l", any of them or none) to SSNI defences around copies of it.
        The preset describes them (batch size, votes, SSNI-L's min/max groups)."""
        backend = cls.__new__(cls)
        backend._attach(preset, models, purifier, ssni, device, network_batch)
        return backend

    def _attach(self, preset: Preset, models: Models, purifier, ssni: dict, device: str, network_batch) -> None:
        self.preset = preset
        self.models = models
        self.device = device
        self.network_batch = check_int(
            "network_batch", preset.batch_size if network_batch is None else network_batch, low=1
        )
        self.votes = preset.purifier.votes
        self.purifier = purifier
        self.ssni = ssni
        self.scorer = next(iter(ssni.values()), None)  # the score norm is the same for every SSNI method
        self.hosts = {"constant": self.purifier, **{kind: s.purifier for kind, s in self.ssni.items()}}
        self.streams, self.engines = self._streams()
        self._sweep_hosts: dict[int, tuple] = {}  # constant t → (its host, its streaming engine or None)
        self._last_scores: tuple | None = None  # (seed, x, ids, e) of the last score norms, for reuse

    def _streams(self):
        """((score engine if SSNI, purification engines...), {method kind: its purification engine}) when the host
        streams (and SSNI scores with the host's own network), else (None, {})."""
        from ssni.purify import StreamingPurifier

        if not self.purifier.streamable or (self.scorer is not None and self.scorer.score_model is not None):
            return None, {}
        # t is always given to the purification engines (SSNI-L's batch min/max is the chunk's, as unstreamed)
        by_host = {}
        for host in self.hosts.values():
            by_host.setdefault(id(host), StreamingPurifier(host, self.network_batch))
        engines = {kind: by_host[id(host)] for kind, host in self.hosts.items()}
        scoring = () if self.scorer is None else (StreamingPurifier(self.scorer, self.network_batch),)
        return (*scoring, *by_host.values()), engines

    def host(self, method: Method):
        """The purifier `method` runs without gradient (module docstring): SSNI's own copy, the host itself, or
        for a constant t above the host's n when the host visits every index, a copy with t − n extra steps."""
        t_star, n = self.preset.purifier.stages[0]
        if method.t is None or method.t <= n or n < t_star:
            return self.hosts[method.kind]
        return self._sweep_point(method.t)[0]

    def _sweep_point(self, t: int) -> tuple:
        """(host, streaming engine or None) of the sweep point constant@t (made once; same network and counter)."""
        from ssni.purify import StreamingPurifier

        if t not in self._sweep_hosts:
            host = self.purifier.with_extra_steps(t - self.preset.purifier.stages[0][1])
            engine = StreamingPurifier(host, self.network_batch) if self.streams is not None else None
            self._sweep_hosts[t] = (host, engine)
        return self._sweep_hosts[t]

    def _engine(self, method: Method):
        """The streaming engine of `method`'s host."""
        host = self.host(method)
        return self.engines[method.kind] if host is self.hosts[method.kind] else self._sweep_point(method.t)[1]

    def _counters(self):
        sweep = [engine for _, engine in self._sweep_hosts.values() if engine is not None]
        engines = [s.stats for s in (*(self.streams or ()), *sweep)]
        return [self.purifier.counter, *(s.score_counter for s in self.ssni.values()), *engines]

    @property
    def network_calls(self) -> int:
        """Forward passes of the diffusion network so far (purification, score norms, attack gradients)."""
        return sum(c.network_calls for c in self._counters())

    @property
    def samples_evaluated(self) -> int:
        """Per-sample evaluations of the diffusion network so far."""
        return sum(c.samples_evaluated for c in self._counters())

    def streamed(self, x: Tensor) -> bool:
        """Whether x goes through the streaming engine: a streamed host and more rows than network_batch."""
        return self.streams is not None and x.shape[0] * self.votes > self.network_batch

    def scores(self, x: Tensor, *, seed: int, sample_ids: Tensor) -> Tensor:
        """The EPS score norm e [N] of every sample. It depends on the model, T', seed and id, not on the method, so
        the norms of the last call are reused when the same inputs come again (SSNI-N and SSNI-L on one clean
        chunk)."""
        last = self._last_scores
        if last is not None and last[0] == seed and _same(last[1], x) and _same(last[2], sample_ids):
            return last[3]
        if self.streams is not None and x.shape[0] > self.network_batch:
            e = self.streams[0].score_all(x, seed=seed, sample_ids=sample_ids)
        else:
            score, dev = self.scorer.scores, self.device
            runs = _runs(x.shape[0], self.preset.batch_size)
            e = torch.cat([score(x[r].to(dev), seed=seed, sample_ids=sample_ids[r].to(dev)) for r in runs])
        self._last_scores = (seed, x.detach().clone(), sample_ids.clone(), e)
        return e

    def forget_scores(self) -> None:
        """Drop the reused score norms (a benchmark timing one purification from scratch)."""
        self._last_scores = None

    def timesteps(self, method: Method, e: Tensor) -> Tensor:
        """`method`'s t for one chunk of score norms e [B] (SSNI-L's min/max take the chunk as its batch)."""
        if method.is_ssni:
            return self.ssni[method.kind].timesteps_from_scores(e).to(e.device)
        t = self.purifier.constant_t(e.shape[0], e.device)
        if method.t is not None:
            if t.dim() != 1:
                raise SSNIUserError(f"{method}: a constant-t sweep needs a single-stage purifier")
            t = torch.full_like(t, method.t)
        return t

    def method_timesteps(
        self, method: Method, x: Tensor, *, seed: int, sample_ids: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        """(t, e) for x [N]: SSNI's e for every sample and t per chunk of the preset's batch size; a constant t
        needs no score norm (e None)."""
        if not method.is_ssni:
            return self.timesteps(method, torch.empty(x.shape[0], device=x.device)), None
        e = self.scores(x, seed=seed, sample_ids=sample_ids).to(x.device)
        t = torch.cat([self.timesteps(method, e[r]) for r in _runs(x.shape[0], self.preset.batch_size)])
        return t, e

    def purify_draws(self, method: Method, x: Tensor, t: Tensor, *, seed: int, sample_ids: Tensor, draws) -> Tensor:
        """[R, N, ...]: `method`'s purifications of x [N] in [0, 1] (any device) at t, one per noise draw, on x's
        device; streamed when `streamed(x)`, else the method's host in runs of network_batch samples."""
        if self.streamed(x):
            return self._engine(method).purify_draws(x, t, seed=seed, sample_ids=sample_ids, draws=draws)
        dev, host = self.device, self.host(method)

        def one_draw(draw: int) -> Tensor:
            parts = [
                host.purify(x[r].to(dev), t[r].to(dev), seed=seed, sample_ids=sample_ids[r].to(dev), draw=draw)
                for r in _runs(x.shape[0], self.network_batch)
            ]
            return torch.cat(parts).to(x.device)

        return torch.stack([one_draw(d) for d in draws])

    def purify(self, method: Method, x: Tensor, *, seed: int, sample_ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(x̂, t, e) for x [N] in [0, 1] on any device (results on x's device): the defence's own draw 0."""
        t, e = self.method_timesteps(method, x, seed=seed, sample_ids=sample_ids)
        return self.purify_draws(method, x, t, seed=seed, sample_ids=sample_ids, draws=(0,))[0], t, e

    def classify(self, x: Tensor) -> Tensor:
        """Predicted labels [N] on the CPU, in runs of the preset's batch size."""
        return self.logits(x).argmax(dim=1)

    def logits(self, x: Tensor) -> Tensor:
        """The classifier's logits [N, K] on the CPU, in runs of the preset's batch size."""
        runs = _runs(x.shape[0], self.preset.batch_size)
        return torch.cat([self.models.classifier(x[r].to(self.device)).cpu() for r in runs])

    @property
    def scores_per_vote(self) -> bool:
        """Whether SSNI recomputes its score norm for every vote (the preset's `scores_per_vote`, with votes)."""
        return self.votes > 1 and self.preset.purifier.scores_per_vote

    @torch.no_grad()
    def evaluate(self, method: Method, x: Tensor, *, seed: int, sample_ids: Tensor) -> DefenceOutput:
        """Purify and classify; with votes, the majority of the vote runs (records keep vote 0's t and e, the
        defence's own draw, which also runs when the score norm is shared)."""
        from ssni import majority_vote
        from ssni.purify.gns import vote_draw, vote_score_seed

        x, ids = x.to(self.device), sample_ids.to(self.device)
        t, e = self.method_timesteps(method, x, seed=seed, sample_ids=ids)
        draws = [vote_draw(0, self.votes, r) for r in range(self.votes)]
        if method.is_ssni and self.scores_per_vote:  # fresh EPS noise for every vote, as the authors' evaluation
            vote_t = [t] + [
                self.method_timesteps(method, x, seed=vote_score_seed(seed, d), sample_ids=ids)[0] for d in draws[1:]
            ]
            purified = torch.cat(
                [
                    self.purify_draws(method, x, t_r, seed=seed, sample_ids=ids, draws=(d,))
                    for t_r, d in zip(vote_t, draws)
                ]
            )
        else:
            purified = self.purify_draws(method, x, t, seed=seed, sample_ids=ids, draws=draws)
        if self.votes > 1:
            pred = majority_vote([self.logits(p) for p in purified])[1]
        else:
            pred = self.classify(purified[0])
        return DefenceOutput(pred.cpu(), recorded_t(t).cpu(), None if e is None else e.float().cpu())

    def defended(self, method: Method, seed: int, bpda_schedule: str = "defence"):
        """The `DefendedModel` attacks see for `method` (adaptive for SSNI; SSNI-L with the attack's min/max
        groups); bpda_schedule: what a BPDA forward purifies with."""
        from ssni import GNSDefense
        from ssni.attacks import AdaptiveSSNI, PurifiedClassifier

        defence = self.host(method)
        if method.is_ssni:
            defence = self.ssni[method.kind]
            if method.kind == "ssni-l":
                defence = defence.with_linear_batch(self.preset.linear_batch_attack)
        predict = None
        if self.votes > 1:  # success is judged on the majority vote, as the defence predicts
            vote = GNSDefense(defence, self.models.classifier, self.votes, scores_per_vote=self.scores_per_vote)

            def predict(x_in, *, sample_ids):
                t_in = None if method.t is None else torch.full((x_in.shape[0],), method.t, device=x_in.device)
                counts, _ = vote.votes(x_in, t_in, seed=seed, sample_ids=sample_ids)
                return counts.float()

        if method.is_ssni:
            return AdaptiveSSNI(defence, self.models.classifier, seed, predict=predict, bpda_schedule=bpda_schedule)
        # an int, not a per-batch tensor: attacks re-batch (AutoAttack's second stage runs on a subset)
        return PurifiedClassifier(
            defence, self.models.classifier, seed, t=method.t, predict=predict, bpda_schedule=bpda_schedule
        )

    def attack(self, method: Method, attack: AttackSpec, x, y, *, seed: int, sample_ids, on_iteration=None) -> Tensor:
        """Adversarial examples [B, ...] (CPU) of `attack` against `method`'s defence."""
        from ssni.eval.attacks import run_attack

        x, y, ids = x.to(self.device), y.to(self.device), sample_ids.to(self.device)
        model = self.defended(method, seed, attack.bpda_schedule or "defence")
        result = run_attack(model, attack, x, y, seed=seed, sample_ids=ids, on_iteration=on_iteration)
        return result.x_adv.detach().cpu()
