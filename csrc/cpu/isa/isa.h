// The functions of one ISA's build of csrc/cpu/isa/*.cpp (namespace ssni::<ISA>: -DSSNI_CPU_CAPABILITY=<ISA>), and
// its table (isa_kernels.h). Included only by those builds: each declaration means the current ISA's function.
#pragma once

#include <cstdint>

#include "../isa_kernels.h"

#ifndef SSNI_CPU_CAPABILITY
#error "SSNI_CPU_CAPABILITY (the namespace of this ISA's build: DEFAULT, AVX2, AVX512) must be defined"
#endif

namespace ssni::SSNI_CPU_CAPABILITY {

extern const IsaKernels kernels;

// out[i] = cx·x[i] + ce·e[i] + cz·z[i] for i < n, a null e or z leaving its term out: the arithmetic of affine_*
// and philox_affine_f32, each product and sum rounded on its own (-ffp-contract=off).
template <typename T>
inline void affine_span(T* __restrict out, const T* __restrict x, const T* __restrict e, const T* __restrict z, T cx,
                        T ce, T cz, int64_t n) {
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

extern const int philox_step_normals;
void philox_normals(const PhiloxRow& row, uint32_t group0, int64_t n_groups, float* out);
void philox_words(const PhiloxRow& row, uint32_t group0, int64_t n_groups, uint32_t* out);

void philox_affine_f32(const PhiloxRow& row, uint32_t group0, int64_t n, float* out, const float* x, const float* e,
                       float cx, float ce, float cz);

void affine_f32(float* out, const float* x, const float* e, const float* z, float cx, float ce, float cz, int64_t n);
void affine_f64(double* out, const double* x, const double* e, const double* z, double cx, double ce, double cz,
                int64_t n);

void copy_streaming(void* dst, const void* src, int64_t bytes);

void add_scaled_f32(float* acc, const float* const* src, const float* w, int count, int64_t n);
void add_scaled_f64(double* acc, const double* const* src, const double* w, int count, int64_t n);
float sum_squares_f32(const float* v, int64_t n);
double sum_squares_f64(const double* v, int64_t n);

}  // namespace ssni::SSNI_CPU_CAPABILITY
