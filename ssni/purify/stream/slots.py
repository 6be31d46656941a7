"""The slot buffer of the streaming engine: the rows the network evaluates in one round, as a contiguous prefix.

Occupied rows are a prefix [0, k) of preallocated buffers on the engine's device, kept sorted by (kind, −p): score
rows first, then walk steps by descending p. So the rows retired after a round are the first block (every score
row is one evaluation) and the last block (walks at p = 0), decrementing every p keeps the order, and the
network sees a contiguous view that a CUDA graph can capture. Each row's step table, position p and noise-word
offset live on the device too: a round gathers its (label, coef_a, coef_b) there, with no host transfer; the
host side keeps one `Row` record per slot.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ssni.models.interface import LABEL_DTYPE

__all__ = ["Row", "Slots", "SCORE", "WALK"]

SCORE, WALK = 0, 1


@dataclass(eq=False)
class Row:
    """What one slot holds: a score level (owner: the score group and the row in it) or a walk (owner: the job),
    at step p of its table (counted from the end; 0 for a score row)."""

    kind: int
    p: int
    owner: object


class Slots:
    """Up to `capacity` rows of per-sample shape `shape` and `dtype` on `device`."""

    def __init__(self, capacity: int, shape, dtype, device):
        self.capacity = capacity
        self.shape, self.dtype = tuple(shape), dtype
        self.x = torch.zeros(capacity, *shape, dtype=dtype, device=device)
        self.labels = torch.zeros(capacity, dtype=LABEL_DTYPE, device=device)
        self.ids = torch.zeros(capacity, dtype=torch.int64, device=device)
        self.table = torch.zeros(capacity, 1, 3, dtype=torch.float64, device=device)
        self.p = torch.zeros(capacity, dtype=torch.int64, device=device)
        self.word_offset = torch.zeros(capacity, dtype=torch.int64, device=device)
        self._positions = torch.arange(capacity, device=device)
        self.rows: list[Row] = []

    @property
    def k(self) -> int:
        """Occupied rows."""
        return len(self.rows)

    @property
    def free(self) -> int:
        return self.capacity - self.k

    def fits(self, shape, dtype) -> bool:
        return self.shape == tuple(shape) and self.dtype == dtype

    def clear(self) -> None:
        self.rows = []

    def append(self, rows: list[Row], x: torch.Tensor, ids: torch.Tensor, tables: list[torch.Tensor], offsets) -> None:
        """Add rows with states x [n, ...], ids [n], step tables (float64 [L_j, 3] each) and noise-word offsets;
        then restore the sort order."""
        k, n = self.k, len(rows)
        width = max(tab.shape[0] for tab in tables)
        if width > self.table.shape[1]:
            wider = self.table.new_zeros(self.capacity, max(width, 2 * self.table.shape[1]), 3)
            wider[:, : self.table.shape[1]] = self.table
            self.table = wider
        self.x[k : k + n] = x
        self.ids[k : k + n] = ids
        for j, tab in enumerate(tables):
            self.table[k + j, : tab.shape[0]] = tab
        dev = self.p.device
        self.p[k : k + n] = torch.tensor([r.p for r in rows], dtype=torch.int64).to(dev)
        self.word_offset[k : k + n] = torch.tensor(list(offsets), dtype=torch.int64).to(dev)
        self.rows.extend(rows)
        self._sort()

    def current(self) -> torch.Tensor:
        """(label, coef_a, coef_b) of every occupied row at its own step p: float64 [k, 3]; the labels are also
        copied into the static label buffer the network reads."""
        k = self.k
        vals = self.table[self._positions[:k], self.p[:k]]
        self.labels[:k].copy_(vals[:, 0])
        return vals

    def words(self, lo: int, hi: int) -> torch.Tensor:
        """The noise words p + offset of rows [lo, hi), int64 on the device."""
        return self.p[lo:hi] + self.word_offset[lo:hi]

    def advance(self, lo: int, hi: int) -> None:
        """Keep rows [lo, hi) only, moved to the front, each one step further (p − 1)."""
        n = hi - lo
        if lo:
            for buf in (self.x, self.ids, self.table, self.p, self.word_offset):
                buf[:n] = buf[lo:hi].clone()
        self.p[:n] -= 1
        self.rows = self.rows[lo:hi]
        for row in self.rows:
            row.p -= 1

    def _sort(self) -> None:
        order = sorted(range(self.k), key=lambda j: (self.rows[j].kind, -self.rows[j].p))
        if order == list(range(self.k)):
            return
        k = self.k
        index = torch.tensor(order, device=self.x.device)
        for buf in (self.x, self.ids, self.table, self.p, self.word_offset):
            buf[:k] = buf[:k][index]
        self.rows = [self.rows[j] for j in order]
