"""The ops' Philox stream against the independent NumPy definition (ssni_kernels/philox.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ssni_kernels
from ssni_kernels import philox
from ssni_kernels.reference import STREAM_NOISE_INJECT, STREAM_NOISE_LEVELS, STREAM_REVERSE_STEP, STREAM_VP_SDE_STEP

# Random123 known-answer vector: Philox4x32-10, counter 0, key 0.
KAT_ZERO = [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]


def _normals(x_shape, seed, sample_ids=None, step=0) -> torch.Tensor:
    """The op's generated ε: noise_inject of x = 0 with ᾱ = 0 is exactly ε."""
    x = torch.zeros(x_shape)
    t = torch.zeros(x_shape[0], dtype=torch.int64)
    return ssni_kernels.noise_inject(x, t, torch.zeros(1), seed=seed, sample_ids=sample_ids, step=step)


def test_known_answer_vector():
    words = torch.ops.ssni.philox_bits(torch.zeros(1, 4, dtype=torch.int64), 0)
    assert words[0].tolist() == KAT_ZERO


@pytest.mark.parametrize("seed", [0, 123, 2**32 + 5, 2**63 + 2**40 + 1, -7])
def test_bits_match_numpy(seed):
    counters = np.random.default_rng(0).integers(0, 2**32, size=(257, 4), dtype=np.uint64)
    words = ssni_kernels.philox_bits(torch.from_numpy(counters.astype(np.int64)), seed).numpy()
    key = (seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF)
    expected = np.stack(philox.philox4x32_10(tuple(counters[:, j] for j in range(4)), key), axis=1)
    np.testing.assert_array_equal(words.astype(np.uint32), expected)


@pytest.mark.parametrize("shape", [(3, 7), (2, 3, 50, 50), (1, 4097)])  # tails, > one 4096-element chunk
def test_normals_match_numpy(shape):
    seed, ids, step = 2**40 + 99, [5, 2**33 + 1, 0], 11
    sample_ids = torch.tensor(ids[: shape[0]])
    z = _normals(shape, seed, sample_ids, step).reshape(shape[0], -1).numpy()
    for row, sample_id in enumerate(ids[: shape[0]]):
        expected = philox.normal_noise(z.shape[1], seed, sample_id, step, STREAM_NOISE_INJECT)
        np.testing.assert_allclose(z[row], expected, rtol=1e-5, atol=2e-6)


def test_normals_are_standard():
    z = _normals((4, 100_000), seed=3).double()
    assert abs(z.mean().item()) < 5e-3
    assert abs(z.std().item() - 1) < 5e-3
    assert z.abs().max().item() < 6.5  # u ≥ 2^-24 bounds |z| by sqrt(2·24·ln 2) ≈ 5.77


def test_batch_invariance():
    """A sample's noise depends on (seed, sample id, step), not on its batch position or the batch size."""
    shape = (3, 5, 9)
    full = _normals((6, *shape), seed=7, sample_ids=torch.arange(10, 16))
    part = _normals((2, *shape), seed=7, sample_ids=torch.tensor([14, 11]))
    torch.testing.assert_close(part, full[[4, 1]], rtol=0, atol=0)
    default_ids = _normals((6, *shape), seed=7)
    torch.testing.assert_close(default_ids, _normals((6, *shape), seed=7, sample_ids=torch.arange(6)), rtol=0, atol=0)


def test_streams_steps_and_seeds_differ():
    shape = (1, 64)
    base = _normals(shape, seed=1)
    assert not torch.equal(base, _normals(shape, seed=2))
    assert not torch.equal(base, _normals(shape, seed=1, step=1))
    assert not torch.equal(base, _normals(shape, seed=1, sample_ids=torch.tensor([1])))


@pytest.mark.parametrize(
    "op, stream",
    [("levels", STREAM_NOISE_LEVELS), ("reverse", STREAM_REVERSE_STEP), ("vp", STREAM_VP_SDE_STEP)],
)
def test_each_op_draws_its_stream(op, stream):
    """Each op reads its own stream; with coefficients that isolate ε the output is the NumPy stream."""
    n, seed, step = 40, 9, 3
    x, ids = torch.zeros(2, n, dtype=torch.float64), torch.tensor([4, 8])
    if op == "levels":  # level k draws with step = k
        out = ssni_kernels.noise_inject_levels(
            x, torch.zeros(step + 1), torch.ones(step + 1), seed=seed, sample_ids=ids
        )
        out = out[step * 2 :]
    elif op == "reverse":  # x = ε̂ = 0 leaves c1·z, c1 = η·sqrt((1 − a/a')(1 − a')/(1 − a))
        a, a_next = torch.full((2,), 0.5, dtype=torch.float64), torch.full((2,), 0.75, dtype=torch.float64)
        out = ssni_kernels.reverse_step(x, x, a, a_next, eta=1.0, seed=seed, sample_ids=ids, step=step)
        out = out / (((1 - 0.5 / 0.75) * (1 - 0.75) / (1 - 0.5)) ** 0.5)
    else:  # x = ε̂ = 0 leaves sqrt(β(t)·dt)·z
        t = torch.full((2,), 0.5, dtype=torch.float64)
        out = ssni_kernels.vp_sde_step(x, x, t, 0.01, seed=seed, sample_ids=ids, step=step)
        out = out / (0.01 * (0.1 + 0.5 * 19.9)) ** 0.5
    for row, sample_id in enumerate(ids.tolist()):
        expected = philox.normal_noise(n, seed, sample_id, step, stream).astype(np.float64)
        np.testing.assert_allclose(out[row].numpy(), expected, rtol=1e-5, atol=2e-6)
