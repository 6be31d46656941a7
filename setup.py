"""Builds the compiled parts of ssni_kernels (metadata lives in pyproject.toml).

- ``ssni_kernels._C``: the CPU kernels of csrc/cpu/ (always, unless SSNI_BUILD_CPU=0), with csrc/cpu/isa/*.cpp
  compiled once per instruction set of ISA_FLAGS (x86-64: scalar, AVX2, AVX-512; elsewhere scalar only), each into
  its own namespace, and chosen at run time by the CPU's features (ATen's CPU-capability scheme).
- ``ssni_kernels._C_cuda``: csrc/cuda/*.cu + *.cpp, when torch is a CUDA build, nvcc is found and sources exist
  (SSNI_BUILD_CUDA=auto, the default); SSNI_BUILD_CUDA=1 makes a missing toolchain an error, 0 skips it.

Both libraries only register kernels for the ``ssni::`` schemas defined in ssni_kernels/ops.py; they are loaded
with torch.ops.load_library by ssni_kernels/_extension.py. Develop with
``pip install --no-build-isolation --no-deps -e .``.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent
CXX_FLAGS = ["-O3", "-fopenmp", "-fno-math-errno"]
# Per-ISA builds of csrc/cpu/isa/*.cpp: namespace (-DSSNI_CPU_CAPABILITY) → target flags. Their float arithmetic
# is written out operation by operation (explicit fused multiply-adds), so the compiler must not fuse on its own.
ISA_COMMON_FLAGS = ["-O3", "-fno-math-errno", "-ffp-contract=off", "-Wno-psabi"]
ISA_FLAGS = {"DEFAULT": []}
if platform.machine().lower() in ("x86_64", "amd64"):
    ISA_FLAGS.update(AVX2=["-mavx2", "-mfma"], AVX512=["-mavx512f", "-mfma"])
NVCC_FLAGS = ["-O3", "--use_fast_math", "-lineinfo"]


def _env_mode(name: str, default: str) -> str:
    value = os.environ.get(name, default).strip().lower()
    if value not in ("0", "1", "auto"):
        raise ValueError(f"{name} must be 0, 1 or auto, got {value!r}")
    return value


def _sources(*patterns: str) -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for pattern in patterns for p in ROOT.glob(pattern))


def _nvidia_include_dirs() -> list[str]:
    """<site-packages>/nvidia/cu13/include: headers (cuRAND, cuBLAS, ...) that a bare CUDA toolkit may lack."""
    spec = importlib.util.find_spec("nvidia")
    if spec is None or not spec.submodule_search_locations:
        return []
    return sorted(
        d for root in spec.submodule_search_locations for d in glob.glob(os.path.join(root, "cu*", "include"))
    )


def _toolkit_of_nvcc() -> str | None:
    """The CUDA toolkit the `nvcc` on PATH really runs (it may be a wrapper script outside the toolkit)."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return None
    dryrun = subprocess.run(
        [nvcc, "-dryrun", "-x", "cu", "-c", os.devnull, "-o", os.devnull], capture_output=True, text=True
    )
    top = re.search(r"^#\$ TOP=(.+)$", dryrun.stdout + dryrun.stderr, re.MULTILINE)
    return os.path.realpath(top.group(1).strip()) if top else None


def _extensions():
    if os.environ.get("SSNI_BUILD_CUDA", "auto") != "0" and not os.environ.get("CUDA_HOME"):
        # torch guesses CUDA_HOME from nvcc's folder, which is wrong for a wrapper; set it before torch reads it.
        toolkit = _toolkit_of_nvcc()
        if toolkit:
            os.environ["CUDA_HOME"] = toolkit
    from torch.utils import cpp_extension

    extensions = []
    if _env_mode("SSNI_BUILD_CPU", "1") != "0":
        cpu = cpp_extension.CppExtension(
            "ssni_kernels._C",
            _sources("csrc/cpu/*.cpp"),
            include_dirs=[str(ROOT / "csrc" / "cpu")],
            define_macros=[(f"SSNI_BUILT_{isa}", "1") for isa in ISA_FLAGS if isa != "DEFAULT"],
            extra_compile_args={"cxx": CXX_FLAGS},
            extra_link_args=["-fopenmp"],
            # Rebuild when a header or a per-ISA source changes (setuptools only compares the sources).
            depends=_sources("csrc/cpu/*.h", "csrc/cpu/isa/*.cpp"),
        )
        cpu.isa_sources = _sources("csrc/cpu/isa/*.cpp")
        extensions.append(cpu)
    cuda_mode = _env_mode("SSNI_BUILD_CUDA", "auto")
    if cuda_mode != "0":
        import torch

        cuda_sources = _sources("csrc/cuda/*.cu", "csrc/cuda/*.cpp")
        requirements = {
            "csrc/cuda sources": bool(cuda_sources),
            "CUDA build of torch": torch.version.cuda is not None,
            "nvcc (CUDA_HOME)": cpp_extension.CUDA_HOME is not None,
        }
        missing = [what for what, ok in requirements.items() if not ok]
        if missing and cuda_mode == "1":
            raise RuntimeError(f"SSNI_BUILD_CUDA=1 but missing: {', '.join(missing)}")
        if not missing:
            os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "9.0")
            nvidia_dirs = _nvidia_include_dirs()
            extensions.append(
                cpp_extension.CUDAExtension(
                    "ssni_kernels._C_cuda",
                    cuda_sources,
                    include_dirs=[str(ROOT / "csrc" / "cuda")],
                    # After the toolkit's own headers: the wheels' folders lack parts of the toolkit (crt/).
                    extra_compile_args={
                        "cxx": ["-O3", *(flag for d in nvidia_dirs for flag in ("-idirafter", d))],
                        "nvcc": [
                            *NVCC_FLAGS,
                            *(flag for d in nvidia_dirs for flag in ("-Xcompiler", f"-idirafter,{d}")),
                        ],
                    },
                )
            )
    return extensions


def _build_ext():
    from torch.utils.cpp_extension import BuildExtension

    class BuildWithIsaObjects(BuildExtension):
        """Compiles an extension's `isa_sources` once per ISA_FLAGS entry (into build_temp/isa-<name>/, with that
        ISA's flags and namespace) and links the objects into it."""

        def build_extension(self, ext):
            for isa, flags in ISA_FLAGS.items():
                if not getattr(ext, "isa_sources", None):
                    break
                ext.extra_objects += self.compiler.compile(
                    ext.isa_sources,
                    output_dir=os.path.join(self.build_temp, f"isa-{isa.lower()}"),
                    include_dirs=ext.include_dirs,
                    extra_postargs=[*ISA_COMMON_FLAGS, *flags, f"-DSSNI_CPU_CAPABILITY={isa}"],
                )
            super().build_extension(ext)

    return BuildWithIsaObjects.with_options(use_ninja=True, no_python_abi_suffix=False)


setup(ext_modules=_extensions(), cmdclass={"build_ext": _build_ext()})
