"""The step family (ssni_kernels/ops/steps.py): reverse_step and vp_sde_step against the reference, per-sample
step words, broadcast scalars; argument validation; registration (opcheck) and gradients."""

from __future__ import annotations

import pytest
import torch
from op_cases import (
    DTYPES,
    IDS,
    SEED,
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
VP_T = torch.tensor([0.1, 0.05, 0.001, 1.0, 0.3])


def _schedule(dtype=torch.float64):
    """(a, a_next) of five samples: one at the last step (ᾱ_{-1} = 1), one at a repeated index (a no-op)."""
    ac = ddpm_alphas_cumprod()
    t = torch.tensor([0, 999, 500, 17, 250])
    a, a_next = ac[t], ac[(t - 1).clamp_min(0)]
    a_next[0] = 1.0
    a_next[3] = a[3]
    return a.to(dtype), a_next.to(dtype)


def _given_id(given: bool) -> str:
    return "given" if given else "generated"


# ---------------------------------------------------------------------------------------------------------
# reverse_step
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "batch_size, row, dtype, given, eta",
    [
        pytest.param(B, ROW, dtype, given, eta, id=f"{shape_id(B, ROW)}-{dtype_id(dtype)}-{_given_id(given)}-eta{eta}")
        for dtype in DTYPES
        for given in (True, False)
        for eta in (0.0, 1.0, 0.5)
    ],
)
def test_reverse_step(batch_size, row, dtype, given, eta):
    a, a_next = _schedule()
    x, eps_hat = batch((batch_size, *row), dtype, seed=1), batch((batch_size, *row), dtype, seed=2)
    active = torch.tensor([True, True, False, True, True])
    kwargs = {**noise_kwargs(given, x), "step": 6, "active": active}
    out = ssni_kernels.reverse_step(x, eps_hat, a, a_next, eta=eta, **kwargs)
    expected = reference.reverse_step(x, eps_hat, a, a_next, eta=eta, **kwargs)
    assert_close_dtype(out, expected, generated_noise=not given)
    assert torch.equal(out[2], x[2]) and torch.equal(out[3], x[3])  # inactive; a == a_next


# ---------------------------------------------------------------------------------------------------------
# vp_sde_step
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "batch_size, row, dtype, given",
    [
        pytest.param(B, ROW, dtype, given, id=f"{shape_id(B, ROW)}-{dtype_id(dtype)}-{_given_id(given)}")
        for dtype in DTYPES
        for given in (True, False)
    ],
)
def test_vp_sde_step(batch_size, row, dtype, given):
    x, eps_hat = batch((batch_size, *row), dtype, seed=1), batch((batch_size, *row), dtype, seed=2)
    active = torch.tensor([True, False, True, True, True])
    kwargs = {**noise_kwargs(given, x), "step": 2, "active": active}
    out = ssni_kernels.vp_sde_step(x, eps_hat, VP_T, 1e-3, **kwargs)
    assert_close_dtype(out, reference.vp_sde_step(x, eps_hat, VP_T, 1e-3, **kwargs), generated_noise=not given)
    assert torch.equal(out[1], x[1])


# ---------------------------------------------------------------------------------------------------------
# Both step ops: per-sample step words, scalars for every sample, layouts
# ---------------------------------------------------------------------------------------------------------
def _step_call(op: str, x, eps_hat):
    """(public op, positional args, keyword args, reference) of a step op where every sample moves."""
    a, a_next = _schedule()
    if op == "reverse_step":
        a_next = a_next.clone()
        a_next[3] = 0.9999
        return ssni_kernels.reverse_step, (x, eps_hat, a, a_next), {"eta": 1.0}, reference.reverse_step
    return ssni_kernels.vp_sde_step, (x, eps_hat, VP_T, 1e-3), {}, reference.vp_sde_step


