"""Purification on the device under test (CUDA when there is one, else the CPU): the same results as on the CPU,
batch invariance (bit-exact on CUDA), the streaming engine equal to active-only execution, and the engine's
GPU-only paths (CUDA graph, float16 autocast, torch.compile). `python -m benchmarks.gpu` runs this file on a GPU.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn

from ssni import SSNI, Calibration, DDPMPurifier, eps_score_norm
from ssni.purify import StreamingPurifier

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
T = torch.tensor([0, 3, 12, 6, 1, 9])
IDS = torch.arange(200, 206)
SUBSET = torch.tensor([4, 0, 5, 2])


@pytest.fixture(autouse=True)
def _exact_float32_convolutions(monkeypatch):
    """cuDNN's default TF32 convolutions round to 10 mantissa bits; these tests compare float32 arithmetic."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)


class Elementwise(nn.Module):
    """ε̂ = 0.1·tanh(x)·(1 + label/1000): no coupling between samples, so results are exactly batch invariant."""

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return 0.1 * torch.tanh(x) * (1 + t.to(x.dtype) / 1000).reshape(-1, 1, 1, 1)


def _ssni(model: nn.Module, reference: torch.Tensor, t_star: int = 12) -> SSNI:
    norms = eps_score_norm(model, reference, 3, seed=121)
    cal = Calibration.from_norms(norms, model_id="tiny", num_levels=3, resolution=reference.shape[-2:], seed=121)
    return SSNI(DDPMPurifier(model, t_star=t_star), cal, bias=2)


def test_purification_on_device_equals_cpu(tiny_eps, images):
    model, x = tiny_eps(channels=3), images(batch=6, channels=3, size=8)
    on_cpu = DDPMPurifier(model, t_star=12).purify(x, T, seed=7, sample_ids=IDS)
    pur = DDPMPurifier(copy.deepcopy(model).to(DEVICE), t_star=12)
    out = pur.purify(x.to(DEVICE), T.to(DEVICE), seed=7, sample_ids=IDS.to(DEVICE))
    assert out.device.type == DEVICE.type
    torch.testing.assert_close(out.cpu(), on_cpu, rtol=1e-4, atol=1e-4)
    e_cpu = eps_score_norm(model, x, 3, seed=5, sample_ids=IDS)
    e_dev = eps_score_norm(pur.model, x.to(DEVICE), 3, seed=5, sample_ids=IDS.to(DEVICE))
    torch.testing.assert_close(e_dev.cpu(), e_cpu, rtol=1e-5, atol=0)


def test_sample_results_do_not_depend_on_the_batch(images):
    model, x = Elementwise(), images(batch=6, channels=3, size=8).to(DEVICE)
    pur = DDPMPurifier(model, t_star=12)
    t, ids = T.to(DEVICE), IDS.to(DEVICE)
    full = pur.purify(x, t, seed=3, sample_ids=ids)[SUBSET.to(DEVICE)]
    index = SUBSET.to(DEVICE)
    alone = pur.purify(x[index], t[index], seed=3, sample_ids=ids[index])
    tol = 0 if DEVICE.type == "cuda" else 1e-6  # a CPU kernel's vector body and scalar tail may round differently
    torch.testing.assert_close(alone, full, rtol=tol, atol=tol)


def test_stream_equals_active_only_on_device(tiny_eps, images):
    model = tiny_eps(channels=3).to(DEVICE)
    ssni = _ssni(model, images(batch=6, channels=3, size=8, seed=1).to(DEVICE))
    x, ids = images(batch=6, channels=3, size=8, seed=2).to(DEVICE), IDS.to(DEVICE)
    stream = StreamingPurifier(ssni, batch_size=4)
    torch.testing.assert_close(stream.purify_all(x, seed=1, sample_ids=ids), ssni.purify(x, seed=1, sample_ids=ids))
    assert stream.stats.samples_evaluated == ssni.samples_evaluated


@pytest.mark.gpu
@pytest.mark.skipif(DEVICE.type != "cuda", reason="needs a CUDA device")
@pytest.mark.parametrize(
    "options",
    [
        dict(cuda_graph=True),
        dict(network_dtype=torch.float16),
        dict(cuda_graph=True, network_dtype=torch.float16),  # autocast's weight cache must not outlive the capture
        dict(compile="default"),
    ],
    ids=["cuda-graph", "float16", "cuda-graph-float16", "compiled"],
)
def test_stream_gpu_options_on_cuda(tiny_eps, images, options):
    model = tiny_eps(channels=3).to(DEVICE)
    ssni = _ssni(model, images(batch=6, channels=3, size=8, seed=1).to(DEVICE))
    x, ids = images(batch=6, channels=3, size=8, seed=2).to(DEVICE), IDS.to(DEVICE)
    expected = StreamingPurifier(ssni, batch_size=4).purify_all(x, seed=1, sample_ids=ids)
    stream = StreamingPurifier(ssni, batch_size=4, **options)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = stream.purify_all(x, seed=1, sample_ids=ids)
    assert not [str(w.message) for w in caught if "capture failed" in str(w.message)]
    if options.get("cuda_graph"):
        assert stream.network.graph is not None and stream.stats.padded_rows > 0  # replayed at the full batch
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, expected, rtol=0, atol=0.05 if "network_dtype" in options else 1e-5)
