"""The ssni torch.library namespace (ssni_kernels/_library.py): which kernels serve the ops, the reference fallback,
the kernels' own checks, and one compiled graph through every public op."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from op_cases import batch, ddpm_alphas_cumprod

import ssni_kernels
from ssni_kernels import _library


def test_compiled_cpu_kernels_are_used():
    if os.environ.get("SSNI_NO_EXTENSION") == "1":
        pytest.skip("SSNI_NO_EXTENSION=1 selects the reference path")
    assert _library.cpu_kernels_compiled(), f"ssni_kernels._C not loaded: {_library.CPU_LIBRARY.reason}"


def test_every_op_has_a_reference_fallback_and_a_kernel_on_cpu():
    assert set(_library.REFERENCE_KERNELS) == set(_library.SCHEMAS)
    assert all(_library.has_kernel(name, "CPU") for name in _library.SCHEMAS)
    assert _library.schema_argument_names("score_norm") == ["eps_hat", "sigma"]
    assert _library.schema_argument_names("no_such_op") is None


def test_reference_fallback_without_extension():
    """SSNI_NO_EXTENSION=1: one clear warning at import, then every op still runs (the reference)."""
    script = textwrap.dedent(
        """
        import warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import ssni_kernels
            from ssni_kernels import _library, reference
        import torch
        messages = [str(w.message) for w in caught if "ssni_kernels" in str(w.message)]
        assert len(messages) == 1 and "reference" in messages[0] and "SSNI_NO_EXTENSION" in messages[0], messages
        assert not _library.cpu_kernels_compiled()
        x, ac, t = torch.randn(2, 3, 4), torch.linspace(0.99, 0.1, 10), torch.tensor([0, 9])
        torch.testing.assert_close(
            ssni_kernels.noise_inject(x, t, ac, seed=3), reference.noise_inject(x, t, ac, seed=3), rtol=0, atol=0
        )
        e = torch.randn(4, 3, 4, requires_grad=True)
        ssni_kernels.score_norm(e, torch.tensor([0.1, 0.2])).sum().backward()
        assert e.grad is not None and e.grad.abs().sum() > 0
        assert torch.ops.ssni.philox_bits(torch.zeros(1, 4, dtype=torch.int64), 0)[0, 0].item() == 0x6627E8D5
        print("ok")
        """
    )
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "SSNI_NO_EXTENSION": "1", "PYTHONPATH": str(repo)}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


def test_kernel_checks_direct_calls():
    """torch.ops.ssni.* without the wrappers still refuses out-of-range indices (no out-of-bounds read)."""
    if not _library.cpu_kernels_compiled():
        pytest.skip("checks of the compiled CPU kernels; the extension is not loaded")
    x, ac, sigma = torch.zeros(2, 3, 4, 4), ddpm_alphas_cumprod().float(), torch.tensor([0.1, 0.2])
    a, a_next = ac[[1, 2]], ac[[0, 1]]
    with pytest.raises(RuntimeError, match=r"t\[1\] = 1000 is outside"):
        torch.ops.ssni.noise_inject(x, torch.tensor([0, 1000]), ac, None, 0, None, 0)
    with pytest.raises(RuntimeError, match="not a multiple of K"):
        torch.ops.ssni.score_norm(torch.zeros(3, 4), sigma)
    with pytest.raises(RuntimeError, match=r"steps must have shape \[2\]"):
        torch.ops.ssni.reverse_step(x, x, a, a_next, 1.0, None, 0, None, 0, None, torch.tensor([1]))


def test_compile_fullgraph_all_ops():
    """One compiled graph calls every public op: no graph breaks (fullgraph) and the eager results."""
    ac = ddpm_alphas_cumprod().float()
    t = torch.tensor([400, 10, 999])
    a, a_next = ac[t], ac[t - 1]
    x, e = batch((3, 2, 2, 3)), batch((3, 2, 2, 3), seed=1)
    vp_t = torch.tensor([0.2, 0.05, 1.0])
    words = torch.tensor([3, 0, 7], dtype=torch.int32)

    def pipeline(x, e):
        xt = ssni_kernels.noise_inject(x, t, ac, seed=3)
        levels = ssni_kernels.noise_inject_levels(x, a[:2], a_next[:2], seed=4)
        norm = ssni_kernels.score_norm(levels, a[:2])
        x1 = ssni_kernels.reverse_step(xt, e, a, a_next, eta=1.0, seed=5, step=1)
        x2 = ssni_kernels.vp_sde_step(x1, e, vp_t, 1e-3, seed=6)
        x3 = ssni_kernels.reverse_step(x2, e, 0.5, 0.7, eta=1.0, seed=7, step=words, active=True)  # broadcasts
        return x3, norm

    torch._dynamo.reset()
    compiled = torch.compile(pipeline, fullgraph=True, backend="aot_eager")
    for got, expected in zip(compiled(x, e), pipeline(x, e)):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
