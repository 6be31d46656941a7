"""torch.library integration: opcheck, torch.compile without graph breaks, fp64 gradcheck, constant schedules."""

from __future__ import annotations

import pytest
import torch
from op_cases import batch, ddpm_alphas_cumprod

import ssni_kernels

B, SHAPE = 3, (2, 2, 3)


def _steps():
    ac = ddpm_alphas_cumprod()
    t = torch.tensor([400, 10, 999])
    return ac, t, ac[t], ac[t - 1]


def _op_cases():
    """(name, op overload, args) with every optional path exercised once; float64 leaves that can need grad."""
    ac, t, a, a_next = _steps()
    x, e, n = (
        batch((B, *SHAPE), torch.float64, 1),
        batch((B, *SHAPE), torch.float64, 2),
        batch((B, *SHAPE), torch.float64, 3),
    )
    levels_noise = batch((2 * B, *SHAPE), torch.float64, 4)
    ids, active = torch.tensor([7, 2, 2**32 + 1]), torch.tensor([True, False, True])
    steps = torch.tensor([0, 9, 2**32 - 1])  # a Philox step word per sample
    sigma = torch.tensor([0.05, 0.3], dtype=torch.float64)
    vp_t = torch.tensor([0.2, 0.05, 1.0], dtype=torch.float64)
    ssni = torch.ops.ssni
    return [
        ("noise_inject/given", ssni.noise_inject.default, (x, t, ac, n, 0, None, 0)),
        ("noise_inject/generated", ssni.noise_inject.default, (x, t, ac, None, 5, ids, 3)),
        ("noise_inject_levels/given", ssni.noise_inject_levels.default, (x, a[:2], a_next[:2], levels_noise, 0, None)),
        ("noise_inject_levels/generated", ssni.noise_inject_levels.default, (x, a[:2], a_next[:2], None, 5, ids)),
        ("score_norm", ssni.score_norm.default, (levels_noise, sigma)),
        ("reverse_step/ddpm", ssni.reverse_step.default, (x, e, a, a_next, 1.0, n, 0, None, 0, active)),
        ("reverse_step/generated", ssni.reverse_step.default, (x, e, a, a_next, 1.0, None, 5, ids, 2, None)),
        ("reverse_step/ddim", ssni.reverse_step.default, (x, e, a, a_next, 0.0, None, 0, None, 0, None)),
        ("vp_sde_step/given", ssni.vp_sde_step.default, (x, e, vp_t, 1e-3, n, 0, None, 0, active, 0.1, 20.0)),
        ("vp_sde_step/generated", ssni.vp_sde_step.default, (x, e, vp_t, 1e-3, None, 5, ids, 1, None, 0.1, 20.0)),
        ("reverse_step/steps", ssni.reverse_step.default, (x, e, a, a_next, 1.0, None, 5, ids, 0, None, steps)),
        ("vp_sde_step/steps", ssni.vp_sde_step.default, (x, e, vp_t, 1e-3, None, 5, ids, 0, None, 0.1, 20.0, steps)),
    ]


DIFFERENTIABLE = {  # positional indices of the inputs with a gradient
    "noise_inject": (0, 3),
    "noise_inject_levels": (0, 3),
    "score_norm": (0,),
    "reverse_step": (0, 1, 5),
    "vp_sde_step": (0, 1, 4),
}
CASES = _op_cases()


def _with_grad(name, args):
    args = list(args)
    for i in DIFFERENTIABLE[name.split("/")[0]]:
        if isinstance(args[i], torch.Tensor):
            args[i] = args[i].clone().requires_grad_()
    return tuple(args)


@pytest.mark.parametrize("name, op, args", CASES, ids=[c[0] for c in CASES])
def test_opcheck(name, op, args):
    torch.library.opcheck(op, _with_grad(name, args))
    torch.library.opcheck(op, args)


def test_opcheck_debug_op():
    counters = torch.randint(0, 2**32, (9, 4), dtype=torch.int64)
    torch.library.opcheck(torch.ops.ssni.philox_bits.default, (counters, 2**40 + 3))


