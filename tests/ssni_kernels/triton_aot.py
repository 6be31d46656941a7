"""Ahead-of-time compile of the Triton kernels for Hopper (sm_90), which needs no GPU: catches what the
interpreter cannot (type rules of compiled Triton, layouts, ptxas). Run as a script in a process WITHOUT
TRITON_INTERPRET (test_triton_compile.py does): `python tests/ssni_kernels/triton_aot.py`."""

from __future__ import annotations

import os
import sys

import triton
import triton.language as tl
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from ssni_kernels.triton import noise, philox, score_norm, steps

TARGET = GPUTarget("cuda", 90, 32)
NOISE_ARGS = {"seed_lo": "i32", "seed_hi": "i32", "step": "i32"}


def _signature(pointers: dict[str, str], scalars: dict[str, str], constexprs: dict) -> dict[str, str]:
    return {**{k: f"*{v}" for k, v in pointers.items()}, **scalars, **dict.fromkeys(constexprs, "constexpr")}


def kernels(dtype: str, cdt) -> list[tuple[str, object, dict, dict]]:
    """(name, kernel, signature, constexprs) of every kernel for storage dtype `dtype` (Triton type name)."""
    acc = "fp64" if dtype == "fp64" else "fp32"
    rows = {"x_ptr": dtype, "noise_ptr": dtype, "ids_ptr": "i64", "out_ptr": dtype}
    noise_flags = {"HAS_NOISE": False, "HAS_IDS": True, "CDT": cdt, "BLOCK": 1024}
    # The step kernels with one step word for all samples, and with a word per sample (loaded from steps_ptr).
    step_variants = [("", {**noise_flags, "HAS_STEPS": False}), ("/steps", {**noise_flags, "HAS_STEPS": True})]
    return [
        (
            "noise_inject",
            noise._noise_inject_kernel,
            _signature(
                {**rows, "t_ptr": "i64", "acp_ptr": "fp32"},
                {"row_numel": "i32", **NOISE_ARGS},
                {"STREAM": 0, **noise_flags},
            ),
            {"STREAM": 0, **noise_flags},
        ),
        (
            "noise_inject_levels",
            noise._noise_inject_levels_kernel,
            _signature(
                {**rows, "mean_ptr": "fp32", "std_ptr": "fp32"},
                {"n_levels": "i32", "batch": "i32", "row_numel": "i32", "seed_lo": "i32", "seed_hi": "i32"},
                {"STREAM": 1, **noise_flags},
            ),
            {"STREAM": 1, **noise_flags},
        ),
        (
            "score_norm",
            score_norm._score_norm_partials_kernel,
            _signature(
                {"eps_ptr": dtype, "sigma_ptr": "fp32", "partial_ptr": acc},
                {"n_levels": "i32", "batch": "i32", "row_numel": "i32"},
                {"CDT": cdt, "BLOCK": 2048},
            ),
            {"CDT": cdt, "BLOCK": 2048},
        ),
        (
            "score_norm_backward",
            score_norm._score_norm_backward_kernel,
            _signature(
                {"eps_ptr": dtype, "sigma_ptr": "fp32", "norm_ptr": acc, "grad_ptr": acc, "grad_eps_ptr": dtype},
                {"n_levels": "i32", "batch": "i32", "row_numel": "i32"},
                {"CDT": cdt, "BLOCK": 2048},
            ),
            {"CDT": cdt, "BLOCK": 2048},
        ),
        *(
            (
                f"reverse_step{suffix}",
                steps._reverse_step_kernel,
                _signature(
                    {
                        **rows,
                        "eps_ptr": dtype,
                        "a_ptr": "fp32",
                        "a_next_ptr": "fp32",
                        "steps_ptr": "i64",
                        "active_ptr": "u8",
                    },
                    {"row_numel": "i32", "eta": "fp32", **NOISE_ARGS},
                    {"STREAM": 2, "HAS_Z": True, "HAS_ACTIVE": True, **flags},
                ),
                {"STREAM": 2, "HAS_Z": True, "HAS_ACTIVE": True, **flags},
            )
            for suffix, flags in step_variants
        ),
        *(
            (
                f"vp_sde_step{suffix}",
                steps._vp_sde_step_kernel,
                _signature(
                    {**rows, "eps_ptr": dtype, "coef_ptr": acc, "steps_ptr": "i64", "active_ptr": "u8"},
                    {"batch": "i32", "row_numel": "i32", **NOISE_ARGS},
                    {"STREAM": 3, "HAS_ACTIVE": True, **flags},
                ),
                {"STREAM": 3, "HAS_ACTIVE": True, **flags},
            )
            for suffix, flags in step_variants
        ),
        (
            "philox_bits",
            philox._philox_bits_kernel,
            _signature(
                {"counter_ptr": "i64", "out_ptr": "i64"},
                {"n": "i32", "seed_lo": "i32", "seed_hi": "i32"},
                {"BLOCK": 1024},
            ),
            {"BLOCK": 1024},
        ),
    ]


def main() -> int:
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        print("run without TRITON_INTERPRET=1", file=sys.stderr)
        return 2
    failures = 0
    # float32 for every kernel; bfloat16 and float64 for the noise kernel (the storage/compute casts).
    cases = [(name, k, s, c) for name, k, s, c in kernels("fp32", tl.float32)]
    cases += [
        (f"{n} {d}", k, s, c)
        for d, cdt in (("bf16", tl.float32), ("fp64", tl.float64))
        for n, k, s, c in kernels(d, cdt)[:1]
    ]
    for name, kernel, signature, constexprs in cases:
        try:
            triton.compile(ASTSource(kernel, signature, constexprs), target=TARGET, options={"num_warps": 4})
            print(f"ok   {name}", flush=True)
        except Exception as error:  # report every kernel, then fail
            failures += 1
            print(f"FAIL {name}: {type(error).__name__}: {error}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
