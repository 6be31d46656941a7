"""Per-sample timesteps: each sample's reverse walk from its own start, and the previous timestep of each sample.

Timesteps here are diffusers timesteps: indices into the scheduler's ᾱ (0 … T−1), −1 after the last step (ᾱ = 1,
or DDIM's `final_alpha_cumprod`). A timestep of −1 given to a step means "this sample does not move".

The walk of a sample that starts at timestep s (noised to ᾱ[s]) with n steps visits the distinct entries of
`ssni.schedules.step_sequence(s + 1, n)` from the top down: ceil(k·(s + 1)/n) − 1 for k = n … 1, i.e. n evenly
spaced timesteps from s down to ceil((s + 1)/n) − 1, whose step goes to −1 (every timestep s, s − 1, …, 0 when n
is None or n > s). These are the walks of `ssni.purify.DDPMPurifier` with t = s + 1.
"""

from __future__ import annotations

import torch

from ssni.schedules import effective_indices

__all__ = ["per_sample_walks", "previous_in_rows", "WAITING"]

WAITING = -1  # a walk table's entry for a sample that has not started (or, given to a step: does not move)


def per_sample_walks(start_timesteps: torch.Tensor, num_inference_steps: int | None = None) -> torch.Tensor:
    """The rounds of the per-sample walks, aligned at their end: int64 [L, B], L = the longest walk.

    start_timesteps: integer [B], each in [0, T); num_inference_steps: steps per walk (None: every timestep).
    Row r holds every sample's timestep at round r: WAITING (−1) until the sample's walk begins (a walk of L_b
    steps begins at round L − L_b), then its walk from start_timesteps[b] down; the last row is the last step of
    every sample (to timestep −1). Iterating over the rows is the diffusers loop `for t in scheduler.timesteps`.
    """
    if not isinstance(start_timesteps, torch.Tensor) or start_timesteps.dim() != 1:
        raise TypeError("start_timesteps must be an integer tensor of shape [B]")
    if start_timesteps.dtype.is_floating_point or start_timesteps.dtype == torch.bool:
        raise TypeError(f"start_timesteps must be an integer tensor, got {start_timesteps.dtype}")
    start = start_timesteps.to(torch.int64)
    if start.numel() and int(start.min()) < 0:
        raise ValueError(f"start_timesteps must be >= 0, got {int(start.min())}")
    # effective_indices counts steps from the end of each walk: column p is step p before the last one.
    indices, lengths = effective_indices(start + 1, num_inference_steps)
    p = torch.arange(indices.shape[1] - 1, -1, -1, device=start.device)
    table = torch.where(p[None, :] < lengths[:, None], indices[:, p], WAITING)
    return table.T.contiguous()


def previous_in_rows(rows: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """Each sample's next timestep in its own descending sequence: int64 [B] (−1 after the last entry).

    rows: int64 [B, N] or [N] (one sequence for every sample), descending, WAITING entries allowed before the
    first timestep; timesteps: int64 [B]. A sample at WAITING stays at WAITING. ValueError when a timestep is not
    in its sequence.
    """
    rows = rows.to(timesteps.device)
    if rows.dim() == 1:
        rows = rows[None, :].expand(timesteps.shape[0], -1)
    if rows.shape[0] != timesteps.shape[0]:
        raise ValueError(f"{timesteps.shape[0]} timesteps for {rows.shape[0]} per-sample timestep sequences")
    waiting = timesteps == WAITING
    match = (rows == timesteps[:, None]) & ~waiting[:, None]
    found = match.any(dim=1) | waiting
    if not bool(found.all()):
        b = int((~found).nonzero()[0, 0])
        raise ValueError(
            f"timestep {int(timesteps[b])} of sample {b} is not in its timestep sequence {rows[b].tolist()}"
        )
    following = torch.cat([rows, rows.new_full((rows.shape[0], 1), -1)], dim=1)
    position = match.to(torch.int8).argmax(dim=1)
    previous = following.gather(1, (position + 1)[:, None])[:, 0]
    return torch.where(waiting, WAITING, previous)
