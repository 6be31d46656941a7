"""Bad input raises TypeError/ValueError naming the argument, before any kernel runs."""

from __future__ import annotations

import pytest
import torch
from op_cases import ddpm_alphas_cumprod

import ssni_kernels

B = 2
X = torch.zeros(B, 3, 4, 4)
AC = ddpm_alphas_cumprod().float()
T = torch.tensor([1, 2])
A, A_NEXT = AC[T], AC[T - 1]
SIGMA = torch.tensor([0.1, 0.2])

noise_inject = ssni_kernels.noise_inject
levels = ssni_kernels.noise_inject_levels
score_norm = ssni_kernels.score_norm
reverse_step = ssni_kernels.reverse_step
vp_sde_step = ssni_kernels.vp_sde_step

CASES = {
    # noise_inject
    "x not a tensor": (TypeError, "x must be a torch.Tensor", lambda: noise_inject([1.0], T, AC, seed=0)),
    "x integer": (TypeError, "x must be floating", lambda: noise_inject(T, T, AC, seed=0)),
    "empty batch": (ValueError, "x must be .*non-empty batch", lambda: noise_inject(X[:0], T[:0], AC, seed=0)),
    "t float": (TypeError, "t must be an integer", lambda: noise_inject(X, T.float(), AC, seed=0)),
    "t wrong length": (ValueError, r"t must have shape \[2\]", lambda: noise_inject(X, T[:1], AC, seed=0)),
    "t out of range": (
        ValueError,
        r"t must be in \[0, 1000\)",
        lambda: noise_inject(X, torch.tensor([0, 1000]), AC, seed=0),
    ),
    "t negative": (ValueError, "t must be in", lambda: noise_inject(X, torch.tensor([-1, 0]), AC, seed=0)),
    "schedule NaN": (
        ValueError,
        "alphas_cumprod must be finite",
        lambda: noise_inject(X, T, AC * float("nan"), seed=0),
    ),
    "schedule > 1": (
        ValueError,
        r"alphas_cumprod must be finite and in \[0, 1\]",
        lambda: noise_inject(X, T, AC + 1, seed=0),
    ),
    "schedule 2-D": (ValueError, "alphas_cumprod must have shape", lambda: noise_inject(X, T, AC[None], seed=0)),
    "seed missing": (ValueError, "seed is required when noise is None", lambda: noise_inject(X, T, AC)),
    "seed float": (TypeError, "seed must be a Python int", lambda: noise_inject(X, T, AC, seed=1.5)),
    "seed too big": (ValueError, "seed must be in", lambda: noise_inject(X, T, AC, seed=2**64)),
    "noise shape": (ValueError, "noise must have shape", lambda: noise_inject(X, T, AC, noise=X[:1])),
    "noise dtype": (TypeError, "noise must have the dtype of x", lambda: noise_inject(X, T, AC, noise=X.double())),
    "noise device": (ValueError, "noise is on meta", lambda: noise_inject(X, T, AC, noise=X.to("meta"))),
    "t device": (ValueError, "t is on meta", lambda: noise_inject(X, T.to("meta"), AC, seed=0)),
    "sample_ids float": (
        TypeError,
        "sample_ids must be an integer",
        lambda: noise_inject(X, T, AC, seed=0, sample_ids=T.float()),
    ),
    "sample_ids shape": (
        ValueError,
        "sample_ids must have shape",
        lambda: noise_inject(X, T, AC, seed=0, sample_ids=T[:1]),
    ),
    "step negative": (ValueError, "step must be in", lambda: noise_inject(X, T, AC, seed=0, step=-1)),
    # noise_inject_levels
    "levels std length": (ValueError, r"std must have shape \[2\]", lambda: levels(X, SIGMA, SIGMA[:1], seed=0)),
    "levels std negative": (ValueError, "std must be finite and >= 0", lambda: levels(X, SIGMA, -SIGMA, seed=0)),
    "levels noise shape": (
        ValueError,
        r"noise must have shape \(4, 3, 4, 4\)",
        lambda: levels(X, SIGMA, SIGMA, noise=X),
    ),
    "levels mean inf": (ValueError, "mean_coef must be finite", lambda: levels(X, SIGMA / 0, SIGMA, seed=0)),
    # score_norm
    "K mismatch": (ValueError, "not a multiple of K", lambda: score_norm(torch.zeros(3, 4), SIGMA)),
    "sigma zero": (ValueError, "sigma must be finite and > 0", lambda: score_norm(torch.zeros(4, 4), SIGMA * 0)),
    "sigma int": (TypeError, "sigma must be floating", lambda: score_norm(torch.zeros(4, 4), T)),
    "eps_hat empty": (ValueError, "eps_hat must be", lambda: score_norm(torch.zeros(0, 4), SIGMA)),
    # reverse_step
    "eps_hat shape": (ValueError, "eps_hat must have shape", lambda: reverse_step(X, X[:1], A, A_NEXT, eta=0.0)),
    "eps_hat dtype": (TypeError, "eps_hat must have the dtype", lambda: reverse_step(X, X.half(), A, A_NEXT, eta=0.0)),
    "a zero": (ValueError, r"a must be finite and in \(0, 1\]", lambda: reverse_step(X, X, A * 0, A_NEXT, eta=0.0)),
    "a_next > 1": (ValueError, "a_next must be finite", lambda: reverse_step(X, X, A, A_NEXT + 1, eta=0.0)),
    "eta negative": (ValueError, "eta must be finite and >= 0", lambda: reverse_step(X, X, A, A_NEXT, eta=-1.0)),
    "eta tensor": (TypeError, "eta must be a Python float", lambda: reverse_step(X, X, A, A_NEXT, eta=torch.ones(()))),
    "ddpm seed": (ValueError, "seed is required", lambda: reverse_step(X, X, A, A_NEXT, eta=1.0)),
    "active dtype": (TypeError, "active must be torch.bool", lambda: reverse_step(X, X, A, A_NEXT, eta=0.0, active=T)),
    # vp_sde_step
    "vp t zero": (ValueError, r"t must be finite and in \(0, 1\]", lambda: vp_sde_step(X, X, A * 0, 1e-3, seed=0)),
    "vp dt": (ValueError, "dt must be finite and > 0", lambda: vp_sde_step(X, X, A, 0.0, seed=0)),
    "vp beta": (ValueError, "beta_max must be finite", lambda: vp_sde_step(X, X, A, 1e-3, seed=0, beta_max=0.01)),
    "vp active shape": (
        ValueError,
        "active must have shape",
        lambda: vp_sde_step(X, X, A, 1e-3, seed=0, active=T[:1] > 0),
    ),
    # per-sample step words
    "step words shape": (
        ValueError,
        r"step must have shape \[2\]",
        lambda: vp_sde_step(X, X, A, 1e-3, seed=0, step=T[:1]),
    ),
    "step words float": (
        TypeError,
        "step must be an integer",
        lambda: reverse_step(X, X, A, A_NEXT, eta=1.0, seed=0, step=A),
    ),
    "step words negative": (
        ValueError,
        r"step must be in \[0, 2\*\*32\)",
        lambda: reverse_step(X, X, A, A_NEXT, eta=1.0, seed=0, step=-T),
    ),
    "step words too big": (ValueError, "step must be in", lambda: vp_sde_step(X, X, A, 1e-3, seed=0, step=T + 2**32)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_names_the_argument(case):
    error, match, call = CASES[case]
    with pytest.raises(error, match=match):
        call()


def test_kernel_checks_direct_calls():
    """torch.ops.ssni.* without the wrappers still refuses out-of-range indices (no out-of-bounds read)."""
    if not ssni_kernels.ops.cpu_kernels_compiled():
        pytest.skip("checks of the compiled CPU kernels; the extension is not loaded")
    with pytest.raises(RuntimeError, match=r"t\[1\] = 1000 is outside"):
        torch.ops.ssni.noise_inject(X, torch.tensor([0, 1000]), AC, None, 0, None, 0)
    with pytest.raises(RuntimeError, match="not a multiple of K"):
        torch.ops.ssni.score_norm(torch.zeros(3, 4), SIGMA)
    with pytest.raises(RuntimeError, match=r"steps must have shape \[2\]"):
        torch.ops.ssni.reverse_step(X, X, A, A_NEXT, 1.0, None, 0, None, 0, None, T[:1])
