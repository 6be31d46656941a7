"""The noise family (ssni_kernels/ops/noise.py): noise_inject, noise_inject_levels, philox_bits, against the
reference; argument validation; registration (opcheck) and gradients."""

from __future__ import annotations

import pytest
import torch
from op_cases import (
    DTYPES,
    assert_close_dtype,
    batch,
    check_bad_input,
    check_gradients,
    check_registration,
    ddpm_alphas_cumprod,
    dtype_id,
    noise_kwargs,
    shape_id,
)

import ssni_kernels
from ssni_kernels import reference

B, ROW = 5, (3, 6, 7)
T = torch.tensor([0, 999, 500, 17, 250])
INTEGER_DTYPES = [torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64, torch.uint16, torch.uint32]


OP_CASES = [
    pytest.param(B, ROW, dtype, given, id=f"{shape_id(B, ROW)}-{dtype_id(dtype)}-{'given' if given else 'generated'}")
    for dtype in DTYPES
    for given in (True, False)
]


# ---------------------------------------------------------------------------------------------------------
# noise_inject
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch_size, row, dtype, given", OP_CASES)
def test_noise_inject(batch_size, row, dtype, given):
    ac = ddpm_alphas_cumprod()
    x = batch((batch_size, *row), dtype)
    kwargs = noise_kwargs(given, x)
    out = ssni_kernels.noise_inject(x, T, ac, step=4, **kwargs)
    assert out.dtype == dtype and out.shape == x.shape
    assert_close_dtype(out, reference.noise_inject(x, T, ac, step=4, **kwargs), generated_noise=not given)


@pytest.mark.parametrize("dtype", INTEGER_DTYPES, ids=dtype_id)
def test_noise_inject_takes_t_of_any_integer_dtype(dtype):
    """int8 t = [0, 1, 2, 3] once failed with "t must be in [0, 1000)" (the bound wrapped into t's dtype)."""
    ac = ddpm_alphas_cumprod()
    x, t = batch((4, 2, 3)), torch.tensor([0, 1, 2, 127])
    out = ssni_kernels.noise_inject(x, t.to(dtype), ac, seed=3)
    assert torch.equal(out, ssni_kernels.noise_inject(x, t, ac, seed=3))


def test_noise_inject_refuses_t_out_of_range_in_a_narrow_dtype():
    ac = ddpm_alphas_cumprod()[:100]
    x = batch((3, 2))
    with pytest.raises(ValueError, match=r"t must be in \[0, 100\)"):
        ssni_kernels.noise_inject(x, torch.tensor([0, 200, 1], dtype=torch.uint8), ac, seed=3)
    with pytest.raises(ValueError, match=r"t must be in \[0, 100\)"):
        ssni_kernels.noise_inject(x, torch.tensor([0, -1, 1], dtype=torch.int8), ac, seed=3)


@pytest.mark.parametrize(
    "t", [250, torch.tensor(250), torch.tensor(250, dtype=torch.int16)], ids=["int", "0dim", "0dim-int16"]
)
def test_noise_inject_one_t_for_every_sample(t):
    ac = ddpm_alphas_cumprod()
    x = batch((3, 2, 4))
    out = ssni_kernels.noise_inject(x, t, ac, seed=3)
    assert torch.equal(out, ssni_kernels.noise_inject(x, torch.full((3,), 250), ac, seed=3))


def test_noise_inject_non_contiguous_inputs():
    ac = ddpm_alphas_cumprod().float()
    x = batch((2 * B, 7, 6, 3))[::2].permute(0, 3, 2, 1)  # [B, 3, 6, 7], strided
    noise = batch((B, 3, 7, 6), seed=3).transpose(2, 3)
    ids = torch.arange(2 * B)[::2]
    t = torch.stack([T, T], 1)[:, 0]
    assert not (x.is_contiguous() or noise.is_contiguous() or ids.is_contiguous() or t.is_contiguous())
    for kwargs in ({"noise": noise}, {"seed": 1, "sample_ids": ids}):
        out = ssni_kernels.noise_inject(x, t, ac, **kwargs)
        assert out.is_contiguous()
        assert_close_dtype(out, reference.noise_inject(x, t, ac, **kwargs), generated_noise="seed" in kwargs)


