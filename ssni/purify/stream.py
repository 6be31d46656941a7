"""Streaming purification with continuous batching: the network always runs at the batch size the device wants.

Work items
----------
A sample flows through at most two stages, each a list of work items that need one network evaluation each:

- score (SSNI only, spec §2): K independent items, level k = 0..K−1 with input m(t_k)·x_s + σ(t_k)·z_k and label
  999·t_k. When all K are back, `score_norm` gives e(x) and the reweighting (§4) gives the sample's t.
- purify (§5 DDPM/DDIM, §6 SDE): the sample's own walk of L steps after the one-shot noising, run one step per
  engine round, step p = L − 1 … 0 (p counted from the END of the walk, as in `ssni.purify.engine`).

Continuous batching
-------------------
The engine holds `batch_size` slots. Every round it admits ready work into the free slots (score items first, then
the pending walks, longest first so that the drain at the end is short), evaluates the network ONCE on all
occupied slots (each row with its own label), applies each row's update, and retires rows whose work is done;
new work takes the freed slots in the next round. Slots are kept as a prefix of one preallocated buffer (a
retired row is compacted away), so the network sees a contiguous view and CUDA graphs can capture it. The
network therefore runs at `batch_size` rows whenever enough work is queued; only the final drain runs smaller.

Why results equal the plain purifiers
-------------------------------------
All randomness comes from the ops' Philox stream keyed on (seed, sample id, step): the one-shot noise uses
`noise_step(0, 0, draw)`, step p of a walk uses `noise_step(p, 0, draw)` (the one layout of `ssni.purify.base`,
where p is exactly the per-sample position the plain purifiers' active-only engine passes), and score level k
uses `noise_inject_levels`' own key k. The schedules come from the hosts' own functions (`effective_indices`,
`SDEPurifier.time_grid`). A row's result therefore never depends on its slot, its round or its neighbours, only
on (seed, id, t): the stream gives the plain purifiers' output to fp32 rounding (the network's arithmetic may
differ with the batch size) for any input order and batch size. The step ops take a step word per row
(`steps`), so a round makes ONE step call for all its walks (DDPM/DDIM; the SDE host one per distinct Δ, which
only a walk's last step can change); rows are kept sorted so that each call works on a contiguous slice.

On GPU: `cuda_graph=True` captures the network at the full batch (rows past the occupied prefix are computed and
ignored), `compile=<mode>` wraps it in `torch.compile`, `network_dtype=torch.float16/bfloat16` runs it under
autocast (then results follow that precision, not the fp32 purifier), and CPU input chunks are copied through
pinned memory. The state between steps stays in the input dtype.
"""

from __future__ import annotations

import heapq
import itertools
import math
import warnings
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

import ssni_kernels
from ssni.checks import check_images, check_sample_ids, check_seed, check_timesteps
from ssni.models.interface import LABEL_DTYPE, as_eps_model
from ssni.purify.base import INDEX_LIMIT, noise_step
from ssni.purify.ddpm import DDPMPurifier, inject
from ssni.purify.sde import SDEPurifier
from ssni.purify.ssni import SSNI
from ssni.schedules import NUM_TRAIN_STEPS, alphas_cumprod_padded, effective_indices, eps_levels
from ssni_kernels._checks import seed as op_seed

__all__ = ["StreamingPurifier", "StreamStats"]

Chunk = tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
NETWORK_DTYPES = (torch.float16, torch.bfloat16)


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


# ---------------------------------------------------------------------------------------------------------------
# Hosts: how a walk is planned (schedule table per sample) and how one step is applied
# ---------------------------------------------------------------------------------------------------------------
class _Host:
    """A purifier's walk as data. `plan` returns the noised start and a float64 table [b, L, 3] of per-step
    (network label, u, v); `apply` runs one step for rows at their own noise step words `steps` (int64 [n])
    (with `group_by_v`, rows sharing v: the op takes v as one scalar).

    `apply` calls the registered op `torch.ops.ssni.<op>` directly: its arguments come from the host's own
    validated schedule, and the public wrapper's per-call checks (host syncs) would be paid once per group and
    round."""

    group_by_v = False

    def __init__(self, purifier):
        self.purifier = purifier

    def plan(self, x_s, t, ids, *, seed, draw, options):  # pragma: no cover - interface
        raise NotImplementedError

    def apply(self, x, eps, u, v, steps, ids, *, seed):  # pragma: no cover - interface
        raise NotImplementedError


