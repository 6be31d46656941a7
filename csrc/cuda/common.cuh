// Device helpers shared by the CUDA kernels: storage/arithmetic conversions, 4-element packs, the Philox stream.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels.h"

namespace ssni::cuda {

// Arithmetic type of a storage type (float64 stays float64, the rest computes in float32).
template <typename T>
struct Acc {
  using type = float;
};
template <>
struct Acc<double> {
  using type = double;
};

__device__ __forceinline__ float to_acc(float v) { return v; }
__device__ __forceinline__ double to_acc(double v) { return v; }
__device__ __forceinline__ float to_acc(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_acc(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T from_acc(typename Acc<T>::type v);
template <>
__device__ __forceinline__ float from_acc<float>(float v) { return v; }
template <>
__device__ __forceinline__ double from_acc<double>(double v) { return v; }
template <>
__device__ __forceinline__ __half from_acc<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_acc<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// Four consecutive elements, aligned so that one vector load/store moves them (rows are 4-element aligned when
// row_numel % 4 == 0, and torch allocations are 256-byte aligned).
template <typename T>
struct alignas(4 * sizeof(T)) Pack4 {
  T v[4];
};

// Calls f(storage type) for a DType.
template <typename F>
cudaError_t dispatch_dtype(DType dtype, F&& f) {
  switch (dtype) {
    case DType::kFloat32:
      return f(float{});
    case DType::kFloat64:
      return f(double{});
    case DType::kFloat16:
      return f(__half{});
    case DType::kBFloat16:
      return f(__nv_bfloat16{});
  }
  return cudaErrorInvalidValue;
}

// ---- Philox4x32-10 and the ssni normal stream (definition: ssni_kernels/philox.py) -------------------------
constexpr uint32_t kPhiloxM0 = 0xD2511F53u;
constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;
constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;

__device__ __forceinline__ uint4 philox4x32_10(uint4 c, uint32_t k0, uint32_t k1) {
#pragma unroll
  for (int r = 0; r < 10; ++r) {
    if (r > 0) {
      k0 += kPhiloxW0;
      k1 += kPhiloxW1;
    }
    const uint32_t hi0 = __umulhi(kPhiloxM0, c.x), lo0 = kPhiloxM0 * c.x;
    const uint32_t hi1 = __umulhi(kPhiloxM1, c.z), lo1 = kPhiloxM1 * c.z;
    c = make_uint4(hi1 ^ c.y ^ k0, lo1, hi0 ^ c.w ^ k1, lo0);
  }
  return c;
}

// (r >> 9)·2⁻²³ + 2⁻²⁴: exact in float32, strictly inside (0, 1).
__device__ __forceinline__ float uniform_from_bits(uint32_t r) {
  return static_cast<float>(r >> 9) * 1.1920928955078125e-07f + 5.9604644775390625e-08f;
}

// (sqrt(−2 ln a)·cos 2πb, sqrt(−2 ln a)·sin 2πb). log1pf(a − 1) (a − 1 is exact) and sincospif stay accurate
// under --use_fast_math, where logf/sinf/cosf would become approximate intrinsics.
__device__ __forceinline__ float2 box_muller(float a, float b) {
  const float radius = sqrtf(-2.0f * log1pf(a - 1.0f));
  float s, c;
  sincospif(2.0f * b, &s, &c);
  return make_float2(radius * c, radius * s);
}

// Normals of elements 4·group … 4·group + 3 of one sample's stream.
__device__ __forceinline__ float4 normal4(uint32_t group, uint32_t step, uint32_t sample_id, uint32_t stream,
                                          uint64_t seed) {
  const uint4 r = philox4x32_10(make_uint4(group, step, sample_id, stream), static_cast<uint32_t>(seed),
                                static_cast<uint32_t>(seed >> 32));
  const float2 z01 = box_muller(uniform_from_bits(r.x), uniform_from_bits(r.y));
  const float2 z23 = box_muller(uniform_from_bits(r.z), uniform_from_bits(r.w));
  return make_float4(z01.x, z01.y, z23.x, z23.y);
}

}  // namespace ssni::cuda
