"""Where the Triton kernel tests run: the GPU when there is one, else the CPU through Triton's interpreter.

Import this before anything from ssni_kernels.triton. On a machine without CUDA it sets TRITON_INTERPRET=1 and,
if the kernel modules were already imported as compiled kernels (some earlier import, e.g. of torch._dynamo, pulled
them in), reloads them so their kernels become interpreted ones. (The kernels avoid triton.language's own jit
helpers such as tl.zeros and tl.sum, which stay compiled when triton was imported before the variable was set.)
"""

from __future__ import annotations

import importlib
import os
import sys

import pytest
import torch

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
KERNEL_MODULES = (
    "ssni_kernels.triton.philox",
    "ssni_kernels.triton._launch",
    "ssni_kernels.triton.noise",
    "ssni_kernels.triton.score_norm",
    "ssni_kernels.triton.steps",
)

if DEVICE == "cpu":
    os.environ["TRITON_INTERPRET"] = "1"
pytest.importorskip("triton")
if DEVICE == "cpu":
    from triton.runtime.interpreter import InterpretedFunction

    philox_module = sys.modules.get(KERNEL_MODULES[0])
    if philox_module is not None and not isinstance(philox_module.philox4x32_10, InterpretedFunction):
        for name in KERNEL_MODULES:
            if name in sys.modules:
                importlib.reload(sys.modules[name])


def use_small_tiles(monkeypatch) -> None:
    """32-element tiles, so that small rows span several programs with a ragged tail."""
    from ssni_kernels.triton import _launch, score_norm

    monkeypatch.setattr(_launch, "INTERPRETER_MAX_BLOCK", 32)
    monkeypatch.setattr(_launch, "GPU_BLOCK", 32)
    monkeypatch.setattr(score_norm, "GPU_BLOCK", 32)


DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
# (dtype, small tiles): every dtype with the default tiles, and float32 also with small tiles (the multi-tile
# paths do not depend on the dtype, and the interpreter is slow).
DTYPE_CASES = [
    pytest.param(torch.float32, True, id="float32-small-tiles"),
    pytest.param(torch.float32, False, id="float32"),
    pytest.param(torch.float16, False, id="float16"),
    pytest.param(torch.bfloat16, False, id="bfloat16"),
    pytest.param(torch.float64, False, id="float64"),
]
