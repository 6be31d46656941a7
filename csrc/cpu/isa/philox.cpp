// The Philox normal stream (philox.h) written once for every instruction set (built once per ISA: isa_kernels.h).
// The register width and three primitives (32×32→64 multiply, fused multiply-add, sqrt) follow the compiler's
// target macros; the rest is GCC/Clang vector extensions. Everything is in namespace ssni::<ISA> and this file
// includes no header with inline functions, so that no code compiled for one ISA can stand in for another's at
// link time.
//
// Lanes: Philox counters sit one per 64-bit lane with the 32-bit word in the low half (the high half is scratch),
// so that one multiply instruction gives both halves of M·c. After the rounds the words of a group pair up as
// (w0, w2) and (w1, w3) in adjacent 32-bit lanes: its two Box–Muller pairs, whose outputs (r·cos, r·sin)
// interleave into the group's four normals in stream order.
//
// Rounding: the float arithmetic is the stream's definition, operation by operation: fused multiply-adds exactly
// where the stream has them (fmadd), every other operation rounded on its own (compiled with -ffp-contract=off),
// IEEE sqrt. Hence every ISA, the scalar one included, gives the same bits.
#include <cstdint>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif
#if defined(__AVX512F__) && defined(__GNUC__) && !defined(__clang__)
// GCC's _mm512_undefined_* (a self-initialised variable inside _mm512_mul_epu32, _mm512_sqrt_ps) trips
// -Wmaybe-uninitialized wherever those are inlined.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "isa.h"

namespace ssni::SSNI_CPU_CAPABILITY {

// Everything below is one straight-line loop body once inlined; the compiler's size heuristics would not inline it.
#define SSNI_INLINE inline __attribute__((always_inline))

// One machine register per vector type, and kRegisters of them per value: every operation runs on all of them in
// lockstep, independent dependency chains that keep the pipelines full (Philox + Box–Muller is one long chain).
// The scalar build takes AVX-512's register width, so that its lane layout (tails included) is exercised on every
// machine.
#if defined(__AVX512F__)
constexpr int kRegisterBytes = 64;
constexpr int kRegisters = 6;
#elif defined(__AVX2__) && defined(__FMA__)
constexpr int kRegisterBytes = 32;
constexpr int kRegisters = 6;
#else
constexpr int kRegisterBytes = 64;
constexpr int kRegisters = 1;
#endif

typedef uint32_t u32r __attribute__((vector_size(kRegisterBytes)));
typedef int32_t i32r __attribute__((vector_size(kRegisterBytes)));
typedef uint64_t u64r __attribute__((vector_size(kRegisterBytes)));
typedef float f32r __attribute__((vector_size(kRegisterBytes)));

// ---- the ISA-specific primitives, on one register ------------------------------------------------------------

#if defined(__AVX512F__)
// 64-bit lanes ← (low half of a)·(low half of b), all 64 bits.
SSNI_INLINE u64r mul_wide(u64r a, u64r b) { return (u64r)_mm512_mul_epu32((__m512i)a, (__m512i)b); }
SSNI_INLINE f32r fmadd(f32r a, f32r b, f32r c) { return (f32r)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c); }
SSNI_INLINE f32r sqrt_v(f32r a) { return (f32r)_mm512_sqrt_ps((__m512)a); }
#elif defined(__AVX2__) && defined(__FMA__)
SSNI_INLINE u64r mul_wide(u64r a, u64r b) { return (u64r)_mm256_mul_epu32((__m256i)a, (__m256i)b); }
SSNI_INLINE f32r fmadd(f32r a, f32r b, f32r c) { return (f32r)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c); }
SSNI_INLINE f32r sqrt_v(f32r a) { return (f32r)_mm256_sqrt_ps((__m256)a); }
#else
SSNI_INLINE u64r mul_wide(u64r a, u64r b) { return (a & 0xFFFFFFFFu) * (b & 0xFFFFFFFFu); }
SSNI_INLINE f32r fmadd(f32r a, f32r b, f32r c) {
  f32r d;
  for (int i = 0; i < kRegisterBytes / 4; ++i) d[i] = __builtin_fmaf(a[i], b[i], c[i]);  // libm without FMA hardware
  return d;
}
SSNI_INLINE f32r sqrt_v(f32r a) {
  f32r d;
  for (int i = 0; i < kRegisterBytes / 4; ++i) d[i] = __builtin_sqrtf(a[i]);
  return d;
}
#endif