# ---------------------------------------------------------------------------------------------------------
# noise_inject_levels
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch_size, row, dtype, given", OP_CASES)
def test_noise_inject_levels(batch_size, row, dtype, given):
    K = 3
    mean_coef = torch.tensor([0.99, 0.9, 0.5], dtype=torch.float64)
    std = (1 - mean_coef**2).sqrt()
    x = batch((batch_size, *row), dtype)
    kwargs = noise_kwargs(given, batch((K * batch_size, *row), dtype))
    out = ssni_kernels.noise_inject_levels(x, mean_coef, std, **kwargs)
    assert out.shape == (K * batch_size, *row)
    assert_close_dtype(out, reference.noise_inject_levels(x, mean_coef, std, **kwargs), generated_noise=not given)


def test_noise_inject_levels_non_contiguous_input():
    x = batch((2 * B, 7, 6, 3))[::2].permute(0, 3, 2, 1)
    mean_coef, std = torch.tensor([0.9, 0.5]), torch.tensor([0.4, 0.8])
    out = ssni_kernels.noise_inject_levels(x, mean_coef, std, seed=1)
    assert out.is_contiguous()
    assert_close_dtype(out, reference.noise_inject_levels(x, mean_coef, std, seed=1), generated_noise=True)


# ---------------------------------------------------------------------------------------------------------
# philox_bits
# ---------------------------------------------------------------------------------------------------------
def test_philox_bits_takes_counters_of_any_integer_dtype_and_any_seed_form():
    counters = torch.randint(0, 100, (9, 4), generator=torch.Generator().manual_seed(0))
    expected = torch.ops.ssni.philox_bits(counters, -1)
    assert torch.equal(ssni_kernels.philox_bits(counters.to(torch.uint8), 2**64 - 1), expected)
    with pytest.raises(ValueError, match=r"counters must hold uint32 words"):
        ssni_kernels.philox_bits(counters - 200, 0)


# ---------------------------------------------------------------------------------------------------------
# Validation: bad input raises TypeError/ValueError naming the argument, before any kernel runs
# ---------------------------------------------------------------------------------------------------------
X = torch.zeros(2, 3, 4, 4)
AC = ddpm_alphas_cumprod().float()
T2 = torch.tensor([1, 2])
SIGMA = torch.tensor([0.1, 0.2])
noise_inject, levels = ssni_kernels.noise_inject, ssni_kernels.noise_inject_levels

