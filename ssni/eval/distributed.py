"""Several processes or machines: `torchrun --nproc-per-node N -m ssni.cli eval …` (or `torchrun $(which ssni) …`).

Work is sharded by chunk of sample ids: chunk c belongs to rank c mod world_size. A chunk is the unit whose
composition can matter (SSNI-L's min/max include the current batch), so every chunk is computed exactly as in a
one-process run, and the merged file equals a one-process run's records byte for byte when both use the same
number of intra-op threads. torchrun sets OMP_NUM_THREADS=1 unless it is given; a one-process run uses every core
by default, and float reductions (the score norms) then differ in the last bits (~2e-7 relative). Every commit
line records its `num_threads` (`ssni.eval.records`), so a comparison can tell; to reproduce a torchrun result in
one process, run it with OMP_NUM_THREADS=1. Each rank appends to its own records file
(`<out>.rank<r>-of-<w>.jsonl`, resumable like any records file); after a barrier, rank 0 merges them into `<out>`.
Backend: nccl when CUDA is used, gloo otherwise. Without torchrun's environment this is a one-process world.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch


@dataclass(frozen=True)
class World:
    """This process's place: rank in 0..size−1; `local_rank` picks the CUDA device on a multi-GPU machine."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def owns(self, chunk: int) -> bool:
        """Whether this rank computes `chunk` (chunks are dealt round-robin)."""
        return chunk % self.size == self.rank

    def shard_path(self, out: Path) -> Path:
        """The records file this rank appends to (the final path itself in a one-process world)."""
        if self.size == 1:
            return out
        return out.with_name(f"{out.stem}.rank{self.rank}-of-{self.size}{out.suffix}")

    def barrier(self) -> None:
        if self.size > 1:
            torch.distributed.barrier()


def init_world(device: str) -> World:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK), or a one-process world."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not torch.distributed.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        torch.distributed.init_process_group(backend=backend, timeout=timedelta(hours=6))
    return World(rank=rank, size=size, local_rank=local_rank)


def close_world(world: World) -> None:
    if world.size > 1 and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
