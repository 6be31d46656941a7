"""The CPU kernels' per-ISA builds (csrc/cpu/isa_kernels.h): every instruction set this CPU runs gives the same
bits as the scalar build, and SSNI_CPU_CAPABILITY caps the one the ops use."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import ssni_kernels
from ssni_kernels import _library, philox

pytestmark = pytest.mark.skipif(not _library.cpu_kernels_compiled(), reason="the CPU extension is not built")

WIDE_ISAS = ("avx2", "avx512")
# (seed, sample_id, step, stream, group0, n_groups): tails of every vector width, offsets, the uint32 counter wrap.
STREAMS = [
    (0, 0, 0, 0, 0, 1),
    (1234, 5, 3, 0, 0, 1024),
    (2**40 + 99, 2**33 + 1, 11, 2, 7, 301),
    (-7, 4, 2**31 + 5, 3, 2**32 - 40, 77),
    (2**63 - 1, 2**31 - 1, 0, 1, 123_456, 4097),
]


def _capabilities() -> list[str]:
    return list(torch.ops.ssni_cpu.capabilities())


def _cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux), empty where /proc/cpuinfo cannot be read."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return set()
    return next((set(line.split(":", 1)[1].split()) for line in lines if line.startswith("flags")), set())


def _require(isa: str) -> None:
    """Skips unless the ops can run `isa`, saying whether the CPU or the build lacks it."""
    if isa in _capabilities():
        return
    cpu_flag = {"avx2": "avx2", "avx512": "avx512f"}[isa]
    if cpu_flag not in _cpu_flags():
        pytest.skip(f"this CPU has no {isa.upper()} ({cpu_flag} not in /proc/cpuinfo): its path is not tested here")
    pytest.skip(f"this build of the CPU library has no {isa} kernels: {_capabilities()}")


def test_default_is_always_available_and_the_widest_is_active():
    available = _capabilities()
    assert available[0] == "default" and set(available) <= {"default", *WIDE_ISAS}
    if not os.environ.get("SSNI_CPU_CAPABILITY"):
        assert torch.ops.ssni_cpu.capability() == available[-1]


@pytest.mark.parametrize("isa", WIDE_ISAS)
@pytest.mark.parametrize("stream", STREAMS, ids=lambda s: f"g0={s[4]}-n={s[5]}")
def test_isa_matches_scalar_bit_for_bit(isa, stream):
    _require(isa)
    words = torch.ops.ssni_cpu.philox_words(*stream, isa)
    normals = torch.ops.ssni_cpu.philox_normals(*stream, isa)
    assert torch.equal(words, torch.ops.ssni_cpu.philox_words(*stream, "default"))
    assert torch.equal(
        normals.view(torch.int32), torch.ops.ssni_cpu.philox_normals(*stream, "default").view(torch.int32)
    )


@pytest.mark.parametrize("stream", STREAMS, ids=lambda s: f"g0={s[4]}-n={s[5]}")
def test_scalar_words_match_numpy_and_normals_match_definition(stream):
    seed, sample_id, step, stream_id, group0, n_groups = stream
    words = torch.ops.ssni_cpu.philox_words(*stream, "default").numpy().astype(np.uint32)
    groups = ((group0 + np.arange(n_groups, dtype=np.uint64)) % 2**32).astype(np.uint32)
    key = (seed % 2**32, (seed % 2**64) >> 32)
    mask = 2**32 - 1
    expected = philox.philox4x32_10((groups, step & mask, sample_id & mask, stream_id & mask), key)
    np.testing.assert_array_equal(words, np.stack(expected, axis=1))
    if group0 == 0:  # the definition's normals start at group 0
        normals = torch.ops.ssni_cpu.philox_normals(*stream, "default").numpy()
        definition = philox.normal_noise(4 * n_groups, seed % 2**64, sample_id & mask, step & mask, stream_id & mask)
        np.testing.assert_allclose(normals, definition, rtol=1e-5, atol=2e-6)


def test_unavailable_or_unknown_isa_is_an_error():
    with pytest.raises(RuntimeError, match="capability must be one of default, avx2, avx512"):
        torch.ops.ssni_cpu.philox_normals(0, 0, 0, 0, 0, 4, "sse2")
    missing = [isa for isa in WIDE_ISAS if isa not in _capabilities()]
    if missing:
        with pytest.raises(RuntimeError, match="not available here"):
            torch.ops.ssni_cpu.philox_normals(0, 0, 0, 0, 0, 4, missing[0])


# Ops whose every kernel is per-ISA: the Philox generator, the fused affine loop, the score_norm loops.
_OPS_SCRIPT = textwrap.dedent(
    """
    import sys
    import torch
    import ssni_kernels

    g = torch.Generator().manual_seed(0)
    x, e = torch.randn(3, 3, 45, 47, generator=g), torch.randn(3, 3, 45, 47, generator=g)
    a = torch.tensor([0.3, 0.5, 0.7])
    t = torch.tensor([5, 400, 999])
    ac = torch.linspace(0.9999, 0.01, 1000)
    outputs = {
        "capability": torch.ops.ssni_cpu.capability(),
        "noise_inject": ssni_kernels.noise_inject(x, t, ac, seed=3, step=2),
        "noise_inject_given": ssni_kernels.noise_inject(x, t, ac, noise=e),
        "levels": ssni_kernels.noise_inject_levels(x, torch.linspace(0.9, 0.1, 4), torch.linspace(0.1, 0.9, 4), seed=1),
        "reverse_step": ssni_kernels.reverse_step(x, e, a, a + 0.1, eta=1.0, seed=4, step=7),
        "vp_sde_step": ssni_kernels.vp_sde_step(x.double(), e.double(), a.double(), 0.01, seed=4, step=7),
        "score_norm": ssni_kernels.score_norm(torch.cat([x, e, x * 0.5]), torch.tensor([0.1, 0.4, 0.9])),
        "score_norm_half": ssni_kernels.score_norm(torch.cat([x, e]).half(), torch.tensor([0.1, 0.9])),
    }
    torch.save(outputs, sys.argv[1])
    """
)


def _ops_under(capability: str | None, path: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    env.pop("SSNI_CPU_CAPABILITY", None)
    if capability is not None:
        env["SSNI_CPU_CAPABILITY"] = capability
    result = subprocess.run(
        [sys.executable, "-c", _OPS_SCRIPT, str(path)], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return torch.load(path)


def test_ops_give_the_same_bits_under_the_scalar_isa(tmp_path):
    """SSNI_CPU_CAPABILITY=default makes the ops use the scalar build, which gives the widest one's bits."""
    widest = _ops_under(None, tmp_path / "widest.pt")
    scalar = _ops_under("default", tmp_path / "scalar.pt")
    assert widest.pop("capability") == _capabilities()[-1] and scalar.pop("capability") == "default"
    for name, out in widest.items():
        assert out.dtype == scalar[name].dtype and torch.equal(out, scalar[name]), name
        assert torch.isfinite(out).all(), name


