// CUDA kernel of ssni::noise_inject (math: ssni_kernels/reference.py). One thread per 4-element group: one
// Philox call gives its 4 normals, and a row whose length is a multiple of 4 moves x/ε/out as vector packs.
#include "common.cuh"

namespace ssni::cuda {
namespace {

constexpr int kThreads = 256;
constexpr uint32_t kStreamNoiseInject = 0;

template <typename T, bool kVector, bool kGivenNoise>
__global__ void noise_inject_kernel(const T* __restrict__ x, const T* __restrict__ noise, T* __restrict__ out,
                                    const int64_t* __restrict__ t, const double* __restrict__ alphas_cumprod,
                                    const int64_t* __restrict__ sample_ids, int64_t groups_per_row,
                                    int64_t total_groups, int64_t row_numel, uint64_t seed, uint32_t step) {
  using acc_t = typename Acc<T>::type;
  const int64_t g = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (g >= total_groups) return;
  const int64_t b = g / groups_per_row;
  const int64_t group = g - b * groups_per_row;
  const double a = alphas_cumprod[t[b]];
  const acc_t coef_x = static_cast<acc_t>(sqrt(a));
  const acc_t coef_eps = static_cast<acc_t>(sqrt(1.0 - a));
  const int64_t first = b * row_numel + 4 * group;
  const int valid = row_numel - 4 * group < 4 ? static_cast<int>(row_numel - 4 * group) : 4;

  acc_t eps[4];
  if constexpr (kGivenNoise) {
    if constexpr (kVector) {
      const Pack4<T> p = *reinterpret_cast<const Pack4<T>*>(noise + first);
#pragma unroll
      for (int j = 0; j < 4; ++j) eps[j] = to_acc(p.v[j]);
    } else {
      for (int j = 0; j < valid; ++j) eps[j] = to_acc(noise[first + j]);
    }
  } else {
    const uint32_t sample_id = static_cast<uint32_t>(sample_ids ? sample_ids[b] : b);
    const float4 z = normal4(static_cast<uint32_t>(group), step, sample_id, kStreamNoiseInject, seed);
    const float zs[4] = {z.x, z.y, z.z, z.w};
    // Rounded to x's dtype first, as the reference draws ε in x's dtype.
#pragma unroll
    for (int j = 0; j < 4; ++j) eps[j] = to_acc(from_acc<T>(static_cast<acc_t>(zs[j])));
  }
  if constexpr (kVector) {
    const Pack4<T> xv = *reinterpret_cast<const Pack4<T>*>(x + first);
    Pack4<T> o;
#pragma unroll
    for (int j = 0; j < 4; ++j) o.v[j] = from_acc<T>(coef_x * to_acc(xv.v[j]) + coef_eps * eps[j]);
    *reinterpret_cast<Pack4<T>*>(out + first) = o;
  } else {
    for (int j = 0; j < valid; ++j) out[first + j] = from_acc<T>(coef_x * to_acc(x[first + j]) + coef_eps * eps[j]);
  }
}

template <typename T, bool kVector>
void launch(const void* x, const void* noise, void* out, const int64_t* t, const double* alphas_cumprod,
            const int64_t* sample_ids, int64_t batch, int64_t row_numel, uint64_t seed, uint32_t step,
            cudaStream_t stream) {
  const int64_t groups_per_row = (row_numel + 3) / 4;
  const int64_t total = batch * groups_per_row;
  const dim3 grid(static_cast<unsigned>((total + kThreads - 1) / kThreads));
  if (noise != nullptr) {
    noise_inject_kernel<T, kVector, true><<<grid, kThreads, 0, stream>>>(
        static_cast<const T*>(x), static_cast<const T*>(noise), static_cast<T*>(out), t, alphas_cumprod, sample_ids,
        groups_per_row, total, row_numel, seed, step);
  } else {
    noise_inject_kernel<T, kVector, false><<<grid, kThreads, 0, stream>>>(
        static_cast<const T*>(x), nullptr, static_cast<T*>(out), t, alphas_cumprod, sample_ids, groups_per_row,
        total, row_numel, seed, step);
  }
}

}  // namespace

cudaError_t noise_inject(DType dtype, const void* x, const void* noise, void* out, const int64_t* t,
                         const double* alphas_cumprod, const int64_t* sample_ids, int64_t batch, int64_t row_numel,
                         uint64_t seed, int64_t step, cudaStream_t stream) {
  if (batch == 0 || row_numel == 0) return cudaSuccess;
  const bool vector = row_numel % 4 == 0;
  const uint32_t step32 = static_cast<uint32_t>(step);
  return dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    if (vector) {
      launch<T, true>(x, noise, out, t, alphas_cumprod, sample_ids, batch, row_numel, seed, step32, stream);
    } else {
      launch<T, false>(x, noise, out, t, alphas_cumprod, sample_ids, batch, row_numel, seed, step32, stream);
    }
    return cudaGetLastError();
  });
}

}  // namespace ssni::cuda