@pytest.mark.parametrize("op", ["reverse_step", "vp_sde_step"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=dtype_id)
def test_step_word_per_sample_equals_one_call_per_sample(op, dtype):
    """step as an int64 [B] tensor: row b draws exactly the noise of a call with step = step[b]."""
    x, eps_hat = batch((B, *ROW), dtype, seed=1), batch((B, *ROW), dtype, seed=2)
    fn, args, extra, ref = _step_call(op, x, eps_hat)
    words = torch.tensor([6, 0, 2**32 - 1, 6, 1025])
    kwargs = {"seed": SEED, "sample_ids": IDS, **extra}
    out = fn(*args, step=words, **kwargs)
    rows = [fn(*args, step=int(w), **kwargs)[b] for b, w in enumerate(words.tolist())]
    assert torch.equal(out, torch.stack(rows))  # the same kernel, so bit for bit
    assert_close_dtype(out, ref(*args, step=words, **kwargs), generated_noise=True)
    assert not torch.equal(out, fn(*args, step=6, **kwargs))  # the words matter


@pytest.mark.parametrize("op", ["reverse_step", "vp_sde_step"])
@pytest.mark.parametrize("dtype", [torch.int8, torch.uint8, torch.int16, torch.int32, torch.uint32], ids=dtype_id)
def test_step_words_of_any_integer_dtype(op, dtype):
    """An int32/int16/uint8 tensor of step words once failed with "step must be in [0, 2**32)"."""
    x, eps_hat = batch((B, 2, 3), seed=1), batch((B, 2, 3), seed=2)
    fn, args, extra, _ = _step_call(op, x, eps_hat)
    words = torch.tensor([6, 0, 127, 6, 3])
    expected = fn(*args, step=words, seed=SEED, **extra)
    assert torch.equal(fn(*args, step=words.to(dtype), seed=SEED, **extra), expected)


def test_step_words_out_of_range_in_a_narrow_dtype():
    x = batch((3, 2))
    with pytest.raises(ValueError, match=r"step must be in \[0, 2\*\*32\)"):
        ssni_kernels.vp_sde_step(
            x, x, torch.full((3,), 0.5), 1e-3, seed=1, step=torch.tensor([1, -1, 2], dtype=torch.int8)
        )


def test_reverse_step_scalars_for_every_sample():
    """a=0.5 once failed with "a must be a torch.Tensor": Python numbers and 0-dim tensors broadcast."""
    x, eps_hat = batch((3, 2, 4), seed=1), batch((3, 2, 4), seed=2)
    a, a_next = torch.full((3,), 0.5, dtype=torch.float64), torch.full((3,), 0.7, dtype=torch.float64)
    expected = ssni_kernels.reverse_step(x, eps_hat, a, a_next, eta=1.0, seed=4, active=torch.ones(3, dtype=torch.bool))
    for scalars in ((0.5, 0.7), (torch.tensor(0.5, dtype=torch.float64), 0.7)):
        assert torch.equal(ssni_kernels.reverse_step(x, eps_hat, *scalars, eta=1.0, seed=4, active=True), expected)
    assert torch.equal(ssni_kernels.reverse_step(x, eps_hat, 0.5, 0.7, eta=1.0, seed=4, active=False), x)


def test_vp_sde_step_one_t_for_every_sample():
    x, eps_hat = batch((3, 2, 4), seed=1), batch((3, 2, 4), seed=2)
    expected = ssni_kernels.vp_sde_step(x, eps_hat, torch.full((3,), 0.25, dtype=torch.float64), 1e-3, seed=4)
    assert torch.equal(ssni_kernels.vp_sde_step(x, eps_hat, 0.25, 1e-3, seed=4), expected)


def test_step_ops_non_contiguous_inputs():
    a, a_next = (v.float() for v in _schedule())
    x = batch((2 * B, 7, 6, 3))[::2].permute(0, 3, 2, 1)  # [B, 3, 6, 7], strided
    eps_hat = batch((B, 3, 7, 6)).transpose(2, 3)
    noise = batch((B, 3, 7, 6), seed=3).transpose(2, 3)
    a2, an2 = (torch.stack([v, v], 1)[:, 0] for v in (a, a_next))
    assert not (x.is_contiguous() or eps_hat.is_contiguous() or noise.is_contiguous() or a2.is_contiguous())
    cases = [
        (ssni_kernels.reverse_step, reference.reverse_step, (x, eps_hat, a2, an2), {"eta": 1.0, "noise": noise}),
        (ssni_kernels.vp_sde_step, reference.vp_sde_step, (x, eps_hat, a2, 1e-3), {"noise": noise}),
    ]
    for op, ref, args, kwargs in cases:
        out = op(*args, **kwargs)
        assert out.is_contiguous()
        assert_close_dtype(out, ref(*args, **kwargs))


def test_inactive_and_repeated_samples_pass_gradient_through():
    ac = ddpm_alphas_cumprod()
    t = torch.tensor([400, 10, 999])
    a, a_next = ac[t], ac[t - 1]
    a_next[2] = a[2]  # repeated index
    x, e = batch((3, 2, 2, 3)).requires_grad_(), batch((3, 2, 2, 3), seed=1).requires_grad_()
    out = ssni_kernels.reverse_step(
        x, e, a.float(), a_next.float(), eta=1.0, seed=1, active=torch.tensor([1, 0, 1]).bool()
    )
    out.sum().backward()
    for b in (1, 2):
        assert torch.equal(x.grad[b], torch.ones_like(x[b])) and torch.equal(e.grad[b], torch.zeros_like(e[b]))
    assert not torch.equal(x.grad[0], torch.ones_like(x[0]))


# ---------------------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------------------
X = torch.zeros(2, 3, 4, 4)
AC = ddpm_alphas_cumprod().float()
T2 = torch.tensor([1, 2])
A, A_NEXT = AC[T2], AC[T2 - 1]
reverse_step, vp_sde_step = ssni_kernels.reverse_step, ssni_kernels.vp_sde_step

BAD_INPUTS = {
    # reverse_step
    "eps_hat shape": (ValueError, "eps_hat must have shape", lambda: reverse_step(X, X[:1], A, A_NEXT, eta=0.0)),
    "eps_hat dtype": (TypeError, "eps_hat must have the dtype", lambda: reverse_step(X, X.half(), A, A_NEXT, eta=0.0)),
    "a zero": (ValueError, r"a must be finite and in \(0, 1\]", lambda: reverse_step(X, X, A * 0, A_NEXT, eta=0.0)),
    "a_next > 1": (ValueError, "a_next must be finite", lambda: reverse_step(X, X, A, A_NEXT + 1, eta=0.0)),
    "eta negative": (ValueError, "eta must be finite and >= 0", lambda: reverse_step(X, X, A, A_NEXT, eta=-1.0)),
    "eta tensor": (TypeError, "eta must be a Python float", lambda: reverse_step(X, X, A, A_NEXT, eta=torch.ones(()))),
    "ddpm seed": (ValueError, "seed is required", lambda: reverse_step(X, X, A, A_NEXT, eta=1.0)),
    "active dtype": (TypeError, "active must be torch.bool", lambda: reverse_step(X, X, A, A_NEXT, eta=0.0, active=T2)),
    # vp_sde_step
    "vp t zero": (ValueError, r"t must be finite and in \(0, 1\]", lambda: vp_sde_step(X, X, A * 0, 1e-3, seed=0)),
    "vp dt": (ValueError, "dt must be finite and > 0", lambda: vp_sde_step(X, X, A, 0.0, seed=0)),
    "vp beta": (ValueError, "beta_max must be finite", lambda: vp_sde_step(X, X, A, 1e-3, seed=0, beta_max=0.01)),
    "vp active shape": (
        ValueError,
        "active must have shape",
        lambda: vp_sde_step(X, X, A, 1e-3, seed=0, active=T2[:1] > 0),
    ),
    # per-sample step words
    "step words shape": (
        ValueError,
        r"step must have shape \[2\]",
        lambda: vp_sde_step(X, X, A, 1e-3, seed=0, step=T2[:1]),
    ),
    "step words float": (
        TypeError,
        "step must be an integer",
        lambda: reverse_step(X, X, A, A_NEXT, eta=1.0, seed=0, step=A),
    ),
    "step words negative": (
        ValueError,
        r"step must be in \[0, 2\*\*32\)",
        lambda: reverse_step(X, X, A, A_NEXT, eta=1.0, seed=0, step=-T2),
    ),
    "step words too big": (ValueError, "step must be in", lambda: vp_sde_step(X, X, A, 1e-3, seed=0, step=T2 + 2**32)),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_names_the_argument(case):
    check_bad_input(*BAD_INPUTS[case])


@pytest.mark.parametrize("which", ["reverse_step", "vp_sde_step"])
def test_schedule_requiring_grad_is_an_error(which):
    a, a_next = _schedule()
    x = batch((B, 2, 2, 3)).requires_grad_()
    calls = {
        "reverse_step": (lambda: reverse_step(x, x, a, a_next.requires_grad_(), eta=0.0), "a_next"),
        "vp_sde_step": (lambda: vp_sde_step(x, x, torch.rand(B).requires_grad_(), 1e-3, seed=1), "t"),
    }
    call, argument = calls[which]
    with pytest.raises(ValueError, match=f"{argument} requires grad.*constant"):
        call()


# ---------------------------------------------------------------------------------------------------------
# Registration and float64 gradients
# ---------------------------------------------------------------------------------------------------------
def _registration_cases():
    """(id, op overload, args, differentiable positions), every optional path once; float64 inputs."""
    ac = ddpm_alphas_cumprod()
    t = torch.tensor([400, 10, 999])
    a, a_next = ac[t], ac[t - 1]
    x, e, n = (batch((3, 2, 2, 3), torch.float64, seed) for seed in (1, 2, 3))
    ids, active = torch.tensor([7, 2, 2**32 + 1]), torch.tensor([True, False, True])
    steps = torch.tensor([0, 9, 2**32 - 1])  # a Philox step word per sample
    vp_t = torch.tensor([0.2, 0.05, 1.0], dtype=torch.float64)
    reverse, vp = torch.ops.ssni.reverse_step.default, torch.ops.ssni.vp_sde_step.default
    cases = [
        ("reverse_step-ddpm", reverse, (x, e, a, a_next, 1.0, n, 0, None, 0, active), (0, 1, 5)),
        ("reverse_step-generated", reverse, (x, e, a, a_next, 1.0, None, 5, ids, 2, None), (0, 1, 5)),
        ("reverse_step-ddim", reverse, (x, e, a, a_next, 0.0, None, 0, None, 0, None), (0, 1, 5)),
        ("reverse_step-steps", reverse, (x, e, a, a_next, 1.0, None, 5, ids, 0, None, steps), (0, 1, 5)),
        ("vp_sde_step-given", vp, (x, e, vp_t, 1e-3, n, 0, None, 0, active, 0.1, 20.0), (0, 1, 4)),
        ("vp_sde_step-generated", vp, (x, e, vp_t, 1e-3, None, 5, ids, 1, None, 0.1, 20.0), (0, 1, 4)),
        ("vp_sde_step-steps", vp, (x, e, vp_t, 1e-3, None, 5, ids, 0, None, 0.1, 20.0, steps), (0, 1, 4)),
    ]
    return [pytest.param(*case[1:], id=case[0]) for case in cases]


REGISTRATION_CASES = _registration_cases()


@pytest.mark.parametrize("op, args, differentiable", REGISTRATION_CASES)
def test_opcheck(op, args, differentiable):
    check_registration(op, args, differentiable)


@pytest.mark.parametrize("op, args, differentiable", REGISTRATION_CASES)
def test_gradcheck_fp64(op, args, differentiable):
    check_gradients(op, args, differentiable)
