"""The CUDA C++ kernels (csrc/cuda/, ssni_kernels._C_cuda) through the public ops, against the reference.

Runs only on a GPU with SSNI_CUDA_BACKEND=cuda and the extension built (`python -m benchmarks.gpu` does that);
elsewhere the module is skipped with the reason."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.gpu

if not torch.cuda.is_available() or os.environ.get("SSNI_CUDA_BACKEND", "triton").lower() != "cuda":
    pytest.skip("needs a CUDA device and SSNI_CUDA_BACKEND=cuda", allow_module_level=True)

import ssni_kernels  # noqa: E402
from ssni_kernels import philox, reference  # noqa: E402

if not any("_C_cuda" in lib for lib in torch.ops.loaded_libraries):
    pytest.fail("SSNI_CUDA_BACKEND=cuda but ssni_kernels._C_cuda is not loaded", pytrace=False)

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
TOL = {torch.float32: 1e-5, torch.float64: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


@pytest.mark.parametrize("row_shape", [(3, 8, 8), (3, 5, 7)], ids=["vector", "ragged"])
def test_noise_inject_generated_noise_is_the_ssni_stream(row_shape):
    # ᾱ = 0 makes the output the noise itself: compare with the independent NumPy stream.
    x = torch.randn(3, *row_shape, device="cuda")
    acp = torch.tensor([0.0], device="cuda")
    ids = torch.tensor([4, 2**32 + 9, -1], device="cuda")
    out = ssni_kernels.noise_inject(x, torch.zeros(3, dtype=torch.long, device="cuda"), acp, seed=99, sample_ids=ids)
    numel = int(np.prod(row_shape))
    for row, sample_id in enumerate([4, 9, 2**32 - 1]):
        expected = philox.normal_noise(numel, 99, sample_id, 0, reference.STREAM_NOISE_INJECT)
        np.testing.assert_allclose(out[row].flatten().cpu().numpy(), expected, atol=2e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("given_noise", [False, True])
def test_noise_inject_matches_reference(dtype, given_noise):
    x = torch.randn(4, 3, 16, 16, device="cuda").to(dtype)
    acp = torch.linspace(0.999, 0.01, 100, device="cuda")
    t = torch.tensor([0, 99, 50, 7], device="cuda")
    kwargs = dict(noise=torch.randn_like(x)) if given_noise else dict(seed=5, step=2)
    out = ssni_kernels.noise_inject(x, t, acp, **kwargs)
    expected = reference.noise_inject(x, t, acp, **kwargs)
    torch.testing.assert_close(out, expected, atol=TOL[dtype], rtol=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("row_shape", [(3, 64, 64), (3, 5, 7)], ids=["vector", "ragged"])
def test_score_norm_matches_reference(dtype, row_shape):
    eps_hat = torch.randn(20 * 3, *row_shape, device="cuda").to(dtype)
    sigma = torch.linspace(0.05, 1.0, 20, device="cuda")
    out = ssni_kernels.score_norm(eps_hat, sigma)
    expected = reference.score_norm(eps_hat, sigma)
    assert out.dtype == expected.dtype
    torch.testing.assert_close(out, expected, atol=0, rtol=1e-12 if dtype == torch.float64 else 1e-5)
    torch.testing.assert_close(ssni_kernels.score_norm(eps_hat, sigma), out, atol=0, rtol=0)  # deterministic
