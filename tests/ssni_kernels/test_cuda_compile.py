"""Compile check of the CUDA sources (csrc/cuda/): every .cu with nvcc alone (CUDA headers only) and every .cpp
binding against torch's headers, for Hopper (sm_90). Object files only: nothing is linked or loaded, so this runs
on a machine without a GPU. Skipped when nvcc or a CUDA build of torch is absent."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import torch

CUDA_DIR = Path(__file__).resolve().parents[2] / "csrc" / "cuda"
NVCC = shutil.which("nvcc")
# What setup.py's CUDAExtension passes to nvcc for the .cu files (its flags plus torch's defaults), and torch's
# C++ standard for the bindings.
CU_FLAGS = [
    "-O3",
    "--use_fast_math",
    "-lineinfo",
    "-std=c++20",
    "-arch=sm_90",
    "--expt-relaxed-constexpr",
    "-D__CUDA_NO_HALF_OPERATORS__",
    "-D__CUDA_NO_HALF_CONVERSIONS__",
    "-D__CUDA_NO_BFLOAT16_CONVERSIONS__",
    "-D__CUDA_NO_HALF2_OPERATORS__",
]
CPP_FLAGS = ["-O3", "-std=c++20", "-D_GLIBCXX_USE_CXX11_ABI=1"]

pytestmark = pytest.mark.skipif(
    NVCC is None or torch.version.cuda is None, reason="needs nvcc and a CUDA build of torch"
)


def _compile_all(sources: list[Path], flags_for, out_dir: Path) -> dict[str, str]:
    """Compile the sources concurrently; returns {source name: compiler output} of the failures."""
    jobs = {
        src.name: subprocess.Popen(
            [NVCC, "-c", *flags_for(src), f"-I{CUDA_DIR}", str(src), "-o", str(out_dir / f"{src.name}.o")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for src in sources
    }
    failures = {}
    for name, job in jobs.items():
        output, _ = job.communicate(timeout=600)
        if job.returncode != 0:
            failures[name] = output
    return failures


def test_cuda_sources_compile(tmp_path):
    from torch.utils.cpp_extension import include_paths

    torch_includes = [f"-I{p}" for p in include_paths("cuda") if Path(p).is_dir()]
    sources = sorted(CUDA_DIR.glob("*.cu")) + sorted(CUDA_DIR.glob("*.cpp"))
    assert any(s.suffix == ".cu" for s in sources) and any(s.suffix == ".cpp" for s in sources)
    for src in CUDA_DIR.glob("*.cu*"):
        assert "torch/" not in src.read_text() and "ATen/" not in src.read_text(), f"{src.name} includes torch"
    failures = _compile_all(sources, lambda s: CU_FLAGS if s.suffix == ".cu" else CPP_FLAGS + torch_includes, tmp_path)
    assert not failures, "\n\n".join(f"{name}:\n{output}" for name, output in failures.items())
    assert all((tmp_path / f"{s.name}.o").stat().st_size > 0 for s in sources)