@pytest.mark.parametrize("name, op, args", CASES, ids=[c[0] for c in CASES])
def test_gradcheck_fp64(name, op, args):
    assert torch.autograd.gradcheck(lambda *a: op(*a), _with_grad(name, args), eps=1e-6, atol=1e-7)


def test_score_norm_backward_matches_reference():
    sigma = torch.tensor([0.01, 0.1, 0.5])
    eps = batch((3 * 4, 3, 9, 9)).requires_grad_()
    grad_out = torch.rand(4)
    (g_op,) = torch.autograd.grad(ssni_kernels.score_norm(eps, sigma), eps, grad_out)
    (g_ref,) = torch.autograd.grad(ssni_kernels.reference.score_norm(eps, sigma), eps, grad_out)
    torch.testing.assert_close(g_op, g_ref, rtol=1e-5, atol=1e-7)


def test_inactive_and_repeated_samples_pass_gradient_through():
    _, _, a, a_next = _steps()
    a_next = a_next.clone()
    a_next[2] = a[2]  # repeated index
    x, e = batch((B, *SHAPE)).requires_grad_(), batch((B, *SHAPE), seed=1).requires_grad_()
    out = ssni_kernels.reverse_step(
        x, e, a.float(), a_next.float(), eta=1.0, seed=1, active=torch.tensor([1, 0, 1]).bool()
    )
    out.sum().backward()
    for b in (1, 2):
        assert torch.equal(x.grad[b], torch.ones_like(x[b])) and torch.equal(e.grad[b], torch.zeros_like(e[b]))
    assert not torch.equal(x.grad[0], torch.ones_like(x[0]))


@pytest.mark.parametrize("which", ["noise_inject", "noise_inject_levels", "score_norm", "reverse_step", "vp_sde_step"])
def test_schedule_requiring_grad_is_an_error(which):
    ac, t, a, a_next = _steps()
    x = batch((B, *SHAPE)).requires_grad_()
    calls = {
        "noise_inject": (lambda: ssni_kernels.noise_inject(x, t, ac.requires_grad_(), seed=1), "alphas_cumprod"),
        "noise_inject_levels": (
            lambda: ssni_kernels.noise_inject_levels(x, a[:2].requires_grad_(), a[:2], seed=1),
            "mean_coef",
        ),
        "score_norm": (lambda: ssni_kernels.score_norm(x, torch.ones(1).requires_grad_()), "sigma"),
        "reverse_step": (lambda: ssni_kernels.reverse_step(x, x, a, a_next.requires_grad_(), eta=0.0), "a_next"),
        "vp_sde_step": (lambda: ssni_kernels.vp_sde_step(x, x, torch.rand(B).requires_grad_(), 1e-3, seed=1), "t"),
    }
    call, argument = calls[which]
    with pytest.raises(ValueError, match=f"{argument} requires grad.*constant"):
        call()


def test_compile_fullgraph_all_ops():
    """One compiled graph calls every public op: no graph breaks (fullgraph) and the eager results."""
    ac, t, a, a_next = (v.float() if v.is_floating_point() else v for v in _steps())
    x, e = batch((B, *SHAPE)), batch((B, *SHAPE), seed=1)
    vp_t = torch.tensor([0.2, 0.05, 1.0])

    def pipeline(x, e):
        xt = ssni_kernels.noise_inject(x, t, ac, seed=3)
        levels = ssni_kernels.noise_inject_levels(x, a[:2], a_next[:2], seed=4)
        norm = ssni_kernels.score_norm(levels, a[:2])
        x1 = ssni_kernels.reverse_step(xt, e, a, a_next, eta=1.0, seed=5, step=1)
        x2 = ssni_kernels.vp_sde_step(x1, e, vp_t, 1e-3, seed=6)
        return x2, norm

    torch._dynamo.reset()
    compiled = torch.compile(pipeline, fullgraph=True, backend="aot_eager")
    for got, expected in zip(compiled(x, e), pipeline(x, e)):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
