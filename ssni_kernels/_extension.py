"""Loads the compiled kernel libraries into torch's dispatcher and says which ones are available.

``ssni_kernels._C`` (CPU kernels, csrc/cpu/) and ``ssni_kernels._C_cuda`` (optional CUDA kernels, csrc/cuda/) are
plain shared libraries built by setup.py; they register kernels for the ``ssni::`` schemas that ops.py defines,
so they are loaded after the schemas exist. Set ``SSNI_NO_EXTENSION=1`` to ignore them (the reference path is
used instead; handy to compare or to debug).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

import torch

BUILD_HINT = "build it with `pip install --no-build-isolation --no-deps -e .` in the repository root"


@dataclass(frozen=True)
class LibraryStatus:
    """Whether one compiled library is loaded, and why not."""

    name: str
    loaded: bool
    reason: str = ""


def load(name: str) -> LibraryStatus:
    """Load ``ssni_kernels.<name>`` (a shared library without a Python module) if it was built."""
    if os.environ.get("SSNI_NO_EXTENSION", "0") == "1":
        return LibraryStatus(name, False, "disabled by SSNI_NO_EXTENSION=1")
    spec = importlib.util.find_spec(f"ssni_kernels.{name}")
    if spec is None or spec.origin is None:
        return LibraryStatus(name, False, f"ssni_kernels.{name} is not built ({BUILD_HINT})")
    try:
        torch.ops.load_library(spec.origin)
    except OSError as error:  # built against another torch, or a missing runtime library
        return LibraryStatus(name, False, f"{spec.origin} failed to load ({error}); rebuild: {BUILD_HINT}")
    return LibraryStatus(name, True)
