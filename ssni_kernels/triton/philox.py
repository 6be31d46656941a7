"""The ssni Philox4x32-10 normal stream as Triton device functions (definition: `ssni_kernels/philox.py`).

All counter and key arithmetic is uint32 (`tl.umulhi` for the high word, wrapping `*` for the low word), so the
words are bit-identical to the NumPy reference; the Box-Muller transform runs in float32 (`tl.log`, `tl.cos`,
`tl.sin`, `tl.sqrt`: no libdevice, so the interpreter runs it too), within float32 rounding of the reference.

Element e of a sample uses counter (e div 4, step, sample_id, stream) and word e mod 4, so one Philox call
yields four consecutive elements: `normal_block` draws a BLOCK of elements from BLOCK / 4 calls.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

PHILOX_M0: tl.constexpr = tl.constexpr(0xD2511F53)
PHILOX_M1: tl.constexpr = tl.constexpr(0xCD9E8D57)
PHILOX_W0: tl.constexpr = tl.constexpr(0x9E3779B9)
PHILOX_W1: tl.constexpr = tl.constexpr(0xBB67AE85)
MASK32 = 0xFFFFFFFF


def split_seed(seed: int) -> tuple[int, int]:
    """The Philox key (seed mod 2**32, seed div 2**32 mod 2**32) as two Python ints."""
    return seed & MASK32, (seed >> 32) & MASK32


@triton.jit
def _uint32(v):
    """A scalar kernel argument (i32 or i64, whichever Triton typed it as) → uint32 by truncation."""
    return tl.full([], v, tl.int64).to(tl.uint32)


@triton.jit
def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Ten Philox rounds on uint32 counter blocks c0..c3 (same shape) with the uint32 scalar key (k0, k1)."""
    m0 = tl.full(c0.shape, PHILOX_M0, tl.uint32)
    m1 = tl.full(c0.shape, PHILOX_M1, tl.uint32)
    w0 = tl.full([], PHILOX_W0, tl.uint32)
    w1 = tl.full([], PHILOX_W1, tl.uint32)
    for r in tl.static_range(10):
        if r > 0:
            k0 = k0 + w0
            k1 = k1 + w1
        hi0 = tl.umulhi(m0, c0)
        lo0 = m0 * c0
        hi1 = tl.umulhi(m1, c2)
        lo1 = m1 * c2
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


@triton.jit
def uniform_from_bits(r):
    """uint32 → float32 (r >> 9)·2⁻²³ + 2⁻²⁴: exact, strictly inside (0, 1)."""
    return (r >> 9).to(tl.int32).to(tl.float32) * 1.1920928955078125e-07 + 5.9604644775390625e-08


@triton.jit
def _box_muller(u_radius, u_angle):
    radius = tl.sqrt(-2.0 * tl.log(u_radius))
    angle = 6.283185307179586 * u_angle
    return radius * tl.cos(angle), radius * tl.sin(angle)


@triton.jit
def normal_block(first_element, step, sample_id, stream, seed_lo, seed_hi, BLOCK: tl.constexpr):
    """float32 normals of elements first_element … first_element + BLOCK − 1 of one sample's stream.

    first_element must be a multiple of 4 and BLOCK a power of two ≥ 4; step, sample_id, stream and the seed
    halves are scalars (any integer type; truncated to uint32).
    """
    groups = (first_element // 4 + tl.arange(0, BLOCK // 4)).to(tl.uint32)
    zeros = tl.full([BLOCK // 4], 0, tl.uint32)
    c1 = zeros + _uint32(step)
    c2 = zeros + _uint32(sample_id)
    c3 = zeros + _uint32(stream)
    r0, r1, r2, r3 = philox4x32_10(groups, c1, c2, c3, _uint32(seed_lo), _uint32(seed_hi))
    z0, z1 = _box_muller(uniform_from_bits(r0), uniform_from_bits(r1))
    z2, z3 = _box_muller(uniform_from_bits(r2), uniform_from_bits(r3))
    # join(join(z0, z2), join(z1, z3)) flattens to z0, z1, z2, z3 per group: element e takes word e mod 4.
    return tl.reshape(tl.join(tl.join(z0, z2), tl.join(z1, z3)), [BLOCK])


@triton.jit
def _philox_bits_kernel(counter_ptr, out_ptr, n, seed_lo, seed_hi, BLOCK: tl.constexpr):
    rows = (tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)).to(tl.int64)
    mask = rows < n
    c0 = tl.load(counter_ptr + 4 * rows, mask=mask, other=0).to(tl.uint32)
    c1 = tl.load(counter_ptr + 4 * rows + 1, mask=mask, other=0).to(tl.uint32)
    c2 = tl.load(counter_ptr + 4 * rows + 2, mask=mask, other=0).to(tl.uint32)
    c3 = tl.load(counter_ptr + 4 * rows + 3, mask=mask, other=0).to(tl.uint32)
    r0, r1, r2, r3 = philox4x32_10(c0, c1, c2, c3, _uint32(seed_lo), _uint32(seed_hi))
    # uint32 → int64 zero-extends, so the words come back as their unsigned values.
    tl.store(out_ptr + 4 * rows, r0.to(tl.int64), mask=mask)
    tl.store(out_ptr + 4 * rows + 1, r1.to(tl.int64), mask=mask)
    tl.store(out_ptr + 4 * rows + 2, r2.to(tl.int64), mask=mask)
    tl.store(out_ptr + 4 * rows + 3, r3.to(tl.int64), mask=mask)


def philox_bits(counters, seed: int):
    """Raw Philox4x32-10 words (the `ssni::philox_bits` test op): counters [N, 4] int64 holding uint32 → [N, 4]."""
    counters = counters.contiguous()
    n = counters.shape[0]
    out = torch.empty_like(counters)
    if n == 0:
        return out
    block = min(triton.next_power_of_2(n), 4096)
    _philox_bits_kernel[(triton.cdiv(n, block),)](counters, out, n, *split_seed(seed), BLOCK=block)
    return out
