"""Active-only execution: visits, prefix compaction, order restoration, counting, gradients."""

from __future__ import annotations

import torch

from ssni.models.interface import CallCounter
from ssni.purify.engine import run_active


def test_visits_each_sample_its_length_aligned_at_the_end():
    lengths = torch.tensor([2, 0, 3, 1])
    x = torch.zeros(4, 1)
    seen = []

    def step(xk, p, rows):
        seen.append((p, sorted(rows.tolist())))
        return xk + 1 + 10 * torch.tensor([int(r) for r in rows], dtype=xk.dtype)[:, None] * 0

    counter = CallCounter()
    out = run_active(x, lengths, step, counter=counter, grad=False)
    assert seen == [(2, [2]), (1, [0, 2]), (0, [0, 2, 3])]
    assert out[:, 0].tolist() == [2.0, 0.0, 3.0, 1.0]  # original order restored
    assert counter.network_calls == 3 and counter.samples_evaluated == 6


def test_grad_path_is_out_of_place_and_differentiable():
    lengths = torch.tensor([1, 3])
    x = torch.tensor([[1.0], [2.0]], requires_grad=True)
    out = run_active(x, lengths, lambda xk, p, rows: xk * 2, counter=CallCounter(), grad=True)
    assert out.detach()[:, 0].tolist() == [2.0, 16.0]
    out.sum().backward()
    assert x.grad[:, 0].tolist() == [2.0, 8.0]
