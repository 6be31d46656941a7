"""Per-sample walks (the rounds of every sample's own reverse walk) and the previous-timestep lookup."""

from __future__ import annotations

import pytest
import torch

from ssni.diffusers.walks import per_sample_walks, previous_in_rows
from ssni.schedules import step_sequence


def test_every_timestep_walks_are_aligned_at_their_end():
    walks = per_sample_walks(torch.tensor([0, 3, 5]))
    assert walks.T.tolist() == [[-1, -1, -1, -1, -1, 0], [-1, -1, 3, 2, 1, 0], [5, 4, 3, 2, 1, 0]]


@pytest.mark.parametrize("n", [1, 3, 7, 50])
def test_sparse_walks_are_the_distinct_step_sequence_entries(n):
    start = torch.tensor([0, 6, 99, 999, 10])
    walks = per_sample_walks(start, n)
    for b, s in enumerate(start.tolist()):
        walk = [t for t in walks[:, b].tolist() if t >= 0]
        assert walk == sorted(set(step_sequence(s + 1, n)), reverse=True)
        assert walks[-len(walk) :, b].tolist() == walk and (walks[: -len(walk), b] == -1).all()


def test_previous_in_rows_per_sample_and_shared():
    rows = per_sample_walks(torch.tensor([9, 2]), 3).T  # walks [9, 6, 3] (then −1) and [2, 1, 0]
    assert rows.tolist() == [[9, 6, 3], [2, 1, 0]]
    assert previous_in_rows(rows, torch.tensor([6, 1])).tolist() == [3, 0]
    assert previous_in_rows(rows, torch.tensor([3, 0])).tolist() == [-1, -1]
    assert previous_in_rows(rows, torch.tensor([-1, 2])).tolist() == [-1, 1]
    shared = torch.tensor([900, 600, 300, 0])
    assert previous_in_rows(shared, torch.tensor([900, 0, 300])).tolist() == [600, -1, 0]
    with pytest.raises(ValueError, match="timestep 7 of sample 0 is not in"):
        previous_in_rows(rows, torch.tensor([7, 1]))
    with pytest.raises(ValueError, match="3 timesteps for 2"):
        previous_in_rows(rows, torch.tensor([8, 1, 0]))


def test_walk_errors():
    with pytest.raises(TypeError, match="integer tensor"):
        per_sample_walks(torch.tensor([1.0]))
    with pytest.raises(ValueError, match=">= 0"):
        per_sample_walks(torch.tensor([-2]))
    with pytest.raises(ValueError, match="n \\(number of reverse steps\\)"):
        per_sample_walks(torch.tensor([4]), 0)
