"""The public ops, one op family per module, mirroring ``triton/`` and ``csrc/cpu/``:

- ``noise``: noise_inject, noise_inject_levels, philox_bits (debug op: raw Philox words);
- ``score_norm``: score_norm (and its backward op);
- ``steps``: reverse_step, vp_sde_step and their per-sample coefficients (reverse_step_coefs, vp_sde_step_coefs).

Each module reads top to bottom per op: public wrapper (validates its arguments with ``_checks``, then calls
``torch.ops.ssni.<op>``), fake kernel, autograd, reference adapter. The schemas, the compiled kernels and the
reference fallback are registered in ``ssni_kernels._library``.
"""

from ssni_kernels._library import cpu_kernels_compiled
from ssni_kernels.ops.noise import noise_inject, noise_inject_levels, philox_bits
from ssni_kernels.ops.score_norm import score_norm
from ssni_kernels.ops.steps import reverse_step, reverse_step_coefs, vp_sde_step, vp_sde_step_coefs

__all__ = [
    "cpu_kernels_compiled",
    "noise_inject",
    "noise_inject_levels",
    "philox_bits",
    "score_norm",
    "reverse_step",
    "reverse_step_coefs",
    "vp_sde_step",
    "vp_sde_step_coefs",
]