BAD_INPUTS = {
    # noise_inject
    "x not a tensor": (TypeError, "x must be a torch.Tensor", lambda: noise_inject([1.0], T2, AC, seed=0)),
    "x integer": (TypeError, "x must be floating", lambda: noise_inject(T2, T2, AC, seed=0)),
    "empty batch": (ValueError, "x must be .*non-empty batch", lambda: noise_inject(X[:0], T2[:0], AC, seed=0)),
    "t float": (TypeError, "t must be an integer", lambda: noise_inject(X, T2.float(), AC, seed=0)),
    "t wrong length": (ValueError, r"t must have shape \[2\]", lambda: noise_inject(X, T2[:1], AC, seed=0)),
    "t out of range": (
        ValueError,
        r"t must be in \[0, 1000\)",
        lambda: noise_inject(X, torch.tensor([0, 1000]), AC, seed=0),
    ),
    "t negative": (ValueError, "t must be in", lambda: noise_inject(X, torch.tensor([-1, 0]), AC, seed=0)),
    "schedule NaN": (
        ValueError,
        "alphas_cumprod must be finite",
        lambda: noise_inject(X, T2, AC * float("nan"), seed=0),
    ),
    "schedule > 1": (
        ValueError,
        r"alphas_cumprod must be finite and in \[0, 1\]",
        lambda: noise_inject(X, T2, AC + 1, seed=0),
    ),
    "schedule 2-D": (
        ValueError,
        "alphas_cumprod must be a non-empty 1-D tensor",
        lambda: noise_inject(X, T2, AC[None], seed=0),
    ),
    "seed missing": (ValueError, "seed is required when noise is None", lambda: noise_inject(X, T2, AC)),
    "seed float": (TypeError, "seed must be a Python int", lambda: noise_inject(X, T2, AC, seed=1.5)),
    "seed too big": (ValueError, "seed must be in", lambda: noise_inject(X, T2, AC, seed=2**64)),
    "noise shape": (ValueError, "noise must have shape", lambda: noise_inject(X, T2, AC, noise=X[:1])),
    "noise dtype": (TypeError, "noise must have the dtype of x", lambda: noise_inject(X, T2, AC, noise=X.double())),
    "noise device": (ValueError, "noise is on meta", lambda: noise_inject(X, T2, AC, noise=X.to("meta"))),
    "t device": (ValueError, "t is on meta", lambda: noise_inject(X, T2.to("meta"), AC, seed=0)),
    "sample_ids float": (
        TypeError,
        "sample_ids must be an integer",
        lambda: noise_inject(X, T2, AC, seed=0, sample_ids=T2.float()),
    ),
    "sample_ids shape": (
        ValueError,
        "sample_ids must have shape",
        lambda: noise_inject(X, T2, AC, seed=0, sample_ids=T2[:1]),
    ),
    "step negative": (ValueError, "step must be in", lambda: noise_inject(X, T2, AC, seed=0, step=-1)),
    # noise_inject_levels
    "levels std length": (ValueError, r"std must have shape \[2\]", lambda: levels(X, SIGMA, SIGMA[:1], seed=0)),
    "levels std negative": (ValueError, "std must be finite and >= 0", lambda: levels(X, SIGMA, -SIGMA, seed=0)),
    "levels noise shape": (
        ValueError,
        r"noise must have shape \(4, 3, 4, 4\)",
        lambda: levels(X, SIGMA, SIGMA, noise=X),
    ),
    "levels mean inf": (ValueError, "mean_coef must be finite", lambda: levels(X, SIGMA / 0, SIGMA, seed=0)),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_names_the_argument(case):
    check_bad_input(*BAD_INPUTS[case])


@pytest.mark.parametrize("which", ["noise_inject", "noise_inject_levels"])
def test_schedule_requiring_grad_is_an_error(which):
    ac = ddpm_alphas_cumprod()
    x = batch((3, 2, 2, 3)).requires_grad_()
    calls = {
        "noise_inject": (lambda: noise_inject(x, T[:3], ac.requires_grad_(), seed=1), "alphas_cumprod"),
        "noise_inject_levels": (lambda: levels(x, ac[:2].requires_grad_(), ac[:2], seed=1), "mean_coef"),
    }
    call, argument = calls[which]
    with pytest.raises(ValueError, match=f"{argument} requires grad.*constant"):
        call()


# ---------------------------------------------------------------------------------------------------------
# Registration (schema, fake, autograd) and float64 gradients of the dispatched ops
# ---------------------------------------------------------------------------------------------------------
def _registration_cases():
    """(id, op overload, args, differentiable positions), every optional path once; float64 inputs."""
    ac = ddpm_alphas_cumprod()
    t = torch.tensor([400, 10, 999])
    a, a_next = ac[t], ac[t - 1]
    x, n = batch((3, 2, 2, 3), torch.float64, 1), batch((3, 2, 2, 3), torch.float64, 3)
    levels_noise = batch((6, 2, 2, 3), torch.float64, 4)
    ids = torch.tensor([7, 2, 2**32 + 1])
    ssni = torch.ops.ssni
    cases = [
        ("noise_inject-given", ssni.noise_inject.default, (x, t, ac, n, 0, None, 0), (0, 3)),
        ("noise_inject-generated", ssni.noise_inject.default, (x, t, ac, None, 5, ids, 3), (0, 3)),
        (
            "noise_inject_levels-given",
            ssni.noise_inject_levels.default,
            (x, a[:2], a_next[:2], levels_noise, 0, None),
            (0, 3),
        ),
        (
            "noise_inject_levels-generated",
            ssni.noise_inject_levels.default,
            (x, a[:2], a_next[:2], None, 5, ids),
            (0, 3),
        ),
    ]
    return [pytest.param(*case[1:], id=case[0]) for case in cases]


REGISTRATION_CASES = _registration_cases()


@pytest.mark.parametrize("op, args, differentiable", REGISTRATION_CASES)
def test_opcheck(op, args, differentiable):
    check_registration(op, args, differentiable)


def test_opcheck_philox_bits():
    counters = torch.randint(0, 2**32, (9, 4), dtype=torch.int64)
    torch.library.opcheck(torch.ops.ssni.philox_bits.default, (counters, 2**40 + 3))


@pytest.mark.parametrize("op, args, differentiable", REGISTRATION_CASES)
def test_gradcheck_fp64(op, args, differentiable):
    check_gradients(op, args, differentiable)