class _DDPMHost(_Host):
    """§5: u = ᾱ[i], v = ᾱ[next] (ᾱ[−1] = 1), label i; one `reverse_step` per round."""

    def plan(self, x_s, t, ids, *, seed, draw, options):
        pur: DDPMPurifier = self.purifier
        shift = options.get("reverse_shift", 0)
        if isinstance(shift, bool) or not isinstance(shift, int) or shift < 0:
            raise ValueError(f"reverse_shift must be an int >= 0, got {shift!r}")
        x = inject(x_s, t, pur.alphas_cumprod, seed=seed, sample_ids=ids, draw=draw)
        t_rev = (t + shift).clamp_max(pur.num_train_steps).cpu()
        idx, lengths = effective_indices(t_rev, pur.num_steps)
        nxt = torch.cat([torch.full_like(idx[:, :1], -1), idx[:, :-1]], dim=1)
        padded = alphas_cumprod_padded(pur.alphas_cumprod)
        table = torch.stack([idx.to(LABEL_DTYPE).to(torch.float64), padded[idx + 1], padded[nxt + 1]], dim=-1)
        return x, table, lengths

    def apply(self, x, eps, u, v, steps, ids, *, seed):
        return torch.ops.ssni.reverse_step(x, eps, u, v, self.purifier.eta, None, seed, ids, 0, None, steps)


class _SDEHost(_Host):
    """§6: u = τ (float64), v = Δ, label from the host's convention; one `vp_sde_step` per distinct Δ."""

    group_by_v = True

    def plan(self, x_s, t, ids, *, seed, draw, options):
        if options:
            raise ValueError(f"SDEPurifier takes no purify options, got {sorted(options)}")
        pur: SDEPurifier = self.purifier
        x = inject(x_s, t, pur.alphas_cumprod, seed=seed, sample_ids=ids, draw=draw)
        times, steps, lengths = pur.time_grid(t.cpu(), None)
        valid = torch.arange(steps.shape[1])[None, :] < lengths[:, None]
        if not (steps[valid] > 0).all():
            raise ValueError("non-positive SDE step (t_end too close to t/1000?)")
        table = torch.stack([pur.network_labels(times).to(torch.float64), times, steps], dim=-1)
        return x, table, lengths

    def apply(self, x, eps, u, v, steps, ids, *, seed):
        pur: SDEPurifier = self.purifier
        return torch.ops.ssni.vp_sde_step(x, eps, u, v, None, seed, ids, 0, None, pur.beta_min, pur.beta_max, steps)


def _host_for(purifier) -> _Host:
    if isinstance(purifier, DDPMPurifier):
        return _DDPMHost(purifier)
    if isinstance(purifier, SDEPurifier):
        return _SDEHost(purifier)
    raise TypeError(
        f"StreamingPurifier streams DDPMPurifier and SDEPurifier hosts (alone or inside SSNI), got "
        f"{type(purifier).__name__}"
    )


