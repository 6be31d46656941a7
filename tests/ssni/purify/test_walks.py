"""Active-only execution of planned walks: visits, prefix compaction, order restoration, counting, gradients."""

from __future__ import annotations

import torch
from torch import nn

from ssni.models.interface import CallCounter
from ssni.purify.walks import Walks, run_active


class _Host:
    """A host whose step adds coef_a and records (p, rows' ids, labels, words) of every call."""

    def __init__(self, grad_checkpoint=True):
        self.counter = CallCounter()
        self.grad_checkpoint = grad_checkpoint
        self.seen = []
        self.model = lambda x, labels: torch.zeros_like(x)

    def apply(self, x, eps, coef_a, coef_b, words, sample_ids, *, seed):
        self.seen.append((words, sorted(sample_ids.tolist())))
        return x * coef_b[:, None] + coef_a[:, None]


def _walks(lengths, start, word_offset=0):
    lengths = torch.tensor(lengths)
    table = torch.zeros(len(lengths), int(lengths.max()), 3, dtype=torch.float64)
    table[..., 1] = 1.0
    table[..., 2] = 1.0
    return Walks(start, table, lengths, word_offset)


def test_visits_each_sample_its_length_aligned_at_the_end():
    host = _Host()
    walks = _walks([2, 0, 3, 1], torch.zeros(4, 1, dtype=torch.float64), word_offset=100)
    out = run_active(host, walks, torch.tensor([10, 11, 12, 13]), seed=0, grad=False)
    assert host.seen == [(102, [12]), (101, [10, 12]), (100, [10, 12, 13])]
    assert out[:, 0].tolist() == [2.0, 0.0, 3.0, 1.0]  # original order restored
    assert host.counter.network_calls == 3 and host.counter.samples_evaluated == 6


def test_grad_path_is_out_of_place_and_differentiable():
    for grad_checkpoint in (True, False):
        host = _Host(grad_checkpoint)
        x = torch.tensor([[1.0], [2.0]], dtype=torch.float64, requires_grad=True)
        walks = _walks([1, 3], x)
        walks.table[..., 1] = 0.0
        walks.table[..., 2] = 2.0
        out = run_active(host, walks, torch.tensor([0, 1]), seed=0, grad=True)
        assert out.detach()[:, 0].tolist() == [2.0, 16.0]
        out.sum().backward()
        assert x.grad[:, 0].tolist() == [2.0, 8.0]


def test_labels_reach_the_network_as_float32():
    seen = []
    host = _Host()
    host.model = nn.Identity()
    host.model = lambda x, labels: seen.append(labels) or torch.zeros_like(x)
    walks = _walks([2, 1], torch.zeros(2, 1, dtype=torch.float64))
    walks.table[:, :, 0] = torch.tensor([[7.0, 9.0], [5.0, 0.0]], dtype=torch.float64)
    run_active(host, walks, torch.tensor([0, 1]), seed=0, grad=False)
    assert [s.dtype for s in seen] == [torch.float32, torch.float32]
    assert [s.tolist() for s in seen] == [[9.0], [7.0, 5.0]]
