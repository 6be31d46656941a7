"""Streaming purification with continuous batching: the network always runs at the batch size the device wants.

Work items
----------
A sample flows through at most two phases, each a list of work items that need one network evaluation each:

- score (SSNI only, spec §2): K independent items, level k = 0..K−1 with input m(t_k)·x_s + σ(t_k)·z_k and the
  label of `ssni.score.score_levels`. When all K are back, `score_norm` gives e(x) and the reweighting (§4)
  gives the sample's t.
- purify: for each requested draw, the host's stages in turn (one for DDPM/DDIM and SDE; GNS's stages; GDMP's
  unguided repeats), each the host's own plan (`Purifier.plan`: the one-shot noising and the sample's walk of
  L steps), run one step per engine round, p = L − 1 … 0. A finished stage is planned into the next from its
  output.

Continuous batching
-------------------
The engine holds `batch_size` slots (`slots.py`). Every round it admits ready work into the free slots (score
items first, then the pending walks, longest first so that the drain at the end is short), evaluates the
network ONCE on all occupied slots (each row with its own label), applies the walks' steps in one `host.apply`
call (each row with its own coefficients and noise word), and retires rows whose work is done; new work takes
the freed slots in the next round. The network therefore runs at `batch_size` rows whenever enough work is
queued; only the final drain runs smaller.

Why results equal the plain purifiers
-------------------------------------
The plans and the step are the hosts' own (`plan`, `apply`, the same functions `Purifier.purify` runs with
`ssni.purify.walks.run_active`), and all randomness comes from the ops' Philox stream keyed on (seed, sample id,
noise word), the one layout of `ssni.purify.base`: a row's result never depends on its slot, its round or its
neighbours, only on (seed, id, t, draw). The stream gives the plain purifiers' output to fp32 rounding (the
network's arithmetic may differ with the batch size) for any input order and batch size.

On GPU: `cuda_graph=True` captures the network at the full batch, `compile=<mode>` wraps it in `torch.compile`,
`network_dtype=torch.float16/bfloat16` runs it under autocast (then results follow that precision, not the fp32
purifier), and CPU input chunks are copied through pinned memory. The state between steps stays in the input
dtype. A reduced network_dtype is refused around SSNI: the score norm's smallest levels have σ(0.001) ≈ 0.0105,
below bf16's spacing near 1 (7.8e-3), and they dominate e(x) (docs/algorithm.md §2); stream `score_all` at full
precision and give t to a reduced-precision engine around the host instead.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import torch

import ssni_kernels
from ssni.models.interface import as_eps_model, check_time_labels
from ssni.purify.base import INDEX_LIMIT, noise_word
from ssni.purify.defence import SSNI
from ssni.purify.stream.network import COMPILE_MODES, NETWORK_DTYPES, Network
from ssni.purify.stream.slots import SCORE, WALK, Row, Slots
from ssni.score import score_levels
from ssni.validate import check_images, check_int, check_sample_ids, check_seed, check_timesteps, check_unique_ids

__all__ = ["StreamingPurifier", "StreamStats"]

Chunk = tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]


@dataclass
class StreamStats:
    """Counters since the last reset(): network forward passes and per-row evaluations (score + purify)."""

    batch_size: int
    network_calls: int = 0
    samples_evaluated: int = 0
    score_evaluations: int = 0
    purify_evaluations: int = 0
    padded_rows: int = 0  # rows computed only to keep the shape static (CUDA graphs)

    @property
    def fill_ratio(self) -> float:
        """Occupied rows per network call over the target batch size (1.0: every call at the full batch)."""
        return self.samples_evaluated / (self.network_calls * self.batch_size) if self.network_calls else 0.0

    def reset(self) -> None:
        self.network_calls = self.samples_evaluated = self.score_evaluations = 0
        self.purify_evaluations = self.padded_rows = 0


class StreamingPurifier:
    """Continuous-batching purification around any host that streams (DDPM/DDIM, SDE, GNS, unguided GDMP), or SSNI
    over one.

    purifier: the plain purifier (or SSNI) whose results the stream reproduces; batch_size: occupied rows per
    network call (the target); network_dtype: None (the input dtype) or torch.float16/bfloat16 (autocast; a plain
    host only: refused around SSNI, whose score levels need full precision);
    compile: None or a torch.compile mode for the network; cuda_graph: capture the network over the full batch
    (CUDA only); pin_memory: copy CPU chunks to a CUDA device through pinned memory.
    `stats` (StreamStats) counts network calls, rows evaluated and the fill ratio; the purifier's own counters
    are left untouched.
    A host with `resolution` R walks at R×R: inputs are resized to it and the results back, as the plain purifier
    does. The score norm runs at the input's size (as `SSNI.scores`), so when that differs from R the slots
    cannot hold both phases: then stream `score_all` first and pass t.
    """

    def __init__(
        self,
        purifier,
        batch_size: int = 64,
        *,
        network_dtype: torch.dtype | None = None,
        compile: str | None = None,
        cuda_graph: bool = False,
        pin_memory: bool = True,
    ):
        check_int("batch_size", batch_size, low=1)
        if network_dtype is not None and network_dtype not in NETWORK_DTYPES:
            raise ValueError(f"network_dtype must be None, torch.float16 or torch.bfloat16, got {network_dtype!r}")
        if compile is not None and compile not in COMPILE_MODES:
            raise ValueError(f"compile must be None or one of {COMPILE_MODES}, got {compile!r}")
        self.ssni = purifier if isinstance(purifier, SSNI) else None
        if self.ssni is not None and network_dtype is not None:
            raise ValueError(
                f"network_dtype={network_dtype} would run SSNI's score norm in reduced precision: its smallest EPS "
                "level has σ(0.001) ≈ 0.0105, below bfloat16's spacing near 1 (7.8e-3), and those levels dominate "
                "e(x). Stream score_all with network_dtype=None, then pass t to a StreamingPurifier around the host "
                "(ssni.purifier) with the reduced network_dtype"
            )
        host = purifier.purifier if self.ssni is not None else purifier
        if not host.streamable:
            raise ValueError(f"{type(host).__name__} with these settings runs in batch execution only (guidance)")
        score_model = None if self.ssni is None else self.ssni.score_model
        if score_model is not None and as_eps_model(score_model).net is not host.model.net:
            raise ValueError(
                "StreamingPurifier runs one network for both phases; SSNI with a separate score_model is not "
                "streamed (use SSNI.purify, or score_model=None)"
            )
        device = next(iter(host.model.parameters()), torch.empty(0)).device
        if cuda_graph and device.type != "cuda":
            raise ValueError(f"cuda_graph needs the model on a CUDA device, it is on {device}")
        self.host = host
        self.device = device
        self.batch_size = batch_size
        self.pin_memory = pin_memory
        self.network = Network(host.model, dtype=network_dtype, compile_mode=compile, cuda_graph=cuda_graph)
        self.stats = StreamStats(batch_size)
        self.slots: Slots | None = None  # kept across runs so that a captured CUDA graph stays valid

    @property
    def purifier(self):
        """The host purifier."""
        return self.host

    def reset(self) -> None:
        self.stats.reset()

    # ----------------------------------------------------------------------------------------------- public
    def purify_stream(
        self, chunks: Iterable[Chunk], *, seed: int, draw: int = 0, with_t: bool = False
    ) -> Iterator[tuple]:
        """Purify a stream of chunks (x [b, C, H, W] in [0, 1], t int64 [b] (or [b, S]) or None, sample_ids int64
        [b]).

        t None: SSNI computes each sample's t from its score norm; a plain host uses its t*. Yields
        (sample_ids int64 [n] on the CPU, x̂ [n, C, H, W] in [0, 1] on the engine's device), plus each sample's
        t (int64 [n] or [n, S], CPU) when with_t, as samples finish, in completion order. sample_ids key the noise
        and must be unique among the samples in flight. Chunks are read lazily, only when the free slots cannot be
        filled from the work already read.
        """
        check_seed(seed)
        noise_word(0, 0, draw)  # validates draw
        run = _Run(self, iter(chunks), seed, (draw,))
        return (((d.ids, d.x, d.t) if with_t else (d.ids, d.x)) for d in run.results())

    def purify_all(self, x: torch.Tensor, t: torch.Tensor | None = None, *, seed: int, sample_ids=None, draw=0):
        """`purify` of the plain purifier, streamed: x [B, C, H, W] in [0, 1] → x̂ in the input order, on x.device.
        x may stay on the CPU for a CUDA engine: it is then moved one batch at a time, as the slots need it."""
        return self.purify_draws(x, t, seed=seed, sample_ids=sample_ids, draws=(draw,))[0]

    def purify_draws(
        self, x: torch.Tensor, t: torch.Tensor | None = None, *, seed: int, sample_ids=None, draws: Sequence[int]
    ) -> torch.Tensor:
        """Independent purifications of x, one per noise draw (e.g. GNS's vote runs), streamed together:
        [R, B, C, H, W] for R = len(draws), each equal to `purify(x, t, draw=draws[r])` of the plain purifier. With
        SSNI, t is computed once per sample and shared by the draws (as `GNSDefense`)."""
        check_images(x)
        check_seed(seed)
        draws = tuple(draws)
        if not draws or len(set(draws)) != len(draws):
            raise ValueError(f"draws must be a non-empty sequence of distinct draws, got {draws!r}")
        for d in draws:
            noise_word(0, 0, d)
        ids = check_unique_ids(check_sample_ids(sample_ids, x.shape[0], x.device))
        if t is not None:
            t = check_timesteps(t, x.shape[0], self.host.num_stages, x.device)
        out = x.new_empty(len(draws), *x.shape)
        position = {int(s): b for b, s in enumerate(ids.tolist())}
        slot = {d: r for r, d in enumerate(draws)}
        for done in _Run(self, self._chunks(x, t, ids), seed, draws).results():
            rows = torch.tensor([position[int(s)] for s in done.ids], device=x.device)
            for d in set(done.draws):
                pick = [j for j, dj in enumerate(done.draws) if dj == d]
                out[slot[d], rows[pick]] = done.x[pick].to(x.device)
        return out

    def score_all(self, x: torch.Tensor, *, seed: int, sample_ids=None) -> torch.Tensor:
        """The EPS score norm e(x) [B] on x.device (SSNI only), streamed: equal to `eps_score_norm` of the SSNI's
        settings."""
        if self.ssni is None:
            raise TypeError("score_all needs a StreamingPurifier around SSNI")
        check_images(x)
        check_seed(seed)
        self.ssni.calibration.check(resolution=tuple(x.shape[-2:]))
        ids = check_unique_ids(check_sample_ids(sample_ids, x.shape[0], x.device))
        run = _Run(self, self._chunks(x, None, ids), seed, (), scores_only=True)
        for _ in run.results():
            pass
        return torch.stack([run.scores[int(s)] for s in ids.tolist()]).to(x.device)

    def _chunks(self, x, t, ids) -> Iterator[Chunk]:
        """One chunk when x is on the engine's device (all of it is queued at once, so walks start longest first);
        else runs of `batch_size` samples, moved only as the slots need them."""
        step = x.shape[0] if x.device == self.device else self.batch_size
        for start in range(0, x.shape[0], step):
            end = start + step
            yield x[start:end], None if t is None else t[start:end], ids[start:end]

    def _slots_for(self, shape, dtype) -> Slots:
        """The slot buffer for this per-sample shape and dtype (kept when it fits, for CUDA graphs)."""
        if self.slots is None or not self.slots.fits(shape, dtype):
            if self.network.graph is not None:
                raise ValueError("a CUDA-graphed StreamingPurifier keeps one input shape and dtype")
            self.slots = Slots(self.batch_size, shape, dtype, self.device)
        self.slots.clear()
        return self.slots


# ---------------------------------------------------------------------------------------------------------------
# One streaming run
# ---------------------------------------------------------------------------------------------------------------
@dataclass(eq=False)
class _Sample:
    sid: int
    x: torch.Tensor | None  # [C, H, W] in [0, 1] (kept until its t is known)
    t: torch.Tensor | None = None  # int64 [] or [S], once known
    pending: int = 0  # draws not finished yet


@dataclass(eq=False)
class _Job:
    """One draw of one sample's purification, at stage `stage` of the host's stages."""

    sample: _Sample
    draw: int
    stage: int = 0


@dataclass(eq=False)
class _ScoreGroup:
    """Samples whose K levels were noised together: their ε̂ collect level-major in `eps` [K·n, C, H, W] (the
    layout of `score_norm`); e and t follow once all K·n rows are back."""

    samples: list[_Sample]
    eps: torch.Tensor
    remaining: int


@dataclass(order=True)
class _Walk:
    """A planned walk waiting for a slot; heap order = longest first, then arrival."""

    neg_length: int
    seq: int
    job: _Job = field(compare=False)
    start: torch.Tensor = field(compare=False)  # [C, H, W] noised start (model space)
    table: torch.Tensor = field(compare=False)  # float64 [L, 3]
    word_offset: int = field(compare=False)


@dataclass(frozen=True)
class _Done:
    """Finished purifications of one round: ids [n] (CPU), draws, x̂ [n, C, H, W] in [0, 1], t [n] or [n, S]."""

    ids: torch.Tensor
    draws: list[int]
    x: torch.Tensor
    t: torch.Tensor


class _Run:
    def __init__(self, engine: StreamingPurifier, chunks: Iterator[Chunk], seed: int, draws, scores_only=False):
        self.engine = engine
        self.host = engine.host
        self.stages = engine.host.schedule(surrogate=False, grad=False)
        self.chunks = chunks
        self.seed, self.draws = seed, tuple(draws)
        self.scores_only = scores_only
        self.scores: dict[int, torch.Tensor] = {}
        self.shape = None  # per-sample input shape (C, H, W), fixed by the first chunk
        self.dtype = None
        self.slots: Slots | None = None
        self.to_score: deque[_Sample] = deque()  # samples waiting for their score levels
        self.levels: deque[tuple[_ScoreGroup, int, torch.Tensor]] = deque()  # staged (group, row, x)
        self.walks: list[_Walk] = []  # heap of planned walks
        self.in_flight: set[int] = set()
        self.seq = itertools.count()
        self.exhausted = False
        ssni = engine.ssni
        if ssni is not None:
            labels, self.m, self.sigma = score_levels(ssni.num_levels, engine.device)
            self.level_tables = [torch.tensor([[lab, 0.0, 0.0]], dtype=torch.float64) for lab in labels.tolist()]

    # ------------------------------------------------------------------------------------------------- input
    def _ready_rows(self) -> int:
        k = 0 if self.engine.ssni is None else self.engine.ssni.num_levels
        return len(self.levels) + k * len(self.to_score) + len(self.walks)

    def _read_chunk(self) -> bool:
        try:
            chunk = next(self.chunks)
        except StopIteration:
            self.exhausted = True
            return False
        if not isinstance(chunk, (tuple, list)) or len(chunk) != 3:
            raise TypeError("each chunk must be a tuple (x, t or None, sample_ids)")
        x, t, ids = chunk
        check_images(x)
        if ids is None:
            raise ValueError("sample_ids are required in a stream (they key the noise and name the outputs)")
        eng = self.engine
        x = self._to_device(x)
        ids = check_sample_ids(ids, x.shape[0], eng.device)
        if self.shape is None:
            self.shape, self.dtype = tuple(x.shape[1:]), x.dtype
            self.slots = eng._slots_for(self.model_shape, self.dtype)
        elif tuple(x.shape[1:]) != self.shape or x.dtype != self.dtype:
            raise ValueError(
                f"x: every chunk must have the per-sample shape {self.shape} and dtype {self.dtype}, got "
                f"{tuple(x.shape[1:])} {x.dtype}"
            )
        id_list = ids.tolist()
        clash = self.in_flight.intersection(id_list)
        if clash or len(set(id_list)) != len(id_list):
            raise ValueError(f"sample_ids must be unique among the samples in flight, repeated: {sorted(clash)[:5]}")
        self.in_flight.update(id_list)
        samples = [_Sample(s, x[b]) for b, s in enumerate(id_list)]
        if t is None and eng.ssni is not None:
            self._check_scorable(x)
            self.to_score.extend(samples)
            return True
        if self.scores_only:
            raise ValueError("score_all takes no t")
        t = (
            self.host.constant_t(x.shape[0], eng.device)
            if t is None
            else check_timesteps(t, x.shape[0], self.host.num_stages, eng.device)
        )
        self._start(samples, x, t)
        return True

    @property
    def model_shape(self):
        """The walks' per-sample shape: (C, R, R) when the host runs at resolution R, else the input's."""
        res = self.host.resolution
        return self.shape if res is None or self.scores_only else (self.shape[0], res, res)

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        dev = self.engine.device
        if x.device == dev:
            return x
        if dev.type == "cuda" and x.device.type == "cpu" and self.engine.pin_memory:
            return x.pin_memory().to(dev, non_blocking=True)
        return x.to(dev)

    def _check_scorable(self, x) -> None:
        ssni = self.engine.ssni
        ssni.calibration.check(resolution=tuple(x.shape[-2:]))
        check_time_labels(self.host.model, 2 * x[:1] - 1)  # the score levels' labels are fractional
        if self.model_shape != self.shape:
            raise ValueError(
                f"x: the host purifies at resolution {self.model_shape[-1]}, the score norm runs at the input's "
                f"{tuple(x.shape[-2:])}; one slot buffer cannot hold both: stream score_all first, then pass t"
            )
        if not self.scores_only and ssni.reweight == "linear" and ssni.linear_minmax == "reference+batch":
            raise ValueError(
                "SSNI-L with linear_minmax='reference+batch' makes t depend on the batch; stream it with "
                "linear_minmax='reference' or pass t"
            )

    # ------------------------------------------------------------------------------------------------- planning
    def _start(self, samples: list[_Sample], x: torch.Tensor, t: torch.Tensor) -> None:
        """Samples (x [b] in [0, 1] at the input size) with their t: plan stage 0 of every draw."""
        x_s = self.host.to_model_space(x)
        for sample, t_b in zip(samples, t):
            sample.x, sample.t, sample.pending = None, t_b, len(self.draws)
        for draw in self.draws:
            self._plan([_Job(s, draw) for s in samples], x_s)

    def _plan(self, jobs: list[_Job], x_s: torch.Tensor) -> None:
        """Plan the walks of jobs at one (stage, draw) from their states x_s (model space) and queue them."""
        stage_index, draw = jobs[0].stage, jobs[0].draw
        stage = self.stages[stage_index]
        t = torch.stack([job.sample.t for job in jobs])
        t = t if stage.column is None else t[:, stage.column]
        ids = torch.tensor([job.sample.sid for job in jobs], device=x_s.device)
        walks = self.host.plan(x_s, t, ids, seed=self.seed, draw=draw, stage=stage_index, num_steps=stage.num_steps)
        lengths = walks.lengths.tolist()
        if max(lengths) > INDEX_LIMIT:  # a step's position p must fit the noise word's index field
            raise ValueError(f"walks longer than {INDEX_LIMIT} steps are not supported, got {max(lengths)}")
        for b, (job, length) in enumerate(zip(jobs, lengths)):
            entry = _Walk(-length, next(self.seq), job, walks.start[b], walks.table[b, :length], walks.word_offset)
            heapq.heappush(self.walks, entry)

    def _stage_levels(self, free: int) -> None:
        """Noise the K levels of the next samples waiting for a score (one noise_inject_levels call)."""
        K = self.engine.ssni.num_levels
        count = min(len(self.to_score), max(1, math.ceil(free / K)))
        samples = [self.to_score.popleft() for _ in range(count)]
        xs = 2 * torch.stack([s.x for s in samples]) - 1
        ids = torch.tensor([s.sid for s in samples], device=xs.device)
        noisy = ssni_kernels.noise_inject_levels(xs, self.m, self.sigma, seed=self.seed, sample_ids=ids)
        group = _ScoreGroup(samples, torch.empty_like(noisy), K * count)
        # Row k·count + j is level k of sample j (the layout of noise_inject_levels and score_norm).
        self.levels.extend((group, row, noisy[row]) for row in range(K * count))

    def _collect_scores(self, eps: torch.Tensor, n_score: int) -> list[_ScoreGroup]:
        """Copy the score rows' ε̂ (rows [0, n_score)) into their groups; return the groups now complete."""
        rows, done = self.slots.rows, []
        lo = 0
        while lo < n_score:  # rows of one group are contiguous (admitted together, order kept)
            group = rows[lo].owner[0]
            hi = lo + 1
            while hi < n_score and rows[hi].owner[0] is group:
                hi += 1
            dest = torch.tensor([rows[j].owner[1] for j in range(lo, hi)], device=eps.device)
            group.eps.index_copy_(0, dest, eps[lo:hi])
            group.remaining -= hi - lo
            if group.remaining == 0:
                done.append(group)
            lo = hi
        return done

    def _finish_scores(self, group: _ScoreGroup) -> None:
        """e, then t, for a group whose K levels are all back; then plan its walks."""
        eng, samples = self.engine, group.samples
        e = ssni_kernels.score_norm(group.eps, self.sigma)
        group.eps = None
        if self.scores_only:
            self.scores.update({s.sid: e[j] for j, s in enumerate(samples)})
            self.in_flight.difference_update(s.sid for s in samples)
            return
        t = eng.ssni.timesteps_from_scores(e).to(eng.device)
        self._start(samples, torch.stack([s.x for s in samples]), t)

    # ------------------------------------------------------------------------------------------------- rounds
    def _admit(self) -> None:
        slots = self.slots
        while not self.exhausted and self._ready_rows() < slots.free:
            self._read_chunk()
        rows, xs, ids, tables, offsets = [], [], [], [], []
        while len(rows) < slots.free:
            if not self.levels and self.to_score:
                self._stage_levels(slots.free - len(rows))
            if self.levels:
                group, level_row, x_row = self.levels.popleft()
                rows.append(Row(SCORE, 0, (group, level_row)))
                xs.append(x_row)
                ids.append(group.samples[level_row % len(group.samples)].sid)
                tables.append(self.level_tables[level_row // len(group.samples)])
                offsets.append(0)
            elif self.walks:
                walk = heapq.heappop(self.walks)
                rows.append(Row(WALK, walk.table.shape[0] - 1, walk.job))
                xs.append(walk.start)
                ids.append(walk.job.sample.sid)
                tables.append(walk.table)
                offsets.append(walk.word_offset)
            else:
                break
        if rows:
            slots.append(rows, torch.stack(xs), torch.tensor(ids), tables, offsets)

    def _round(self) -> _Done | None:
        """One network call over the occupied slots; returns the purifications finished in it."""
        eng, slots = self.engine, self.slots
        k = slots.k
        vals = slots.current()
        eps = eng.network(slots.x, slots.labels, k).contiguous()
        n_score = sum(row.kind == SCORE for row in slots.rows)
        stats = eng.stats
        stats.network_calls += 1
        stats.samples_evaluated += k
        stats.padded_rows += slots.capacity - k if eng.network.static else 0
        stats.score_evaluations += n_score
        stats.purify_evaluations += k - n_score

        scored = self._collect_scores(eps, n_score)
        if n_score < k:
            slots.x[n_score:k] = self.host.apply(
                slots.x[n_score:k], eps[n_score:k], vals[n_score:k, 1], vals[n_score:k, 2],
                slots.words(n_score, k), slots.ids[n_score:k], seed=self.seed,
            )  # fmt: skip
        first_done = k  # rows at p = 0 are the last block
        while first_done > n_score and slots.rows[first_done - 1].p == 0:
            first_done -= 1
        jobs = [row.owner for row in slots.rows[first_done:k]]
        x_done = slots.x[first_done:k].clone()
        slots.advance(n_score, first_done)
        for group in scored:
            self._finish_scores(group)
        return self._finish_walks(jobs, x_done) if jobs else None

    def _finish_walks(self, jobs: list[_Job], x_done: torch.Tensor) -> _Done | None:
        """Plan the next stage of jobs that have one; return the purifications that are complete."""
        last = len(self.stages) - 1
        done = [j for j, job in enumerate(jobs) if job.stage == last]
        by_key: dict[tuple[int, int], list[int]] = {}
        for j, job in enumerate(jobs):
            if job.stage < last:
                job.stage += 1
                by_key.setdefault((job.stage, job.draw), []).append(j)
        for members in by_key.values():
            self._plan([jobs[j] for j in members], x_done[members])
        if not done:
            return None
        for j in done:
            sample = jobs[j].sample
            sample.pending -= 1
            if sample.pending == 0:
                self.in_flight.discard(sample.sid)
        x = self.host.from_model_space(x_done[done], self.shape[-2:])
        ids = torch.tensor([jobs[j].sample.sid for j in done], dtype=torch.int64)
        t = torch.stack([jobs[j].sample.t for j in done]).cpu()
        return _Done(ids, [jobs[j].draw for j in done], x, t)

    def results(self) -> Iterator[_Done]:
        with torch.no_grad():
            while self.shape is None:  # the first chunk fixes the per-sample shape and sizes the slots
                if not self._read_chunk():
                    return
            while True:
                self._admit()
                if self.slots.k == 0:
                    return
                done = self._round()
                if done is not None:
                    yield done
