// The two loops of score_norm (isa_kernels.h: add_scaled_*, sum_squares_*), vectorised by the compiler for this
// build's ISA. add_scaled adds its sources in order and the sum of squares keeps kReductionLanes partial sums
// whatever the register width, so every ISA adds in the same order and gives the same bits.
#include "isa.h"

namespace ssni::SSNI_CPU_CAPABILITY {
namespace {

// The sums of add_scaled with `count` sources known to the compiler.
template <int count, typename T>
void add_scaled(T* __restrict acc, const T* const* src, const T* w, int64_t n) {
  const T* __restrict s0 = src[0];
  const T* __restrict s1 = src[count > 1 ? 1 : 0];
  const T* __restrict s2 = src[count > 2 ? 2 : 0];
  const T* __restrict s3 = src[count > 3 ? 3 : 0];
  const T w0 = w[0], w1 = w[count > 1 ? 1 : 0], w2 = w[count > 2 ? 2 : 0], w3 = w[count > 3 ? 3 : 0];
  for (int64_t i = 0; i < n; ++i) {
    T a = acc[i] + w0 * s0[i];
    if constexpr (count > 1) a = a + w1 * s1[i];
    if constexpr (count > 2) a = a + w2 * s2[i];
    if constexpr (count > 3) a = a + w3 * s3[i];
    acc[i] = a;
  }
}

template <typename T>
void add_scaled(T* acc, const T* const* src, const T* w, int count, int64_t n) {
  static_assert(kMaxSources == 4, "one case per count");
  switch (count) {
    case 4:
      return add_scaled<4>(acc, src, w, n);
    case 3:
      return add_scaled<3>(acc, src, w, n);
    case 2:
      return add_scaled<2>(acc, src, w, n);
    default:
      return add_scaled<1>(acc, src, w, n);
  }
}

template <typename T>
T sum_squares(const T* v, int64_t n) {
  T lanes[kReductionLanes] = {};
  int64_t i = 0;
  for (; i + kReductionLanes <= n; i += kReductionLanes) {
    for (int l = 0; l < kReductionLanes; ++l) lanes[l] += v[i + l] * v[i + l];
  }
  for (int l = 0; i + l < n; ++l) lanes[l] += v[i + l] * v[i + l];
  T sum = 0;
  for (int l = 0; l < kReductionLanes; ++l) sum += lanes[l];
  return sum;
}

}  // namespace

void add_scaled_f32(float* acc, const float* const* src, const float* w, int count, int64_t n) {
  add_scaled(acc, src, w, count, n);
}
void add_scaled_f64(double* acc, const double* const* src, const double* w, int count, int64_t n) {
  add_scaled(acc, src, w, count, n);
}
float sum_squares_f32(const float* v, int64_t n) { return sum_squares(v, n); }
double sum_squares_f64(const double* v, int64_t n) { return sum_squares(v, n); }

}  // namespace ssni::SSNI_CPU_CAPABILITY
