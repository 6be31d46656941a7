"""register_cuda_impls: every ssni op with a Triton launcher gets a dispatcher kernel that takes the schema's
arguments in order. Checked on a private namespace with _library.py's schemas, registered for CPU so that the
interpreter runs the kernels through the dispatcher."""

from __future__ import annotations

import pytest
import torch
from triton_device import DEVICE  # (sets up the interpreter first)

from ssni_kernels import _library, reference
from ssni_kernels.triton import LAUNCHERS, register_cuda_impls

pytestmark = pytest.mark.triton


@pytest.fixture(scope="module")
def test_ops():
    lib = torch.library.Library("ssni_triton_registration_test", "DEF")  # noqa: TOR901
    for name, schema in _library.SCHEMAS.items():
        lib.define(name + schema)
    registered = register_cuda_impls(lib, dispatch_key="CUDA" if DEVICE == "cuda" else "CPU")
    yield registered, torch.ops.ssni_triton_registration_test
    lib._destroy()


def test_every_launcher_with_a_schema_is_registered(test_ops):
    registered, _ = test_ops
    assert sorted(registered) == sorted(name for name in LAUNCHERS if name in _library.SCHEMAS)
    assert {"noise_inject", "noise_inject_levels", "score_norm", "reverse_step", "vp_sde_step"} <= set(registered)


def test_dispatched_ops_take_schema_order(test_ops):
    _, namespace = test_ops
    g = torch.Generator().manual_seed(3)
    x, eps_hat = (torch.randn(3, 2, 4, 4, generator=g).to(DEVICE) for _ in range(2))
    acp = torch.linspace(0.99, 0.01, 50, device=DEVICE)
    t = torch.tensor([0, 49, 10], device=DEVICE)
    ids = torch.tensor([5, 6, 7], device=DEVICE)
    torch.testing.assert_close(
        namespace.noise_inject(x, t, acp, None, 21, ids, 3),
        reference.noise_inject(x, t, acp, seed=21, sample_ids=ids, step=3),
        atol=3e-6,
        rtol=1e-5,
    )
    a, a_next = torch.tensor([0.3, 0.5, 0.7], device=DEVICE), torch.tensor([0.4, 0.5, 1.0], device=DEVICE)
    active = torch.tensor([True, False, True], device=DEVICE)
    torch.testing.assert_close(
        namespace.reverse_step(x, eps_hat, a, a_next, 1.0, None, 8, None, 2, active),
        reference.reverse_step(x, eps_hat, a, a_next, eta=1.0, seed=8, step=2, active=active),
        atol=3e-6,
        rtol=1e-5,
    )
    sigma = torch.tensor([0.5, 1.5], device=DEVICE)
    levels = namespace.noise_inject_levels(x, torch.tensor([0.9, 0.3], device=DEVICE), sigma, None, 4, None)
    torch.testing.assert_close(namespace.score_norm(levels, sigma), reference.score_norm(levels, sigma))
