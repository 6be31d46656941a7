"""The public ops on the device under test, through the dispatcher: CUDA when there is one (the Triton kernels, or
the CUDA C++ ones with SSNI_CUDA_BACKEND=cuda), else the CPU kernels.

Each op against the reference run on the same device (float32, float16, bfloat16; generated noise; a Philox step
word per sample), batch invariance (a sample's result does not depend on its batch: bit-exact on CUDA), the
generated noise against the CPU's stream (the Philox words bit-exact), and torch.compile on CUDA.
`python -m benchmarks.gpu` runs this file on a GPU; on a CPU-only machine it checks the CPU kernels the same way.
"""

from __future__ import annotations

import pytest
import torch
from op_cases import IDS, NOISE_ATOL, SEED, assert_close_dtype, batch, ddpm_alphas_cumprod, dtype_id

import ssni_kernels
from ssni_kernels import reference

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
OPS = ["noise_inject", "noise_inject_levels", "score_norm", "reverse_step", "vp_sde_step"]
B, ROW = len(IDS), (3, 20, 21)  # 1260 elements per sample: more than one 1024-element GPU tile, and a ragged tail
K = 3  # levels of noise_inject_levels / score_norm
STEP_WORDS = torch.tensor([0, 5, 2**32 - 1, 7, 123])  # a Philox step word per sample
SUBSET = torch.tensor([4, 0, 2])  # some samples of the batch, reordered


def _inputs(op: str, dtype: torch.dtype) -> dict:
    """Keyword arguments of `op` on the CPU: generated noise (seed, per-sample ids and step words)."""
    x = batch((B, *ROW), dtype, seed=1)
    eps_hat = batch((B, *ROW), dtype, seed=2)
    ac = ddpm_alphas_cumprod()
    t = torch.tensor([0, 999, 500, 17, 250])
    if op == "noise_inject":
        return dict(x=x, t=t, alphas_cumprod=ac.float(), seed=SEED, sample_ids=IDS, step=4)
    if op == "noise_inject_levels":
        mean_coef = torch.tensor([0.99, 0.7, 0.2])
        return dict(x=x, mean_coef=mean_coef, std=(1 - mean_coef**2).sqrt(), seed=SEED, sample_ids=IDS)
    if op == "score_norm":
        return dict(eps_hat=batch((K * B, *ROW), dtype, seed=3), sigma=torch.tensor([0.05, 0.4, 1.0]))
    active = torch.tensor([True, True, False, True, True])
    if op == "reverse_step":
        a, a_next = ac[t].float(), ac[(t - 1).clamp_min(0)].float()
        a_next[0] = 1.0  # the last step
        return dict(x=x, eps_hat=eps_hat, a=a, a_next=a_next, eta=1.0, seed=SEED, sample_ids=IDS, step=STEP_WORDS,
                    active=active)  # fmt: skip
    vp_t = torch.tensor([0.5, 0.01, 1.0, 0.3, 0.7])
    return dict(x=x, eps_hat=eps_hat, t=vp_t, dt=1e-3, seed=SEED, sample_ids=IDS, step=STEP_WORDS, active=active)


def _on(kwargs: dict, device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}


def _samples(op: str, kwargs: dict, index: torch.Tensor) -> dict:
    """The same call for the samples `index` only (level-major rows of score_norm's input)."""
    out = dict(kwargs)
    for name in ("x", "t", "eps_hat", "a", "a_next", "sample_ids", "step", "active"):
        value = kwargs.get(name)
        if isinstance(value, torch.Tensor):
            out[name] = value[index.to(value.device)]
    if op == "score_norm":
        eps = kwargs["eps_hat"]
        levels = eps.reshape(K, B, *eps.shape[1:])[:, index.to(eps.device)]
        out["eps_hat"] = levels.reshape(-1, *eps.shape[1:])
    return out


def _rows(op: str, result: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The rows of `result` that belong to the samples `index`."""
    index = index.to(result.device)
    if op == "noise_inject_levels":
        return result.reshape(K, B, *result.shape[1:])[:, index].reshape(-1, *result.shape[1:])
    return result[index]


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("op", OPS)
def test_op_matches_reference_on_device(op, dtype):
    kwargs = _on(_inputs(op, dtype), DEVICE)
    out = getattr(ssni_kernels, op)(**kwargs)
    expected = getattr(reference, op)(**kwargs)
    assert out.device.type == DEVICE.type and out.dtype == expected.dtype and out.shape == expected.shape
    assert_close_dtype(out, expected, generated_noise=op != "score_norm")


@pytest.mark.parametrize("op", OPS)
def test_sample_results_do_not_depend_on_the_batch(op):
    kwargs = _on(_inputs(op, torch.float32), DEVICE)
    public = getattr(ssni_kernels, op)
    full = _rows(op, public(**kwargs), SUBSET)
    alone = public(**_samples(op, kwargs, SUBSET))
    # score_norm: the same per-sample reduction order, but float32 sums may still be re-associated by a CPU kernel.
    exact = DEVICE.type == "cuda" and op != "score_norm"
    torch.testing.assert_close(alone, full, rtol=0 if exact else 1e-6, atol=0 if exact else 1e-6)


def test_generated_noise_is_the_cpu_stream():
    """Philox words bit-exact on the device and on the CPU; normals (float32 Box–Muller) within a few ulps."""
    g = torch.Generator().manual_seed(0)
    counters = torch.randint(0, 2**32, (1 << 16, 4), generator=g)
    seed = 0x9E3779B97F4A7C15  # both key words non-zero, above 2**63
    words = ssni_kernels.philox_bits(counters.to(DEVICE), seed).cpu()
    assert torch.equal(words, ssni_kernels.philox_bits(counters, seed))
    x = torch.zeros(B, *ROW)
    t = torch.zeros(B, dtype=torch.long)
    ac = torch.zeros(1)  # ᾱ = 0: the output is the noise itself
    noise = ssni_kernels.noise_inject(x.to(DEVICE), t.to(DEVICE), ac.to(DEVICE), seed=seed, sample_ids=IDS.to(DEVICE))
    on_cpu = ssni_kernels.noise_inject(x, t, ac, seed=seed, sample_ids=IDS)
    torch.testing.assert_close(noise.cpu(), on_cpu, rtol=0, atol=2 * NOISE_ATOL)


@pytest.mark.gpu
@pytest.mark.skipif(DEVICE.type != "cuda", reason="needs a CUDA device")
def test_compiled_graph_of_all_ops_equals_eager_on_cuda():
    """torch.compile (inductor, fullgraph) around every public op on CUDA: no graph break, the eager results."""
    ni = _on(_inputs("noise_inject", torch.float32), DEVICE)
    lv = _on(_inputs("noise_inject_levels", torch.float32), DEVICE)
    rs = _on(_inputs("reverse_step", torch.float32), DEVICE)
    vp = _on(_inputs("vp_sde_step", torch.float32), DEVICE)

    def pipeline(x, eps_hat):
        xt = ssni_kernels.noise_inject(**{**ni, "x": x})
        levels = ssni_kernels.noise_inject_levels(**{**lv, "x": x})
        norm = ssni_kernels.score_norm(levels, lv["std"])
        x1 = ssni_kernels.reverse_step(**{**rs, "x": xt, "eps_hat": eps_hat})
        return ssni_kernels.vp_sde_step(**{**vp, "x": x1, "eps_hat": eps_hat}), norm

    torch._dynamo.reset()
    compiled = torch.compile(pipeline, fullgraph=True)
    for got, expected in zip(compiled(ni["x"], rs["eps_hat"]), pipeline(ni["x"], rs["eps_hat"])):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