// Pair lanes i → out[2i] = x_i, out[2i + 1] = y_i (2·lanes floats).
SSNI_INLINE void store_interleaved(f32r x, f32r y, float* out) {
#if defined(__AVX512F__)
  const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  _mm512_storeu_ps(out, _mm512_permutex2var_ps((__m512)x, lo, (__m512)y));
  _mm512_storeu_ps(out + 16, _mm512_permutex2var_ps((__m512)x, hi, (__m512)y));
#elif defined(__AVX2__) && defined(__FMA__)
  const __m256 lo = _mm256_unpacklo_ps((__m256)x, (__m256)y), hi = _mm256_unpackhi_ps((__m256)x, (__m256)y);
  _mm256_storeu_ps(out, _mm256_permute2f128_ps(lo, hi, 0x20));
  _mm256_storeu_ps(out + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
#else
  for (int i = 0; i < kRegisterBytes / 4; ++i) {
    out[2 * i] = x[i];
    out[2 * i + 1] = y[i];
  }
#endif
}

// ---- Wide<R>: kRegisters registers of type R, operated on in lockstep ----------------------------------------

template <typename R>
struct Wide {
  R r[kRegisters];
};

// Register i of an operand: a Wide's own, or a register or scalar used as it is for every register.
template <typename B>
SSNI_INLINE const B& operand(const B& b, int) {
  return b;
}
template <typename R>
SSNI_INLINE const R& operand(const Wide<R>& b, int i) {
  return b.r[i];
}

#define SSNI_WIDE_OPERATOR(op)                                                   \
  template <typename R, typename B>                                              \
  SSNI_INLINE Wide<R> operator op(const Wide<R>& a, const B& b) {                     \
    Wide<R> c;                                                                   \
    for (int i = 0; i < kRegisters; ++i) c.r[i] = a.r[i] op operand(b, i);       \
    return c;                                                                    \
  }
SSNI_WIDE_OPERATOR(+)
SSNI_WIDE_OPERATOR(-)
SSNI_WIDE_OPERATOR(*)
SSNI_WIDE_OPERATOR(&)
SSNI_WIDE_OPERATOR(|)
SSNI_WIDE_OPERATOR(^)
SSNI_WIDE_OPERATOR(<<)
SSNI_WIDE_OPERATOR(>>)
#undef SSNI_WIDE_OPERATOR

template <typename R>
SSNI_INLINE Wide<R> operator~(const Wide<R>& a) {
  Wide<R> c;
  for (int i = 0; i < kRegisters; ++i) c.r[i] = ~a.r[i];
  return c;
}

// Every lane = v.
template <typename R, typename S>
SSNI_INLINE Wide<R> splat(S v) {
  Wide<R> c;
  for (int i = 0; i < kRegisters; ++i) c.r[i] = R{} + v;
  return c;
}

// The same bits as another lane type.
template <typename To, typename R>
SSNI_INLINE Wide<To> bitcast(const Wide<R>& a) {
  Wide<To> c;
  for (int i = 0; i < kRegisters; ++i) c.r[i] = (To)a.r[i];
  return c;
}

// Lane values converted: int → float, or float → int truncating.
template <typename To, typename R>
SSNI_INLINE Wide<To> convert(const Wide<R>& a) {
  Wide<To> c;
  for (int i = 0; i < kRegisters; ++i) c.r[i] = __builtin_convertvector(a.r[i], To);
  return c;
}

typedef Wide<u32r> u32v;
typedef Wide<i32r> i32v;
typedef Wide<u64r> u64v;
typedef Wide<f32r> f32v;

constexpr int kGroupsPerRegister = kRegisterBytes / 8;  // Philox counters per u64r
constexpr int kGroups = kRegisters * kGroupsPerRegister;  // per u64v

SSNI_INLINE u64v mul_wide(const u64v& a, const u64r& b) {
  u64v c;
  for (int i = 0; i < kRegisters; ++i) c.r[i] = mul_wide(a.r[i], b);
  return c;
}

SSNI_INLINE f32v fmadd(const f32v& a, const f32v& b, const f32v& c) {
  f32v d;
  for (int i = 0; i < kRegisters; ++i) d.r[i] = fmadd(a.r[i], b.r[i], c.r[i]);
  return d;
}

SSNI_INLINE f32v sqrt_v(const f32v& a) {
  f32v c;
  for (int i = 0; i < kRegisters; ++i) c.r[i] = sqrt_v(a.r[i]);
  return c;
}

// ---- Philox4x32-10 on kGroups counters (group, step, id, stream) ---------------------------------------------

struct Words {
  u64v c0, c1, c2, c3;  // the four output words, each in the low half of its lane
};

// What the rounds of one sample's counters share: the round keys as registers, and the two products of words that
// are the same in every lane (c2 = id in round 0; c0 = f(id, step, key) in round 1), computed once in scalar.
struct RowRounds {
  u64r key0[kPhiloxRounds], key1[kPhiloxRounds];
  uint32_t r1_c0_xor;  // c0 after round 1 = (M1·c2 after round 0 >> 32) ^ this
  uint32_t r1_c2_xor;  // c2 after round 1 = c3 after round 0 ^ this
  uint32_t r1_c3;      // c3 after round 1
  uint32_t r0_c2_xor;  // c2 after round 0 = (M0·group >> 32) ^ this
  u64v lane;           // 0, 1, ..., kGroups − 1

  explicit RowRounds(const PhiloxRow& row) {
    for (int i = 0; i < kGroups; ++i) lane.r[i / kGroupsPerRegister][i % kGroupsPerRegister] = i;
    uint32_t k0 = row.key0, k1 = row.key1;
    for (int r = 0; r < kPhiloxRounds; ++r, k0 += kPhiloxW0, k1 += kPhiloxW1) {
      key0[r] = u64r{} + k0;
      key1[r] = u64r{} + k1;
    }
    const uint64_t p1 = static_cast<uint64_t>(kPhiloxM1) * row.sample_id;  // round 0: M1·c2
    const uint32_t c0 = static_cast<uint32_t>(p1 >> 32) ^ row.step ^ row.key0;
    const uint64_t p0 = static_cast<uint64_t>(kPhiloxM0) * c0;  // round 1: M0·c0
    r0_c2_xor = row.stream ^ row.key1;
    r1_c0_xor = static_cast<uint32_t>(p1) ^ (row.key0 + kPhiloxW0);
    r1_c2_xor = static_cast<uint32_t>(p0 >> 32) ^ (row.key1 + kPhiloxW1);
    r1_c3 = static_cast<uint32_t>(p0);
  }
};

// The words of counters (g0 + lane, step, id, stream), lane < kGroups (uint32 counters wrap as in the definition).
SSNI_INLINE Words philox_rounds(const RowRounds& rr, uint32_t g0) {
  const u64r m0 = u64r{} + kPhiloxM0, m1 = u64r{} + kPhiloxM1;
  const u64v q0 = mul_wide((rr.lane + g0) & 0xFFFFFFFFu, m0);  // round 0: only M0·c0 varies
  const u64v q1 = mul_wide((q0 >> 32) ^ rr.r0_c2_xor, m1);  // round 1: only M1·c2 varies
  u64v c0 = (q1 >> 32) ^ rr.r1_c0_xor;
  u64v c1 = q1;
  u64v c2 = q0 ^ rr.r1_c2_xor;
  u64v c3 = splat<u64r>(rr.r1_c3);
#pragma GCC unroll 8  // straight-line rounds: the loop's exit costs more than its code
  for (int r = 2; r < kPhiloxRounds; ++r) {
    const u64v h0 = mul_wide(c0, m0), h1 = mul_wide(c2, m1);
    c0 = (h1 >> 32) ^ c1 ^ rr.key0[r];
    c2 = (h0 >> 32) ^ c3 ^ rr.key1[r];
    c1 = h1;
    c3 = h0;
  }
  return Words{c0, c1, c2, c3};
}

// 32-bit lanes (low half of a, low half of b) per 64-bit lane: (w0, w2) or (w1, w3) of each group.
SSNI_INLINE u32v pair_words(const u64v& a, const u64v& b) { return bitcast<u32r>((a & 0xFFFFFFFFu) | (b << 32)); }

// ---- Box–Muller in float32 --------------------------------------------------------------------------------

// The uniform of a word w is u = (w >> 9)·2^-23 + 2^-24 = m·2^-24 with the odd integer m = (w >> 8) | 1 < 2^24.
// Box–Muller works from m in integer arithmetic wherever the float arithmetic would be exact anyway (scalings by
// powers of two, the quadrant reduction): the same values, with the multiply pipes left to the polynomials.
SSNI_INLINE u32v odd_numerator(const u32v& w) { return (w >> 8) | 1u; }

// The float bits of m·2^-k for an integer 0 < |m| < 2^24 (exact): float(m) with its exponent lowered by k.
SSNI_INLINE u32v scaled_bits(const i32v& m, unsigned k) { return bitcast<u32r>(convert<f32r>(m)) - (k << 23); }

// −2·v for a normal float v < 0 (exact): exponent + 1 and the sign flipped, in integer arithmetic.
SSNI_INLINE f32v times_minus_two(const f32v& v) { return bitcast<f32r>(bitcast<u32r>(v) + 0x80800000u); }

// Natural log of u = m·2^-24: u = 2^e·μ with μ in [√½, √2), then a degree-9 minimax polynomial in f = μ − 1
// (Cephes logf constants); ~1 ulp.
SSNI_INLINE f32v log_unit(const u32v& m) {
  // Shifting the exponent boundary to √½ puts μ straight into [√½, √2) without a compare.
  const u32v shifted = scaled_bits(bitcast<i32r>(m), 24) - 0x3F3504F3u;
  const f32v e = convert<f32r>(bitcast<i32r>(shifted) >> 23);
  const f32v f = bitcast<f32r>((shifted & 0x007FFFFFu) + 0x3F3504F3u) - 1.0f;
  const f32v z = f * f;
  f32v y = fmadd(f, splat<f32r>(7.0376836292e-2f), splat<f32r>(-1.1514610310e-1f));
  y = fmadd(y, f, splat<f32r>(1.1676998740e-1f));
  y = fmadd(y, f, splat<f32r>(-1.2420140846e-1f));
  y = fmadd(y, f, splat<f32r>(1.4249322787e-1f));
  y = fmadd(y, f, splat<f32r>(-1.6668057665e-1f));
  y = fmadd(y, f, splat<f32r>(2.0000714765e-1f));
  y = fmadd(y, f, splat<f32r>(-2.4999993993e-1f));
  y = fmadd(y, f, splat<f32r>(3.3333331174e-1f));
  y = fmadd(y * f, z, e * -2.12194440e-4f);
  y = fmadd(z, splat<f32r>(-0.5f), y);
  return fmadd(e, splat<f32r>(0.693359375f), y + f);
}

// cos(2πu), sin(2πu) for u = m·2^-24. The nearest quadrant q = round(4u) = (m + 2^21) >> 22 and the reduction
// u − q/4 = (m − q·2^22)·2^-24 are exact integer arithmetic, so only θ = 2π(u − q/4) ∈ [−π/4, π/4] is rounded;
// then minimax polynomials (Cephes sinf/cosf constants).
SSNI_INLINE void sincos_2pi(const u32v& m, f32v& c, f32v& s) {
  const i32v qi = bitcast<i32r>((m + (1u << 21)) >> 22);
  const f32v x = bitcast<f32r>(scaled_bits(bitcast<i32r>(m) - (qi << 22), 24)) * 6.28318530717958647692f;
  const f32v z = x * x;
  const f32v sp = fmadd(fmadd(fmadd(z, splat<f32r>(-1.9515295891e-4f), splat<f32r>(8.3321608736e-3f)), z,
                              splat<f32r>(-1.6666654611e-1f)),
                        z * x, x);
  const f32v cp_tail = fmadd(fmadd(z, splat<f32r>(2.443315711809948e-5f), splat<f32r>(-1.388731625493765e-3f)), z,
                             splat<f32r>(4.166664568298827e-2f));
  const f32v cp = fmadd(cp_tail, z * z, fmadd(z, splat<f32r>(-0.5f), splat<f32r>(1.0f)));
  // Quadrant q: odd q swaps sin and cos; cos is negative for q = 1, 2 and sin for q = 2, 3 (bit masks, no branch).
  const u32v swap = bitcast<u32r>(splat<i32r>(0) - (qi & 1));
  const u32v cb = bitcast<u32r>(cp), sb = bitcast<u32r>(sp);
  const u32v cos_sign = bitcast<u32r>((qi + 1) & 2) << 30;
  const u32v sin_sign = bitcast<u32r>(qi & 2) << 30;
  c = bitcast<f32r>(((sb & swap) | (cb & ~swap)) ^ cos_sign);
  s = bitcast<f32r>(((cb & swap) | (sb & ~swap)) ^ sin_sign);
}

// The 4·kGroups normals of one Words into out, in stream order.
SSNI_INLINE void box_muller(const Words& w, float* out) {
  const f32v radius = sqrt_v(times_minus_two(log_unit(odd_numerator(pair_words(w.c0, w.c2)))));
  f32v c, s;
  sincos_2pi(odd_numerator(pair_words(w.c1, w.c3)), c, s);
  const f32v x = radius * c, y = radius * s;
  for (int i = 0; i < kRegisters; ++i) store_interleaved(x.r[i], y.r[i], out + i * kRegisterBytes / 2);
}

// ---- the entry points (isa.h) --------------------------------------------------------------

const int philox_step_normals = 4 * kGroups;


void philox_normals(const PhiloxRow& row, uint32_t group0, int64_t n_groups, float* out) {
  const RowRounds rr(row);
  int64_t done = 0;
  for (; done + kGroups <= n_groups; done += kGroups) {
    box_muller(philox_rounds(rr, group0 + static_cast<uint32_t>(done)), out + 4 * done);
  }
  if (done < n_groups) {  // tail: a whole vector into a buffer
    float buffer[4 * kGroups];
    box_muller(philox_rounds(rr, group0 + static_cast<uint32_t>(done)), buffer);
    for (int64_t i = 0; i < 4 * (n_groups - done); ++i) out[4 * done + i] = buffer[i];
  }
}

void philox_affine_f32(const PhiloxRow& row, uint32_t group0, int64_t n, float* out, const float* x, const float* e,
                       float cx, float ce, float cz) {
  const RowRounds rr(row);
  constexpr int64_t step = 4 * kGroups;
  alignas(64) float z[step];
  for (int64_t done = 0; done < n; done += step) {
    box_muller(philox_rounds(rr, group0 + static_cast<uint32_t>(done / 4)), z);
    const int64_t m = n - done < step ? n - done : step;
    affine_span(out + done, x + done, e != nullptr ? e + done : nullptr, z, cx, ce, cz, m);
  }
}

void philox_words(const PhiloxRow& row, uint32_t group0, int64_t n_groups, uint32_t* out) {
  const RowRounds rr(row);
  for (int64_t done = 0; done < n_groups; done += kGroups) {
    const Words w = philox_rounds(rr, group0 + static_cast<uint32_t>(done));
    const int64_t n = n_groups - done < kGroups ? n_groups - done : kGroups;
    for (int64_t i = 0; i < n; ++i) {
      const int reg = static_cast<int>(i / kGroupsPerRegister), lane = static_cast<int>(i % kGroupsPerRegister);
      uint32_t* dst = out + 4 * (done + i);
      dst[0] = static_cast<uint32_t>(w.c0.r[reg][lane]);
      dst[1] = static_cast<uint32_t>(w.c1.r[reg][lane]);
      dst[2] = static_cast<uint32_t>(w.c2.r[reg][lane]);
      dst[3] = static_cast<uint32_t>(w.c3.r[reg][lane]);
    }
  }
}

}  // namespace ssni::SSNI_CPU_CAPABILITY
