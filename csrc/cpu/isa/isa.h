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

void philox_normals(const PhiloxRow& row, uint32_t group0, int64_t n_groups, float* out);
void philox_words(const PhiloxRow& row, uint32_t group0, int64_t n_groups, uint32_t* out);

void affine_f32(float* out, const float* x, const float* e, const float* z, float cx, float ce, float cz, int64_t n);
void affine_f64(double* out, const double* x, const double* e, const double* z, double cx, double ce, double cz,
                int64_t n);

void copy_streaming(void* dst, const void* src, int64_t bytes);

void add_scaled_f32(float* acc, const float* const* src, const float* w, int count, int64_t n);
void add_scaled_f64(double* acc, const double* const* src, const double* w, int count, int64_t n);
float sum_squares_f32(const float* v, int64_t n);
double sum_squares_f64(const double* v, int64_t n);

}  // namespace ssni::SSNI_CPU_CAPABILITY
