"""The ``ssni`` torch.library namespace: every schema, the kernels of the compiled libraries, the reference fallback.

The one file that touches the dispatcher's internals (``torch._C``, ``OpOverload._schema``); the op families in
``ssni_kernels.ops`` add their fake kernels, autograd formulas and reference adapters through it.

- Schemas (namespace ``ssni``), all arguments positional so that ``noise`` can carry a gradient. The step ops
  take ``steps`` (int64 [B], a Philox step word per sample, overriding ``step``) so that rows at different
  steps of their own walks share one call (the streaming engine). ``seed`` is the schema's signed int64 (the
  wrappers pass seeds in [2**63, 2**64) as their bit pattern).
- Kernels: CPU from the compiled ``ssni_kernels._C`` (csrc/cpu/), loaded at import; CUDA from
  ``ssni_kernels.triton.register_cuda_impls(lib)`` (Triton, optionally ``_C_cuda``) when a GPU is present. Any op
  left without a kernel for a device runs the PyTorch reference (`fallback`); a missing CPU extension is
  announced by one warning at import.

A CUDA kernel provider registers with ``lib.impl(name, fn, "CUDA")`` using the schemas below; it may cover any
subset of ``KERNEL_OPS``. Python kernels must give their parameters the schema's defaults: the dispatcher leaves
out trailing arguments that equal their defaults.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch

from ssni_kernels import _extension
from ssni_kernels.reference import VP_BETA_MAX, VP_BETA_MIN

NAMESPACE = "ssni"
lib = torch.library.Library(NAMESPACE, "DEF")  # noqa: TOR901 (the one definition of the namespace)

SCHEMAS = {
    "noise_inject": "(Tensor x, Tensor t, Tensor alphas_cumprod, Tensor? noise=None, int seed=0, "
    "Tensor? sample_ids=None, int step=0) -> Tensor",
    "noise_inject_levels": "(Tensor x, Tensor mean_coef, Tensor std, Tensor? noise=None, int seed=0, "
    "Tensor? sample_ids=None) -> Tensor",
    "score_norm": "(Tensor eps_hat, Tensor sigma) -> Tensor",
    "score_norm_backward": "(Tensor grad, Tensor eps_hat, Tensor sigma, Tensor norm) -> Tensor",
    "reverse_step": "(Tensor x, Tensor eps_hat, Tensor a, Tensor a_next, float eta, Tensor? noise=None, "
    "int seed=0, Tensor? sample_ids=None, int step=0, Tensor? active=None, Tensor? steps=None) -> Tensor",
    "vp_sde_step": "(Tensor x, Tensor eps_hat, Tensor t, float dt, Tensor? noise=None, int seed=0, "
    f"Tensor? sample_ids=None, int step=0, Tensor? active=None, float beta_min={VP_BETA_MIN}, "
    f"float beta_max={VP_BETA_MAX}, Tensor? steps=None) -> Tensor",
    # Debug/test op: raw Philox4x32-10 words of counters [N, 4] (int64 holding uint32) under key = seed.
    "philox_bits": "(Tensor counters, int seed) -> Tensor",
}
for _name, _schema in SCHEMAS.items():
    lib.define(_name + _schema, tags=(torch.Tag.pt2_compliant_tag,))

KERNEL_OPS = tuple(name for name in SCHEMAS if name != "philox_bits")
DISPATCH_KEYS = ("CPU", "CUDA")
# op name → its PyTorch reference adapter (filled by the op families through `fallback`)
REFERENCE_KERNELS: dict[str, Callable] = {}


# ---------------------------------------------------------------------------------------------------------
# Dispatcher internals (private torch APIs, used nowhere else)
# ---------------------------------------------------------------------------------------------------------
def has_kernel(name: str, dispatch_key: str, namespace: str = NAMESPACE) -> bool:
    """Whether `namespace::name` has a kernel registered for `dispatch_key`."""
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"{namespace}::{name}", dispatch_key)


def schema_argument_names(name: str, namespace: str = NAMESPACE) -> list[str] | None:
    """Argument names of `namespace::name` in schema order, or None when the op is not defined."""
    try:
        packet = getattr(getattr(torch.ops, namespace), name)
    except (AttributeError, RuntimeError):
        return None
    return [argument.name for argument in packet.default._schema.arguments]


# ---------------------------------------------------------------------------------------------------------
# Kernels: compiled CPU library and CUDA provider at import, the reference for whatever is left
# ---------------------------------------------------------------------------------------------------------
def _register_cuda_provider() -> None:
    """CUDA kernels of ssni_kernels.triton (Triton; it loads the optional _C_cuda itself), when a GPU is present."""
    if not torch.cuda.is_available():
        return
    try:
        from ssni_kernels.triton import register_cuda_impls
    except ModuleNotFoundError as error:
        if error.name not in ("triton", "ssni_kernels.triton"):
            raise
        warnings.warn(f"ssni_kernels: no Triton kernels ({error}); CUDA ops use the reference path", stacklevel=3)
        return
    register_cuda_impls(lib)


def _load_compiled_kernels() -> _extension.LibraryStatus:
    cpu_library = _extension.load("_C")
    if not cpu_library.loaded:
        warnings.warn(
            f"ssni_kernels: compiled CPU kernels unavailable ({cpu_library.reason}); CPU ops run the slower "
            "PyTorch reference path",
            stacklevel=3,
        )
    _register_cuda_provider()
    return cpu_library


CPU_LIBRARY = _load_compiled_kernels()


def cpu_kernels_compiled() -> bool:
    """True when the CPU ops run the compiled C++ kernels (False: reference fallback)."""
    return CPU_LIBRARY.loaded


def fallback(name: str) -> Callable[[Callable], Callable]:
    """Decorator: register the op's PyTorch reference adapter (schema arguments in order) for every device that
    has no compiled or Triton kernel for `name`, and record it in REFERENCE_KERNELS."""

    def register(kernel: Callable) -> Callable:
        REFERENCE_KERNELS[name] = kernel
        for dispatch_key in DISPATCH_KEYS:
            if not has_kernel(name, dispatch_key):
                lib.impl(name, kernel, dispatch_key)
        return kernel

    return register
