"""The compiled extensions on the benchmark machine: which load, and a background build of the CUDA C++ one.

A bare GPU machine has the repository but no build: ssni_kernels._C (CPU kernels) and _C_cuda (CUDA C++ kernels)
are missing, and the package runs without them (CPU ops on the PyTorch reference, CUDA ops on Triton, which
needs no build). The benchmark builds only _C_cuda, because only the GPU parts need it: `setup.py build_ext`
(SSNI_BUILD_CPU=0, SSNI_BUILD_CUDA=1) into a scratch folder while the Triton parts run, then copies the library
into ssni_kernels/ for the processes started after it. A missing toolchain, a failed build or one that does not
finish in time leaves the CUDA C++ parts skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD_JOBS = "3"  # ninja jobs: leaves most cores to the Triton compilations of the tests running meanwhile


def library_status() -> dict[str, str]:
    """'loaded' or the reason it is not, for ssni_kernels._C and _C_cuda (loads them into this process)."""
    from ssni_kernels import _extension, _library

    cpu = _library.CPU_LIBRARY
    status = {"_C": "loaded" if cpu.loaded else cpu.reason}
    cuda = _extension.load("_C_cuda")
    status["_C_cuda"] = "loaded" if cuda.loaded else cuda.reason
    return status


class CudaExtensionBuild:
    """`setup.py build_ext` of ssni_kernels._C_cuda in the background, output appended to `log`."""

    def __init__(self, work: Path, log: Path, arch: str):
        self.work = work
        self.log = log
        self.arch = arch
        self.process: subprocess.Popen | None = None
        self.started = 0.0

    def start(self) -> None:
        command = [sys.executable, "setup.py", "build_ext", "--build-lib", str(self.work / "lib"),
                   "--build-temp", str(self.work / "temp")]  # fmt: skip
        env = {**os.environ, "SSNI_BUILD_CPU": "0", "SSNI_BUILD_CUDA": "1", "MAX_JOBS": BUILD_JOBS,
               "TORCH_CUDA_ARCH_LIST": self.arch}  # fmt: skip
        with self.log.open("a") as log:
            log.write(f"\n===== build of ssni_kernels._C_cuda: {' '.join(command)}\n")
            log.flush()
            self.process = subprocess.Popen(
                command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.started = time.monotonic()

    def finish(self, timeout: float) -> tuple[bool, str]:
        """Wait up to `timeout` s; install the library when built. Returns (installed, what happened)."""
        assert self.process is not None
        try:
            code = self.process.wait(timeout=max(timeout, 1))
        except subprocess.TimeoutExpired:
            stop(self.process)
            return False, f"the build did not finish in {time.monotonic() - self.started:.0f} s (stopped)"
        seconds = time.monotonic() - self.started
        if code != 0:
            return False, f"the build failed (exit code {code} after {seconds:.0f} s; see the log)"
        built = sorted((self.work / "lib" / "ssni_kernels").glob("_C_cuda*"))
        if not built:
            return False, "the build produced no ssni_kernels/_C_cuda library"
        for library in built:
            staged = REPO / "ssni_kernels" / f".{library.name}.tmp"
            shutil.copy2(library, staged)
            os.replace(staged, REPO / "ssni_kernels" / library.name)
        return True, f"built in {seconds:.0f} s"


def stop(process: subprocess.Popen) -> None:
    """Kill a running child started with start_new_session=True, and whatever it started (its process group)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()
