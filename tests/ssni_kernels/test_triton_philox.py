"""The Triton Philox stream against the independent NumPy definition (`ssni_kernels/philox.py`): bits and normals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from triton_device import DEVICE, use_small_tiles  # (sets up the interpreter first)

from ssni_kernels import philox, reference
from ssni_kernels.triton import noise
from ssni_kernels.triton.philox import philox_bits

pytestmark = pytest.mark.triton

SEEDS = [0, 1234, 2**32 - 1, 0x9E3779B97F4A7C15]


@pytest.mark.parametrize("seed", SEEDS)
def test_words_bit_identical_to_numpy(seed):
    counters = torch.randint(0, 2**32, (777, 4), generator=torch.Generator().manual_seed(seed % 1000))
    counters[:3] = torch.tensor([0, 2**32 - 1, 1])[:, None]  # edge words
    words = philox_bits(counters.to(DEVICE), seed).cpu().numpy()
    expected = philox.philox4x32_10(tuple(counters.numpy().T.astype(np.uint32)), (seed & 0xFFFFFFFF, seed >> 32))
    for j in range(4):
        np.testing.assert_array_equal(words[:, j], expected[j].astype(np.int64))


def test_known_answer_vector():
    # Philox4x32-10 known-answer test of Salmon et al. (Random123 kat_vectors): counter = key = all ones.
    counters = torch.full((1, 4), 0xFFFFFFFF, dtype=torch.int64, device=DEVICE)
    words = philox_bits(counters, 0xFFFFFFFF_FFFFFFFF).cpu().flatten().tolist()
    assert words == [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]


@pytest.mark.parametrize("numel", [1, 4, 105])
def test_normals_match_numpy_stream(numel, monkeypatch):
    use_small_tiles(monkeypatch)
    seed, step, stream = 0x1234_5678_9ABC_DEF0, 7, 3
    ids = torch.tensor([0, 5, 2**32 + 5, -1], device=DEVICE)
    z = noise.normal_noise((numel,), seed, ids, step, stream).cpu().numpy()
    for row, sample_id in enumerate([0, 5, 5, 2**32 - 1]):
        np.testing.assert_allclose(z[row], philox.normal_noise(numel, seed, sample_id, step, stream), atol=2e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_normals_match_torch_reference(dtype):
    ids = torch.tensor([3, 1, 4], device=DEVICE)
    z = noise.normal_noise((3, 5, 7), 42, ids, 2, reference.STREAM_REVERSE_STEP, dtype=dtype)
    expected = reference.normal_noise((3, 5, 7), 42, ids, 2, reference.STREAM_REVERSE_STEP, dtype=dtype)
    assert z.dtype == dtype and z.shape == (3, 3, 5, 7)
    torch.testing.assert_close(z, expected, atol=2e-6, rtol=0) if dtype in (torch.float32, torch.float64) else (
        torch.testing.assert_close(z.float(), expected.float(), atol=0, rtol=1e-2)
    )


def test_sample_noise_is_batch_invariant():
    alone = noise.normal_noise((50,), 9, torch.tensor([17], device=DEVICE), 0, 0)
    in_batch = noise.normal_noise((50,), 9, torch.tensor([3, 17, 8], device=DEVICE), 0, 0)
    torch.testing.assert_close(alone[0], in_batch[1], atol=0, rtol=0)
    assert not torch.equal(in_batch[0], in_batch[1])


def test_steps_streams_and_seeds_give_different_noise():
    ids = torch.tensor([0], device=DEVICE)
    base = noise.normal_noise((64,), 1, ids, 0, 0)
    for other in (
        noise.normal_noise((64,), 2, ids, 0, 0),
        noise.normal_noise((64,), 1, ids, 1, 0),
        noise.normal_noise((64,), 1, ids, 0, 1),
        noise.normal_noise((64,), 1 + 2**32, ids, 0, 0),
    ):
        assert (base - other).abs().max() > 0.1
