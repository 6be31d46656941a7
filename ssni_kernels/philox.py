"""Independent NumPy Philox4x32-10 and the ssni noise stream, for tests.

This file is the written-down definition of ssni's random numbers. The torch reference
(`reference.normal_noise`), the C++ kernels (`csrc/cpu/philox.h`) and the Triton kernels must produce
the same uint32 words for the same key and counter, and normals equal to float32 rounding.

Stream definition, per sample and element index e (row-major over C·H·W):

    key     = (seed mod 2**32, seed div 2**32 mod 2**32)
    counter = (e div 4, step, sample_id, stream)
    r0..r3  = philox4x32_10(counter, key)
    u_j     = (r_j >> 9) · 2**-23 + 2**-24               # exact in float32, strictly inside (0, 1)
    (z0, z1) = box_muller(u0, u1),  (z2, z3) = box_muller(u2, u3)
    noise[e] = z_{e mod 4}
    box_muller(a, b) = (sqrt(−2 ln a)·cos(2πb), sqrt(−2 ln a)·sin(2πb))

`stream` separates the ops (see `reference.STREAM_*`); `step` separates calls of one op (a level, a reverse
step index, an EOT draw), chosen by the caller.
"""

from __future__ import annotations

import numpy as np

PHILOX_M0 = 0xD2511F53
PHILOX_M1 = 0xCD9E8D57
PHILOX_W0 = 0x9E3779B9
PHILOX_W1 = 0xBB67AE85
PHILOX_ROUNDS = 10
_MASK32 = 0xFFFFFFFF


def _mulhilo(a: int, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    prod = np.uint64(a) * b.astype(np.uint64)
    return (prod >> np.uint64(32)).astype(np.uint32), (prod & np.uint64(_MASK32)).astype(np.uint32)


def philox4x32_10(counter: tuple, key: tuple) -> tuple[np.ndarray, ...]:
    """Philox4x32 with 10 rounds (Salmon et al., SC'11). counter: 4 uint32 arrays; key: 2 uint32 scalars."""
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint32) for c in counter)
    c0, c1, c2, c3 = np.broadcast_arrays(c0, c1, c2, c3)
    k0, k1 = int(key[0]) & _MASK32, int(key[1]) & _MASK32
    for r in range(PHILOX_ROUNDS):
        if r > 0:
            k0 = (k0 + PHILOX_W0) & _MASK32
            k1 = (k1 + PHILOX_W1) & _MASK32
        hi0, lo0 = _mulhilo(PHILOX_M0, c0)
        hi1, lo1 = _mulhilo(PHILOX_M1, c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ np.uint32(k0), lo1, hi0 ^ c3 ^ np.uint32(k1), lo0
    return c0, c1, c2, c3


def uniform_from_bits(bits: np.ndarray) -> np.ndarray:
    """uint32 → float32 in (0, 1): the top 23 bits plus half an ulp, exactly representable."""
    return ((bits >> np.uint32(9)).astype(np.float64) * 2.0**-23 + 2.0**-24).astype(np.float32)


def normal_noise(numel: int, seed: int, sample_id: int, step: int, stream: int) -> np.ndarray:
    """The ssni normal stream of one sample: float32 [numel]."""
    groups = np.arange((numel + 3) // 4, dtype=np.uint64).astype(np.uint32)
    key = (seed & _MASK32, (seed >> 32) & _MASK32)
    r = philox4x32_10((groups, step & _MASK32, sample_id & _MASK32, stream & _MASK32), key)
    u = [uniform_from_bits(w).astype(np.float64) for w in r]
    z = np.empty((groups.size, 4), dtype=np.float64)
    for j, (a, b) in enumerate(((0, 1), (2, 3))):
        radius = np.sqrt(-2.0 * np.log(u[a]))
        z[:, 2 * j] = radius * np.cos(2.0 * np.pi * u[b])
        z[:, 2 * j + 1] = radius * np.sin(2.0 * np.pi * u[b])
    return z.reshape(-1)[:numel].astype(np.float32)