def test_unknown_capability_in_the_environment_is_an_error():
    env = {**os.environ, "SSNI_CPU_CAPABILITY": "sse9", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    script = (
        "import torch, ssni_kernels\n"
        "ssni_kernels.noise_inject(torch.zeros(1, 4), torch.zeros(1, dtype=torch.long), torch.ones(1), seed=1)"
    )
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "SSNI_CPU_CAPABILITY must be one of default, avx2, avx512, got 'sse9'" in result.stderr


def test_output_larger_than_the_cache_is_exact():
    """Outputs larger than the last-level cache go through non-temporal stores (rows here start unaligned); the
    values are those of the same float32 arithmetic in torch."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(24, 3, 512, 513, generator=g)  # 76 MiB
    noise = torch.randn(x.shape, generator=g)
    alphas_cumprod = torch.linspace(0.999, 0.01, 1000)
    t = torch.arange(24) * 41
    out = ssni_kernels.noise_inject(x, t, alphas_cumprod, noise=noise)
    ac = alphas_cumprod.double()[t]
    cx, cz = ac.sqrt().float().view(-1, 1, 1, 1), (1 - ac).sqrt().float().view(-1, 1, 1, 1)
    assert torch.equal(out, cx * x + cz * noise)


def _ops_on_threads(threads: int, batch: int) -> dict:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(batch)
        x, e = torch.randn(batch, 1, 28, 28, generator=g), torch.randn(batch, 1, 28, 28, generator=g)
        levels = torch.randn(5 * batch, 1, 28, 28, generator=g, requires_grad=True)
        norm = ssni_kernels.score_norm(levels, torch.linspace(0.1, 1.0, 5))
        a = torch.linspace(0.2, 0.8, batch)
        return {
            "noise_inject": ssni_kernels.noise_inject(
                x, torch.arange(batch) * 7 % 1000, torch.linspace(0.99, 0.1, 1000), seed=5
            ),
            "levels": ssni_kernels.noise_inject_levels(
                x, torch.linspace(0.9, 0.1, 5), torch.linspace(0.1, 0.9, 5), seed=2
            ),
            "reverse_step": ssni_kernels.reverse_step(x, e, a, a + 0.1, eta=1.0, seed=4, step=3),
            "score_norm": norm.detach(),
            "score_norm_backward": torch.autograd.grad(norm.sum(), levels)[0],
        }
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("batch", [1, 16, 64, 700])
def test_ops_give_the_same_bits_on_one_thread_and_on_two(batch):
    """MNIST batches (1-64 × 784 elements, under the grain: the calling thread alone) and a larger one (chunks
    claimed by the threads, partial sums per chunk): the bits do not depend on the threads."""
    one, two = _ops_on_threads(1, batch), _ops_on_threads(2, batch)
    for name, out in one.items():
        assert torch.equal(out, two[name]), name