# ---------------------------------------------------------------------------------------------------------------
# The network as the engine calls it: autocast, torch.compile, CUDA graph over the full slot buffer
# ---------------------------------------------------------------------------------------------------------------
class _Network:
    """eps = network(rows [k], labels [k]). Static (CUDA graph or torch.compile): the whole buffer is evaluated, so
    that one shape is captured/compiled; rows past k are computed and ignored."""

    def __init__(self, model: nn.Module, *, dtype, compile_mode, cuda_graph: bool):
        self.model = torch.compile(model, mode=compile_mode, dynamic=False) if compile_mode else model
        self.dtype = dtype
        self.cuda_graph = cuda_graph
        self.compiled = compile_mode is not None
        self.static = cuda_graph or self.compiled
        self.graph = None

    def _forward(self, x, labels):
        if self.dtype is None:
            return self.model(x, labels)
        with torch.autocast(x.device.type, dtype=self.dtype):
            return self.model(x, labels).to(x.dtype)

    def __call__(self, buffer: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
        if not self.static:
            return self._forward(buffer[:k], labels[:k])
        if not self.cuda_graph:
            return self._forward(buffer, labels)[:k]
        if self.graph is None and not self._capture(buffer, labels):
            return self._forward(buffer, labels)[:k]
        self.graph.replay()
        return self.out[:k]

    def _capture(self, buffer, labels) -> bool:
        """Capture the network over the whole buffer; False (with a warning, eager from then on) when the network
        cannot be captured, e.g. an input check that synchronises with the host."""
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):  # warm-up (cuDNN autotuning, lazy init) outside the graph
                self._forward(buffer, labels)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self.out = self._forward(buffer, labels)
        except RuntimeError as error:
            message = f"StreamingPurifier: CUDA graph capture failed, running the network eagerly ({error})"
            warnings.warn(message, stacklevel=3)
            self.cuda_graph = False
            self.static = self.compiled
            return False
        self.graph = graph
        return True


# ---------------------------------------------------------------------------------------------------------------
# Per-sample records and the slot buffer
# ---------------------------------------------------------------------------------------------------------------
SCORE, PURIFY = 0, 1


@dataclass(eq=False)
class _Sample:
    sid: int
    x: torch.Tensor  # [C, H, W] in [0, 1] (kept until its t is known)
    t: int = -1  # its timestep, once known


@dataclass(eq=False)
class _ScoreGroup:
    """Samples whose K levels were noised together: their ε̂ collect level-major in `eps` [K·n, C, H, W] (the
    layout of `score_norm`); e and t follow once all K·n rows are back."""

    samples: list[_Sample]
    eps: torch.Tensor
    remaining: int


@dataclass(order=True)
class _Walk:
    """A pending purification walk; heap order = longest first, then arrival."""

    neg_length: int
    seq: int
    sample: _Sample = field(compare=False)
    x: torch.Tensor = field(compare=False)  # [C, H, W] noised start
    table: torch.Tensor = field(compare=False)  # float64 [L, 3]


class _Slots:
    """Occupied rows are a prefix [0, k) of preallocated buffers, kept sorted by (kind, −p, v): score rows first,
    then the walks by descending step p, so that the rows of each op call (same p, and same Δ for the SDE) are a
    contiguous slice, the rows retired after a round are the first and the last block, and decrementing every p
    keeps the order. State and ids live on the engine's device, schedules and keys on the CPU."""

    def __init__(self, capacity: int, shape, dtype, device):
        self.capacity = capacity
        self.k = 0
        self.x = torch.zeros(capacity, *shape, dtype=dtype, device=device)
        self.labels = torch.zeros(capacity, dtype=LABEL_DTYPE, device=device)
        self.ids = torch.zeros(capacity, dtype=torch.int64, device=device)
        self.table = torch.zeros(capacity, 1, 3, dtype=torch.float64)
        self.rows = torch.arange(capacity)
        self.p: list[int] = []
        self.kind: list[int] = []
        self.owner: list = []  # _Sample for a walk, (_Sample, level) for a score row

    def ensure_width(self, width: int) -> None:
        if width > self.table.shape[1]:
            wider = torch.zeros(self.capacity, max(width, 2 * self.table.shape[1]), 3, dtype=torch.float64)
            wider[:, : self.table.shape[1]] = self.table
            self.table = wider

    def take(self, lo: int, hi: int) -> None:
        """Keep rows [lo, hi) only, moved to the front."""
        if lo:
            self.x[: hi - lo] = self.x[lo:hi].clone()
            self.ids[: hi - lo] = self.ids[lo:hi].clone()
            self.table[: hi - lo] = self.table[lo:hi].clone()
        self.p, self.kind, self.owner = self.p[lo:hi], self.kind[lo:hi], self.owner[lo:hi]
        self.k = hi - lo

    def sort(self, key) -> None:
        """Reorder the prefix by key(row) (a no-op when already sorted)."""
        order = sorted(range(self.k), key=key)
        if order == list(range(self.k)):
            return
        index = torch.tensor(order)
        k = self.k
        self.x[:k] = self.x[:k][index.to(self.x.device)]
        self.ids[:k] = self.ids[:k][index.to(self.ids.device)]
        self.table[:k] = self.table[:k][index]
        self.p = [self.p[i] for i in order]
        self.kind = [self.kind[i] for i in order]
        self.owner = [self.owner[i] for i in order]


