"""The score-norm family (ssni_kernels/ops/score_norm.py): score_norm and its backward against the reference;
argument validation; registration (opcheck) and gradients."""

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
    dtype_id,
    shape_id,
)

import ssni_kernels
from ssni_kernels import reference

B, ROW, K = 5, (3, 6, 7), 4


@pytest.mark.parametrize(
    "batch_size, row, dtype",
    [pytest.param(B, ROW, dtype, id=f"{shape_id(B, ROW)}-K{K}-{dtype_id(dtype)}") for dtype in DTYPES],
)
def test_score_norm(batch_size, row, dtype):
    sigma = torch.tensor([0.0105, 0.05, 0.2, 0.9], dtype=torch.float64)
    eps_hat = batch((K * batch_size, *row), dtype)
    out = ssni_kernels.score_norm(eps_hat, sigma)
    expected = reference.score_norm(eps_hat, sigma)
    assert out.dtype == expected.dtype == reference.compute_dtype(dtype) and out.shape == (batch_size,)
    assert_close_dtype(out, expected)


def test_score_norm_long_rows():
    """Rows longer than one 4096-element chunk are reduced across chunks."""
    sigma = torch.tensor([0.1, 0.3])
    eps_hat = batch((2 * 2, 3, 50, 50))
    assert_close_dtype(ssni_kernels.score_norm(eps_hat, sigma), reference.score_norm(eps_hat, sigma))


def test_score_norm_non_contiguous_input():
    eps_hat = batch((2 * B, 3, 7, 6)).transpose(2, 3)
    sigma = torch.tensor([[0.3, 9.0], [0.7, 9.0]])[:, 0]
    assert not (eps_hat.is_contiguous() or sigma.is_contiguous())
    out = ssni_kernels.score_norm(eps_hat, sigma)
    assert out.is_contiguous()
    assert_close_dtype(out, reference.score_norm(eps_hat, sigma))


def test_score_norm_backward_matches_reference():
    sigma = torch.tensor([0.01, 0.1, 0.5])
    eps = batch((3 * 4, 3, 9, 9)).requires_grad_()
    grad_out = torch.rand(4)
    (g_op,) = torch.autograd.grad(ssni_kernels.score_norm(eps, sigma), eps, grad_out)
    (g_ref,) = torch.autograd.grad(reference.score_norm(eps, sigma), eps, grad_out)
    torch.testing.assert_close(g_op, g_ref, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------------------
SIGMA = torch.tensor([0.1, 0.2])
BAD_INPUTS = {
    "K mismatch": (ValueError, "not a multiple of K", lambda: ssni_kernels.score_norm(torch.zeros(3, 4), SIGMA)),
    "sigma zero": (
        ValueError,
        "sigma must be finite and > 0",
        lambda: ssni_kernels.score_norm(torch.zeros(4, 4), SIGMA * 0),
    ),
    "sigma int": (
        TypeError,
        "sigma must be floating",
        lambda: ssni_kernels.score_norm(torch.zeros(4, 4), SIGMA.long()),
    ),
    "eps_hat empty": (ValueError, "eps_hat must be", lambda: ssni_kernels.score_norm(torch.zeros(0, 4), SIGMA)),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_names_the_argument(case):
    check_bad_input(*BAD_INPUTS[case])


def test_schedule_requiring_grad_is_an_error():
    with pytest.raises(ValueError, match="sigma requires grad.*constant"):
        ssni_kernels.score_norm(batch((3, 2)).requires_grad_(), torch.ones(1).requires_grad_())


# ---------------------------------------------------------------------------------------------------------
# Registration and float64 gradients
# ---------------------------------------------------------------------------------------------------------
def _registration_case():
    levels = batch((6, 2, 2, 3), torch.float64, 4)
    sigma = torch.tensor([0.05, 0.3], dtype=torch.float64)
    return torch.ops.ssni.score_norm.default, (levels, sigma), (0,)


def test_opcheck():
    check_registration(*_registration_case())


def test_gradcheck_fp64():
    check_gradients(*_registration_case())
