// The two loops of score_norm (isa_kernels.h: add_scaled_*, sum_squares_*), vectorised by the compiler for this
// build's ISA. The sum of squares keeps kReductionLanes partial sums whatever the register width, so every ISA
// adds in the same order and gives the same bits.
#include "isa.h"

namespace ssni::SSNI_CPU_CAPABILITY {
namespace {

template <typename T>
void add_scaled(T* __restrict acc, const T* __restrict src, T w, int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] += w * src[i];
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

void add_scaled_f32(float* acc, const float* src, float w, int64_t n) { add_scaled(acc, src, w, n); }
void add_scaled_f64(double* acc, const double* src, double w, int64_t n) { add_scaled(acc, src, w, n); }
float sum_squares_f32(const float* v, int64_t n) { return sum_squares(v, n); }
double sum_squares_f64(const double* v, int64_t n) { return sum_squares(v, n); }

}  // namespace ssni::SSNI_CPU_CAPABILITY