class StreamingPurifier:
    """Continuous-batching purification around a DDPMPurifier, an SDEPurifier, or SSNI over either.

    purifier: the plain purifier whose results the stream reproduces; batch_size: occupied rows per network call
    (the target); network_dtype: None (the input dtype) or torch.float16/bfloat16 (autocast; results then differ
    from the fp32 purifier by that precision); compile: None or a torch.compile mode for the network;
    cuda_graph: capture the network over the full batch (CUDA only); pin_memory: copy CPU chunks to a CUDA
    device through pinned memory. `options` are the host's purify options (DDPMPurifier's reverse_shift); SSNI's
    reference_linear_shift sets it as SSNI does.
    `stats` (StreamStats) counts network calls, rows evaluated and the fill ratio; the purifier's own counters
    are left untouched.
    A host with `resolution` R walks at R×R: inputs are resized to it and the results back, as the plain purifier
    does. The score norm runs at the input's size (as `SSNI.scores`), so when that differs from R the slots
    cannot hold both stages: then stream `score_all` first and pass t.
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
        **options,
    ):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if network_dtype is not None and network_dtype not in NETWORK_DTYPES:
            raise ValueError(f"network_dtype must be None, torch.float16 or torch.bfloat16, got {network_dtype!r}")
        if compile is not None and compile not in COMPILE_MODES:
            raise ValueError(f"compile must be None or one of {COMPILE_MODES}, got {compile!r}")
        self.ssni = purifier if isinstance(purifier, SSNI) else None
        host = purifier.purifier if self.ssni is not None else purifier
        self.host = _host_for(host)
        self.options = dict(options)
        if self.ssni is not None:
            self.options.update(self.ssni.purify_options())
        score_model = None if self.ssni is None else self.ssni.score_model
        if score_model is not None and as_eps_model(score_model).net is not host.model.net:
            raise ValueError(
                "StreamingPurifier runs one network for both stages; SSNI with a separate score_model is not "
                "streamed (use SSNI.purify, or score_model=None)"
            )
        device = next(iter(host.model.parameters()), torch.empty(0)).device
        if cuda_graph and device.type != "cuda":
            raise ValueError(f"cuda_graph needs the model on a CUDA device, it is on {device}")
        self.device = device
        self.batch_size = batch_size
        self.pin_memory = pin_memory
        self.network = _Network(host.model, dtype=network_dtype, compile_mode=compile, cuda_graph=cuda_graph)
        self.stats = StreamStats(batch_size)
        self._slots: _Slots | None = None  # kept across runs so that a captured CUDA graph stays valid

    @property
    def purifier(self):
        """The host purifier (DDPMPurifier or SDEPurifier)."""
        return self.host.purifier

    def reset(self) -> None:
        self.stats.reset()

    # ----------------------------------------------------------------------------------------------- public
    def purify_stream(
        self, chunks: Iterable[Chunk], *, seed: int, draw: int = 0, with_t: bool = False
    ) -> Iterator[tuple]:
        """Purify a stream of chunks (x [b, C, H, W] in [0, 1], t int64 [b] or None, sample_ids int64 [b]).

        t None: SSNI computes each sample's t from its score norm; a plain host uses its t*. Yields
        (sample_ids int64 [n] on the CPU, x̂ [n, C, H, W] in [0, 1] on the engine's device), plus each sample's
        t (int64 [n], CPU) when with_t, as samples finish, in completion order. sample_ids key the noise and must
        be unique among the samples in flight.
        Chunks are read lazily, only when the free slots cannot be filled from the work already read.
        """
        check_seed(seed)
        noise_step(0, 0, draw)  # validates draw
        return _Run(self, iter(chunks), seed, draw).results(with_t)

    def purify_all(self, x: torch.Tensor, t: torch.Tensor | None = None, *, seed: int, sample_ids=None, draw=0):
        """`purify` of the plain purifier, streamed: x [B, C, H, W] in [0, 1] → x̂ in the input order, on x.device.
        x may stay on the CPU for a CUDA engine: it is then moved one batch at a time, as the slots need it."""
        check_images(x)
        ids = check_sample_ids(sample_ids, x.shape[0], x.device)
        if t is not None:
            t = check_timesteps(t, x.shape[0], None, x.device)
        out = torch.empty_like(x)
        position = {int(s): b for b, s in enumerate(ids.tolist())}
        if len(position) != x.shape[0]:
            raise ValueError("sample_ids must be unique")
        for done_ids, done in self.purify_stream(self._chunks(x, t, ids), seed=seed, draw=draw):
            rows = torch.tensor([position[int(s)] for s in done_ids], device=x.device)
            out[rows] = done.to(x.device)
        return out

    def score_all(self, x: torch.Tensor, *, seed: int, sample_ids=None) -> torch.Tensor:
        """The EPS score norm e(x) [B] on x.device (SSNI only), streamed: equal to `eps_score_norm` of the SSNI's
        settings."""
        if self.ssni is None:
            raise TypeError("score_all needs a StreamingPurifier around SSNI")
        check_images(x)
        check_seed(seed)
        self.ssni.calibration.check(resolution=tuple(x.shape[-2:]))
        ids = check_sample_ids(sample_ids, x.shape[0], x.device)
        if len(set(ids.tolist())) != x.shape[0]:
            raise ValueError("sample_ids must be unique")
        run = _Run(self, self._chunks(x, None, ids), seed, 0, scores_only=True)
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


# ---------------------------------------------------------------------------------------------------------------
# One streaming run
# ---------------------------------------------------------------------------------------------------------------
class _Run:
    def __init__(self, engine: StreamingPurifier, chunks: Iterator[Chunk], seed: int, draw: int, scores_only=False):
        self.engine = engine
        self.chunks = chunks
        self.seed, self.draw = seed, draw
        self.op_seed = op_seed("stream", seed, needed=True)  # the ops' signed int64 form of the Philox key
        self.scores_only = scores_only
        self.scores: dict[int, torch.Tensor] = {}
        self.shape = None  # per-sample input shape (C, H, W), fixed by the first chunk
        self.model_shape = None  # the walks' shape: (C, R, R) when the host runs at resolution R, else shape
        self.dtype = None
        self.to_score: deque[_Sample] = deque()  # samples waiting for their score levels
        self.levels: deque[tuple[tuple[_ScoreGroup, int], torch.Tensor]] = deque()  # staged (group, row), x
        self.walks: list[_Walk] = []  # heap of pending walks
        self.in_flight: set[int] = set()
        self.seq = itertools.count()
        self.exhausted = False
        ssni = engine.ssni
        if ssni is not None:
            t_lv, m, sigma = eps_levels(ssni.num_levels)
            dev = engine.device
            labels = ((NUM_TRAIN_STEPS - 1) * t_lv).to(LABEL_DTYPE).to(torch.float64)
            self.level_tables = [torch.tensor([[lab, 0.0, 0.0]], dtype=torch.float64) for lab in labels.tolist()]
            self.m, self.sigma = m.to(dev), sigma.to(dev)

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
            res = eng.purifier.resolution
            self.model_shape = self.shape if res is None or self.scores_only else (self.shape[0], res, res)
            self._slots()
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
            eng.purifier.constant_t(x.shape[0], eng.device)
            if t is None
            else check_timesteps(t, x.shape[0], None, eng.device)
        )
        self._plan(samples, x, t, ids)
        return True

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

    def _slots(self) -> None:
        eng = self.engine
        slots = eng._slots
        if slots is None or slots.x.shape[1:] != self.model_shape or slots.x.dtype != self.dtype:
            if eng.network.graph is not None:
                raise ValueError("a CUDA-graphed StreamingPurifier keeps one input shape and dtype")
            eng._slots = _Slots(eng.batch_size, self.model_shape, self.dtype, eng.device)
        eng._slots.take(0, 0)

    # ------------------------------------------------------------------------------------------------- stages
    def _plan(self, samples: list[_Sample], x: torch.Tensor, t: torch.Tensor, ids: torch.Tensor) -> None:
        """Noise and plan the walks of samples (x [b] in [0, 1] at the input size, t [b]) and queue them."""
        eng = self.engine
        x = self._resize(x, self.model_shape)
        start, table, lengths = eng.host.plan(2 * x - 1, t, ids, seed=self.seed, draw=self.draw, options=eng.options)
        if int(lengths.max()) > INDEX_LIMIT:  # a step's position p must fit the noise key's index field
            raise ValueError(f"walks longer than {INDEX_LIMIT} steps are not supported, got {int(lengths.max())}")
        for b, (sample, t_b) in enumerate(zip(samples, t.tolist())):
            sample.x, sample.t = None, t_b
            length = int(lengths[b])
            walk = _Walk(-length, next(self.seq), sample, start[b], table[b, :length])
            heapq.heappush(self.walks, walk)

    @staticmethod
    def _resize(x: torch.Tensor, shape) -> torch.Tensor:
        """x [b, C, H, W] to shape's size, as `Purifier._at_resolution` does (bilinear, no corner alignment)."""
        if tuple(x.shape[1:]) == tuple(shape):
            return x
        return F.interpolate(x, size=tuple(shape[-2:]), mode="bilinear", align_corners=False)

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
        self.levels.extend(((group, row), noisy[row]) for row in range(K * count))

    def _collect_scores(self, eps: torch.Tensor, n_score: int) -> list[_ScoreGroup]:
        """Copy the score rows' ε̂ (rows [0, n_score)) into their groups; return the groups now complete."""
        slots, done = self.engine._slots, []
        lo = 0
        while lo < n_score:  # rows of one group are contiguous (admitted together, order kept)
            group = slots.owner[lo][0]
            hi = lo + 1
            while hi < n_score and slots.owner[hi][0] is group:
                hi += 1
            dest = torch.tensor([slots.owner[j][1] for j in range(lo, hi)], device=eps.device)
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
            return
        t = eng.ssni.timesteps_from_scores(e).to(eng.device)
        ids = torch.tensor([s.sid for s in samples], device=eng.device)
        self._plan(samples, torch.stack([s.x for s in samples]), t, ids)

    # ------------------------------------------------------------------------------------------------- rounds
    def _admit(self) -> None:
        slots = self.engine._slots
        while not self.exhausted and self._ready_rows() < slots.capacity - slots.k:
            self._read_chunk()
        rows, tables, starts, kinds, ids, owners = [], [], [], [], [], []
        while slots.k + len(rows) < slots.capacity:
            free = slots.capacity - slots.k - len(rows)
            if not self.levels and self.to_score:
                self._stage_levels(free)
            if self.levels:
                (group, row), x_row = self.levels.popleft()
                rows.append(x_row)
                tables.append(self.level_tables[row // len(group.samples)])
                starts.append(0)
                kinds.append(SCORE)
                owners.append((group, row))
            elif self.walks:
                walk = heapq.heappop(self.walks)
                rows.append(walk.x)
                tables.append(walk.table)
                starts.append(walk.table.shape[0] - 1)
                kinds.append(PURIFY)
                owners.append(walk.sample)
            else:
                break
            owner = owners[-1]
            ids.append(owner[0].samples[owner[1] % len(owner[0].samples)].sid if kinds[-1] == SCORE else owner.sid)
        if not rows:
            return
        k, n = slots.k, len(rows)
        slots.ensure_width(max(tab.shape[0] for tab in tables))
        slots.x[k : k + n] = torch.stack(rows)
        for j, tab in enumerate(tables):
            slots.table[k + j, : tab.shape[0]] = tab
        slots.ids[k : k + n] = torch.tensor(ids)
        slots.p += starts
        slots.kind += kinds
        slots.owner += owners
        slots.k = k + n
        if self.engine.host.group_by_v:
            v = slots.table[slots.rows[: slots.k], torch.tensor(slots.p), 2].tolist()
        else:
            v = [0.0] * slots.k
        keys = list(zip(slots.kind, [-q for q in slots.p], v))
        slots.sort(keys.__getitem__)

    def _round(self) -> tuple[list[_Sample], torch.Tensor | None]:
        """One network call over the occupied slots; returns the samples finished in it."""
        eng, slots = self.engine, self.engine._slots
        k = slots.k
        p = torch.tensor(slots.p)
        vals = slots.table[slots.rows[:k], p]  # [k, 3]: label, u, v of each row's current step
        slots.labels[:k].copy_(vals[:, 0])
        eps = eng.network(slots.x, slots.labels, k).contiguous()
        n_score = slots.kind.count(SCORE)
        stats = eng.stats
        stats.network_calls += 1
        stats.samples_evaluated += k
        stats.padded_rows += slots.capacity - k if eng.network.static else 0
        stats.score_evaluations += n_score
        stats.purify_evaluations += k - n_score

        scored = self._collect_scores(eps, n_score)
        self._steps(eps, vals, n_score)

        first_done = k  # rows at p = 0 are the last block
        while first_done > n_score and slots.p[first_done - 1] == 0:
            first_done -= 1
        finished = slots.owner[first_done:k]
        out_x = self._resize((slots.x[first_done:k] + 1) / 2, self.shape) if finished else None
        slots.take(n_score, first_done)
        slots.p = [q - 1 for q in slots.p]
        self.in_flight.difference_update(s.sid for s in finished)
        for group in scored:
            self._finish_scores(group)
            if self.scores_only:
                self.in_flight.difference_update(s.sid for s in group.samples)
        return finished, out_x

    def _steps(self, eps: torch.Tensor, vals: torch.Tensor, start: int) -> None:
        """Apply the walks' steps (rows [start, k)) with each row's own noise step word noise_step(p, 0, draw):
        one op call, or (SDE) one per contiguous run of rows sharing Δ."""
        eng, slots = self.engine, self.engine._slots
        host, dev, k = eng.host, eng.device, slots.k
        if start == k:
            return
        # p < INDEX_LIMIT (checked when planned), so p + the draw's offset is noise_step(p, 0, draw)
        words = (torch.tensor(slots.p[start:k], dtype=torch.int64) + noise_step(0, 0, self.draw)).to(dev)
        u_all = vals[:, 1].contiguous().to(dev)
        if host.group_by_v:
            v_all = vals[:, 2].tolist()
            runs = [lo for lo in range(start, k) if lo == start or v_all[lo] != v_all[lo - 1]] + [k]
            bounds = list(zip(runs, runs[1:]))
        else:
            v_dev, bounds = vals[:, 2].contiguous().to(dev), [(start, k)]
        for lo, hi in bounds:
            v = v_all[lo] if host.group_by_v else v_dev[lo:hi]
            slots.x[lo:hi] = host.apply(
                slots.x[lo:hi], eps[lo:hi], u_all[lo:hi], v, words[lo - start : hi - start], slots.ids[lo:hi],
                seed=self.op_seed,
            )  # fmt: skip

    def results(self, with_t: bool = False) -> Iterator[tuple]:
        with torch.no_grad():
            while self.shape is None:  # the first chunk fixes the per-sample shape and sizes the slots
                if not self._read_chunk():
                    return
            while True:
                self._admit()
                if self.engine._slots.k == 0:
                    return
                finished, out_x = self._round()
                if finished:
                    ids = torch.tensor([s.sid for s in finished], dtype=torch.int64)
                    if with_t:
                        yield ids, out_x, torch.tensor([s.t for s in finished], dtype=torch.int64)
                    else:
                        yield ids, out_x
