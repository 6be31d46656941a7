"""EPS score norm (§2) against a direct per-level loop; chunking, batch invariance, labels, bad inputs."""

from __future__ import annotations

import pytest
import torch

from ssni import eps_score_norm
from ssni.models.interface import CallCounter
from ssni.schedules import eps_levels
from ssni_kernels.reference import STREAM_NOISE_LEVELS, normal_noise


def _direct_norm(model, x, num_levels, seed, ids):
    t, m, s = eps_levels(num_levels)
    xs = (2 * x - 1).to(torch.float64)
    total = torch.zeros_like(xs)
    for k in range(num_levels):
        z = normal_noise(x.shape[1:], seed, ids, k, STREAM_NOISE_LEVELS).to(torch.float64)
        xk = m[k] * xs + s[k] * z
        with torch.no_grad():
            eps = model(xk.float(), torch.full((x.shape[0],), 999 * t[k].item())).to(torch.float64)
        total += -eps / s[k]
    return torch.linalg.vector_norm((total / num_levels).flatten(1), dim=1)


def test_matches_direct_loop(tiny_eps, images):
    model, x = tiny_eps(channels=2), images(batch=3, channels=2)
    ids = torch.tensor([4, 9, 2])
    e = eps_score_norm(model, x, 5, seed=121, sample_ids=ids)
    assert e.shape == (3,) and e.dtype == torch.float32
    torch.testing.assert_close(e.to(torch.float64), _direct_norm(model, x, 5, 121, ids), rtol=1e-4, atol=1e-3)


def test_labels_are_continuous_999t(tiny_eps, images):
    model = tiny_eps()
    eps_score_norm(model, images(batch=2), 3, seed=0)
    assert [float(lab) for lab in model.labels[:3]] == [1.0, 1.5, 2.0]  # the truncation probe, once per network
    model.labels.clear()
    eps_score_norm(model, images(batch=2), 3, seed=0)
    labels = torch.cat(model.labels)
    assert labels.dtype == torch.float32
    expected = torch.tensor([0.999, 0.999, 1.998, 1.998, 2.997, 2.997])  # level-major K·B
    torch.testing.assert_close(labels, expected)


def test_chunking_and_batch_invariance(tiny_eps, images):
    model, x = tiny_eps(), images(batch=5)
    ids = torch.arange(10, 15)
    full = eps_score_norm(model, x, 4, seed=7, sample_ids=ids)
    counter = CallCounter()
    chunked = eps_score_norm(model, x, 4, seed=7, sample_ids=ids, chunk_size=6, counter=counter)
    torch.testing.assert_close(chunked, full, rtol=1e-5, atol=1e-5)
    assert counter.samples_evaluated == 20 and counter.network_calls == 5  # 1 sample (4 levels) per chunk
    perm = torch.tensor([3, 0, 4, 1, 2])
    shuffled = eps_score_norm(model, x[perm], 4, seed=7, sample_ids=ids[perm])
    torch.testing.assert_close(shuffled, full[perm], rtol=1e-5, atol=1e-5)
    single = torch.cat([eps_score_norm(model, x[i : i + 1], 4, seed=7, sample_ids=ids[i : i + 1]) for i in range(5)])
    torch.testing.assert_close(single, full, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(eps_score_norm(model, x, 4, seed=8, sample_ids=ids), full)


def test_learned_sigma_output_keeps_first_channels(tiny_eps, images):
    x = images(batch=2, channels=3)
    six = tiny_eps(channels=3, out_channels=6)
    three = tiny_eps(channels=3, out_channels=3)
    three.c1.load_state_dict(six.c1.state_dict())
    three.c2.weight.data.copy_(six.c2.weight.data[:3])
    three.c2.bias.data.copy_(six.c2.bias.data[:3])
    torch.testing.assert_close(eps_score_norm(six, x, 3, seed=1), eps_score_norm(three, x, 3, seed=1))


def test_bad_inputs(tiny_eps, images):
    model, x = tiny_eps(), images()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        eps_score_norm(model, x * 2 - 1, 3, seed=0)
    with pytest.raises(ValueError, match="B, C, H, W"):
        eps_score_norm(model, x[0], 3, seed=0)
    with pytest.raises(ValueError, match="empty"):
        eps_score_norm(model, x[:0], 3, seed=0)
    with pytest.raises(ValueError, match="NaN"):
        eps_score_norm(model, torch.full_like(x, float("nan")), 3, seed=0)
    with pytest.raises(ValueError, match="num_levels"):
        eps_score_norm(model, x, 0, seed=0)
    with pytest.raises(ValueError, match="seed"):
        eps_score_norm(model, x, 3, seed=-1)
    with pytest.raises(ValueError, match="sample_ids"):
        eps_score_norm(model, x, 3, seed=0, sample_ids=torch.arange(3))
    with pytest.raises(ValueError, match="chunk_size"):
        eps_score_norm(model, x, 3, seed=0, chunk_size=0)
