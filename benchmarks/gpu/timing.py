"""Clocks shared by the GPU benchmark's parts: a call's median time, a deadline, and the time spent inside a network.

On CUDA a median comes from triton.testing.do_bench (CUDA events, L2 flushed between repetitions) and network time
from CUDA events recorded around each call (no synchronisation inside the timed run); on the CPU (the dry run)
from the wall clock, which is exact there because CPU calls are synchronous.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def median_seconds(fn: Callable[[], object], device: torch.device) -> float:
    """Median wall time of one call of fn on `device` (after warm-up)."""
    if device.type == "cuda":
        from triton.testing import do_bench

        return do_bench(fn, warmup=25, rep=100, return_mode="median") / 1e3
    fn()
    samples = []
    for _ in range(3):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Deadline:
    """Seconds left until a fixed point in time (None: no limit)."""

    def __init__(self, seconds: float | None):
        self.end = None if seconds is None else time.monotonic() + seconds

    def left(self) -> float:
        return float("inf") if self.end is None else self.end - time.monotonic()

    def allows(self, seconds: float) -> bool:
        return seconds <= self.left()


class NetworkClock:
    """Accumulates the time spent inside `with clock:` blocks: CUDA events around each block on a GPU (read once,
    in `seconds()`), the wall clock on the CPU. Blocks entered while a CUDA graph is being captured are not timed
    (their work runs later, in the graph's replays, which are timed where the replay is called)."""

    def __init__(self, device: torch.device):
        self.device = device
        self._events: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self._wall = 0.0
        self._open: list = []

    def __enter__(self) -> NetworkClock:
        if self.device.type == "cuda":
            if torch.cuda.is_current_stream_capturing():
                self._open.append(None)
                return self
            start = torch.cuda.Event(enable_timing=True)
            start.record()
            self._open.append(start)
        else:
            self._open.append(time.perf_counter())
        return self

    def __exit__(self, *exc) -> None:
        start = self._open.pop()
        if start is None:
            return
        if self.device.type == "cuda":
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            self._events.append((start, end))
        else:
            self._wall += time.perf_counter() - start

    def seconds(self) -> float:
        """Time inside the network since the last reset (synchronises the device)."""
        synchronize(self.device)
        return self._wall + sum(start.elapsed_time(end) for start, end in self._events) / 1e3

    def reset(self) -> None:
        self._events.clear()
        self._wall = 0.0
