"""ssni_kernels: fused ops for diffusion-based purification with a timestep per sample.

Public ops (also registered as ``torch.ops.ssni.<name>``): noise_inject, noise_inject_levels, score_norm,
reverse_step, vp_sde_step, and philox_bits (the raw Philox words behind the generated noise). The math of each
is in ``ssni_kernels.reference``.
"""

from ssni_kernels.ops import noise_inject, noise_inject_levels, philox_bits, reverse_step, score_norm, vp_sde_step

__all__ = [
    "noise_inject",
    "noise_inject_levels",
    "score_norm",
    "reverse_step",
    "vp_sde_step",
    "philox_bits",
]
