// The elementwise kernel behind every op but score_norm (isa_kernels.h: affine_*; arithmetic: isa.h affine_span),
// vectorised by the compiler for this build's ISA. Each product and sum is rounded on its own, so every ISA gives
// the same bits.
#include "isa.h"

namespace ssni::SSNI_CPU_CAPABILITY {
void affine_f32(float* out, const float* x, const float* e, const float* z, float cx, float ce, float cz, int64_t n) {
  affine_span(out, x, e, z, cx, ce, cz, n);
}

void affine_f64(double* out, const double* x, const double* e, const double* z, double cx, double ce, double cz,
                int64_t n) {
  affine_span(out, x, e, z, cx, ce, cz, n);
}

}  // namespace ssni::SSNI_CPU_CAPABILITY
