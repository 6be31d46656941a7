// The elementwise kernel behind every op but score_norm (isa_kernels.h: affine_*), vectorised by the compiler for
// this build's ISA. Each product and sum is rounded on its own (-ffp-contract=off), so every ISA gives the same bits.
#include "isa.h"

namespace ssni::SSNI_CPU_CAPABILITY {
namespace {

template <typename T>
void affine(T* __restrict out, const T* __restrict x, const T* __restrict e, const T* __restrict z, T cx, T ce, T cz,
            int64_t n) {
  if (e != nullptr && z != nullptr) {
    for (int64_t i = 0; i < n; ++i) out[i] = cx * x[i] + ce * e[i] + cz * z[i];
  } else if (e != nullptr) {
    for (int64_t i = 0; i < n; ++i) out[i] = cx * x[i] + ce * e[i];
  } else if (z != nullptr) {
    for (int64_t i = 0; i < n; ++i) out[i] = cx * x[i] + cz * z[i];
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = cx * x[i];
  }
}

}  // namespace

void affine_f32(float* out, const float* x, const float* e, const float* z, float cx, float ce, float cz, int64_t n) {
  affine(out, x, e, z, cx, ce, cz, n);
}

void affine_f64(double* out, const double* x, const double* e, const double* z, double cx, double ce, double cz,
                int64_t n) {
  affine(out, x, e, z, cx, ce, cz, n);
}

}  // namespace ssni::SSNI_CPU_CAPABILITY
