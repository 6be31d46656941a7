"""GPU kernels of ssni_kernels: Triton by default, the CUDA C++ ones of `csrc/cuda` on request.

Op families (one module each): `noise` (noise_inject, noise_inject_levels, normal_noise), `score_norm`
(score_norm and its backward), `steps` (reverse_step, vp_sde_step); `philox` holds the shared Philox stream.
Launchers take the reference's keyword arguments (see `ssni_kernels.reference`), expect inputs already
validated by `ssni_kernels.ops`, and also run on CPU tensors under TRITON_INTERPRET=1 (how the tests run them).

`register_cuda_impls(lib)` binds them to the CUDA dispatch key of the `ssni` torch.library ops (schemas in
`ssni_kernels._library`). SSNI_CUDA_BACKEND=cuda selects the CUDA C++ kernels of `ssni_kernels._C_cuda` (csrc/cuda/)
for the ops it implements (noise_inject, score_norm); the remaining ops, and every op when that extension is
absent, use Triton (the default, SSNI_CUDA_BACKEND=triton).
"""

from __future__ import annotations

import os
import warnings

import torch

from ssni_kernels import _library
from ssni_kernels.triton import noise, philox, score_norm, steps

__all__ = ["LAUNCHERS", "register_cuda_impls"]

# torch.library op name → Triton launcher; a launcher takes the schema's arguments by name.
LAUNCHERS = {
    "noise_inject": noise.noise_inject,
    "noise_inject_levels": noise.noise_inject_levels,
    "score_norm": score_norm.score_norm,
    "score_norm_backward": score_norm.score_norm_backward,
    "philox_bits": philox.philox_bits,
    "reverse_step": steps.reverse_step,
    "vp_sde_step": steps.vp_sde_step,
}


def _by_name(launcher, argument_names: list[str]):
    """An impl the dispatcher calls in schema order (positional or keyword) that calls launcher by keyword."""

    def impl(*args, **kwargs):
        return launcher(**dict(zip(argument_names, args)), **kwargs)

    impl.__name__ = f"{launcher.__name__}_cuda"
    impl.__doc__ = launcher.__doc__
    return impl


def _cuda_backend() -> str:
    backend = os.environ.get("SSNI_CUDA_BACKEND", "triton").lower()
    if backend not in ("triton", "cuda"):
        raise ValueError(f"SSNI_CUDA_BACKEND must be 'triton' or 'cuda', got {backend!r}")
    return backend


def _load_cuda_cpp_kernels() -> bool:
    """Load ssni_kernels._C_cuda (its TORCH_LIBRARY_IMPL registers its CUDA kernels); warn when it is absent."""
    from ssni_kernels import _extension

    status = _extension.load("_C_cuda")
    if not status.loaded:
        warnings.warn(
            f"SSNI_CUDA_BACKEND=cuda but the CUDA C++ kernels are unavailable ({status.reason}); using Triton",
            stacklevel=3,
        )
    return status.loaded


def register_cuda_impls(lib: torch.library.Library, dispatch_key: str = "CUDA") -> list[str]:
    """Register the Triton kernels for `dispatch_key` (CUDA; tests use CPU with the interpreter) of the ops
    defined in `lib`'s namespace, and return their names.

    With SSNI_CUDA_BACKEND=cuda, ops that ssni_kernels._C_cuda serves keep its CUDA C++ kernels; otherwise the
    Triton kernels are registered for every op that has a launcher (ops not defined in `lib` are skipped).
    """
    keep_cuda_cpp = _cuda_backend() == "cuda" and _load_cuda_cpp_kernels()
    registered = []
    for name, launcher in LAUNCHERS.items():
        argument_names = _library.schema_argument_names(name, lib.ns)
        if argument_names is None:
            continue
        if keep_cuda_cpp and _library.has_kernel(name, dispatch_key, lib.ns):
            continue
        lib.impl(name, _by_name(launcher, argument_names), dispatch_key)
        registered.append(name)
    return registered
