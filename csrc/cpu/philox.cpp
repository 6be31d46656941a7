// Vectorised Philox normal stream (philox.h). Plain C++ without torch headers, so that it compiles fast and
// can be inspected on its own (g++ -O3 -fopenmp -fno-math-errno -fopt-info-vec philox.cpp).
#include "philox.h"

#include <algorithm>
#include <cmath>
#include <cstring>

// On x86-64 an AVX2+FMA version (intrinsics for the 32×32→64 multiplies, auto-vectorised Box–Muller) is
// chosen at load time when the CPU has it; elsewhere the same code runs as plain C++.
#if defined(__GNUC__) && defined(__x86_64__)
#define SSNI_HAVE_AVX2 1
#include <immintrin.h>
#else
#define SSNI_HAVE_AVX2 0
#endif

namespace ssni {
namespace {

constexpr int kLanes = 64;  // groups per inner block: 256 normals, all in registers/L1

inline float bits_to_float(uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}

inline uint32_t float_to_bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}

// Uniform in (0, 1) from the top 23 bits: (2m + 1)·2^-24, exact in float32.
inline float uniform_from_bits(uint32_t r) {
  return static_cast<float>(r >> 9) * 0x1p-23f + 0x1p-24f;
}

// Natural log for u in (0, 1]: u = 2^e·m with m in [√½, √2), then a degree-9 minimax polynomial in
// f = m − 1 (Cephes logf constants); ~1 ulp.
inline float log_unit(float u) {
  // Shifting the exponent boundary to √½ puts the mantissa straight into [√½, √2) without a compare.
  const uint32_t shifted = float_to_bits(u) - 0x3F3504F3u;
  const float e = static_cast<float>(static_cast<int32_t>(shifted) >> 23);
  const float m = bits_to_float((shifted & 0x007FFFFFu) + 0x3F3504F3u);
  const float f = m - 1.0f;
  const float z = f * f;
  float y = 7.0376836292e-2f;
  y = y * f - 1.1514610310e-1f;
  y = y * f + 1.1676998740e-1f;
  y = y * f - 1.2420140846e-1f;
  y = y * f + 1.4249322787e-1f;
  y = y * f - 1.6668057665e-1f;
  y = y * f + 2.0000714765e-1f;
  y = y * f - 2.4999993993e-1f;
  y = y * f + 3.3333331174e-1f;
  y = y * f * z;
  y += -2.12194440e-4f * e;
  y += -0.5f * z;
  return f + y + 0.693359375f * e;
}

// cos(2πu), sin(2πu) for u in (0, 1). u is a multiple of 2^-24, so the quadrant reduction r = u − q/4 is exact
// and only θ = 2πr ∈ [−π/4, π/4] is rounded; then minimax polynomials (Cephes sinf/cosf constants).
inline void sincos_2pi(float u, float& c, float& s) {
  const int32_t qi = static_cast<int32_t>(4.0f * u + 0.5f);  // nearest quadrant; u > 0 so truncation rounds
  const float q = static_cast<float>(qi);
  const float x = 6.28318530717958647692f * (u - 0.25f * q);
  const float z = x * x;
  const float sp = x + x * z * (-1.6666654611e-1f + z * (8.3321608736e-3f + z * -1.9515295891e-4f));
  const float cp = 1.0f - 0.5f * z + z * z * (4.166664568298827e-2f + z * (-1.388731625493765e-3f + z * 2.443315711809948e-5f));
  // Quadrant q: odd q swaps sin and cos; cos is negative for q = 1, 2 and sin for q = 2, 3 (bit masks, no branch).
  const uint32_t swap = 0u - static_cast<uint32_t>(qi & 1);
  const uint32_t cb = float_to_bits(cp), sb = float_to_bits(sp);
  const uint32_t cos_sign = static_cast<uint32_t>((qi + 1) & 2) << 30;
  const uint32_t sin_sign = static_cast<uint32_t>(qi & 2) << 30;
  c = bits_to_float(((sb & swap) | (cb & ~swap)) ^ cos_sign);
  s = bits_to_float(((cb & swap) | (sb & ~swap)) ^ sin_sign);
}

// Philox words of counters (group0 + i, step, id, stream), i < kLanes, into w[0..3][i]; plain C++.
inline void philox_words_scalar(const PhiloxRow& row, uint32_t group0, uint32_t w[4][kLanes]) {
  for (int i = 0; i < kLanes; ++i) {
    uint32_t c[4] = {group0 + static_cast<uint32_t>(i), row.step, row.sample_id, row.stream};
    philox4x32_10(c, row.key0, row.key1);
    for (int j = 0; j < 4; ++j) w[j][i] = c[j];
  }
}

// Box–Muller of kLanes groups of words into out (4·m normals, m ≤ kLanes); the float loop vectorises.
inline __attribute__((always_inline)) void box_muller(const uint32_t w[4][kLanes], int64_t m, float* out) {
  alignas(64) float z[4][kLanes];
#pragma omp simd
  for (int i = 0; i < kLanes; ++i) {
    const float r01 = std::sqrt(-2.0f * log_unit(uniform_from_bits(w[0][i])));
    const float r23 = std::sqrt(-2.0f * log_unit(uniform_from_bits(w[2][i])));
    float cos1, sin1, cos3, sin3;
    sincos_2pi(uniform_from_bits(w[1][i]), cos1, sin1);
    sincos_2pi(uniform_from_bits(w[3][i]), cos3, sin3);
    z[0][i] = r01 * cos1;
    z[1][i] = r01 * sin1;
    z[2][i] = r23 * cos3;
    z[3][i] = r23 * sin3;
  }
  for (int64_t i = 0; i < m; ++i) {
    out[4 * i + 0] = z[0][i];
    out[4 * i + 1] = z[1][i];
    out[4 * i + 2] = z[2][i];
    out[4 * i + 3] = z[3][i];
  }
}

#if SSNI_HAVE_AVX2
// (hi, lo) halves of M·c for 8 uint32 lanes: even lanes from one 32×32→64 multiply, odd lanes from another.
__attribute__((target("avx2"))) inline void mulhilo8(__m256i m, __m256i c, __m256i& hi, __m256i& lo) {
  const __m256i even = _mm256_mul_epu32(c, m);
  const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(c, 32), m);
  lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
  hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
}

