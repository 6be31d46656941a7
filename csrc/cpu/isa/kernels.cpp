// This ISA's table of kernels (isa_kernels.h), picked by isa_dispatch.cpp.
#include "isa.h"

namespace ssni::SSNI_CPU_CAPABILITY {

const IsaKernels kernels = {
    .philox_step_normals = philox_step_normals,
    .philox_normals = philox_normals,
    .philox_words = philox_words,
    .philox_affine_f32 = philox_affine_f32,
    .affine_f32 = affine_f32,
    .affine_f64 = affine_f64,
    .add_scaled_f32 = add_scaled_f32,
    .add_scaled_f64 = add_scaled_f64,
    .copy_streaming = copy_streaming,
    .sum_squares_f32 = sum_squares_f32,
    .sum_squares_f64 = sum_squares_f64,
};

}  // namespace ssni::SSNI_CPU_CAPABILITY