__attribute__((target("avx2"))) inline void philox_words_avx2(const PhiloxRow& row, uint32_t group0,
                                                              uint32_t w[4][kLanes]) {
  const __m256i m0 = _mm256_set1_epi32(static_cast<int>(kPhiloxM0));
  const __m256i m1 = _mm256_set1_epi32(static_cast<int>(kPhiloxM1));
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int i = 0; i < kLanes; i += 8) {
    __m256i c0 = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(group0 + i)), lane);
    __m256i c1 = _mm256_set1_epi32(static_cast<int>(row.step));
    __m256i c2 = _mm256_set1_epi32(static_cast<int>(row.sample_id));
    __m256i c3 = _mm256_set1_epi32(static_cast<int>(row.stream));
    uint32_t k0 = row.key0, k1 = row.key1;
    for (int r = 0; r < kPhiloxRounds; ++r) {
      __m256i hi0, lo0, hi1, lo1;
      mulhilo8(m0, c0, hi0, lo0);
      mulhilo8(m1, c2, hi1, lo1);
      c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), _mm256_set1_epi32(static_cast<int>(k0)));
      c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), _mm256_set1_epi32(static_cast<int>(k1)));
      c1 = lo1;
      c3 = lo0;
      k0 += kPhiloxW0;
      k1 += kPhiloxW1;
    }
    _mm256_store_si256(reinterpret_cast<__m256i*>(&w[0][i]), c0);
    _mm256_store_si256(reinterpret_cast<__m256i*>(&w[1][i]), c1);
    _mm256_store_si256(reinterpret_cast<__m256i*>(&w[2][i]), c2);
    _mm256_store_si256(reinterpret_cast<__m256i*>(&w[3][i]), c3);
  }
}

__attribute__((target("avx2,fma"))) void philox_normals_avx2(const PhiloxRow& row, uint32_t group0,
                                                             int64_t n_groups, float* out) {
  alignas(64) uint32_t w[4][kLanes];
  for (int64_t base = 0; base < n_groups; base += kLanes) {
    philox_words_avx2(row, group0 + static_cast<uint32_t>(base), w);
    box_muller(w, std::min<int64_t>(kLanes, n_groups - base), out + 4 * base);
  }
}
#endif

void philox_normals_generic(const PhiloxRow& row, uint32_t group0, int64_t n_groups, float* out) {
  alignas(64) uint32_t w[4][kLanes];
  for (int64_t base = 0; base < n_groups; base += kLanes) {
    philox_words_scalar(row, group0 + static_cast<uint32_t>(base), w);
    box_muller(w, std::min<int64_t>(kLanes, n_groups - base), out + 4 * base);
  }
}

using NormalsFn = void (*)(const PhiloxRow&, uint32_t, int64_t, float*);

NormalsFn select_normals() {
#if SSNI_HAVE_AVX2
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return philox_normals_avx2;
#endif
  return philox_normals_generic;
}

const NormalsFn kNormals = select_normals();

}  // namespace

void philox_normals(const PhiloxRow& row, uint32_t group0, int64_t n_groups, float* out) {
  kNormals(row, group0, n_groups, out);
}

}  // namespace ssni
