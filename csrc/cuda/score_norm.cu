// CUDA kernels of ssni::score_norm (math: ssni_kernels/reference.py):
//   S_b[e] = Σ_k eps_hat[k·B + b, e] / σ_k,   out_b = ‖S_b‖₂ / K.
// Deterministic two passes, no atomics: pass 1, grid (tiles, B), each block reads its tile at all K levels once
// and writes one partial Σ S² per (sample, tile); pass 2, one block per sample, sums the partials in a fixed order.
#include "common.cuh"

namespace ssni::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kPacksPerThread = 2;                             // 8 elements per thread per level
constexpr int64_t kTile = kThreads * kPacksPerThread * 4;  // 2048 elements of a row per block

template <typename acc_t>
__device__ __forceinline__ acc_t block_sum(acc_t v) {
  __shared__ acc_t warp_sums[kThreads / 32];
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = v;
  __syncthreads();
  v = threadIdx.x < kThreads / 32 ? warp_sums[threadIdx.x] : acc_t(0);
  if (threadIdx.x < 32) {
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  }
  return v;  // valid in thread 0
}

template <typename T, bool kVector>
__global__ void partials_kernel(const T* __restrict__ eps_hat, const typename Acc<T>::type* __restrict__ sigma,
                                typename Acc<T>::type* __restrict__ partials, int levels, int64_t batch,
                                int64_t row_numel) {
  using acc_t = typename Acc<T>::type;
  const int64_t b = blockIdx.y;
  const int64_t tile_start = static_cast<int64_t>(blockIdx.x) * kTile;
  acc_t s[kPacksPerThread][4] = {};
  for (int k = 0; k < levels; ++k) {
    const T* row = eps_hat + (k * batch + b) * row_numel;
    const acc_t sigma_k = sigma[k];
#pragma unroll
    for (int p = 0; p < kPacksPerThread; ++p) {
      const int64_t e = tile_start + 4 * (static_cast<int64_t>(p) * kThreads + threadIdx.x);
      if constexpr (kVector) {
        if (e < row_numel) {
          const Pack4<T> v = *reinterpret_cast<const Pack4<T>*>(row + e);
#pragma unroll
          for (int j = 0; j < 4; ++j) s[p][j] += to_acc(v.v[j]) / sigma_k;
        }
      } else {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          if (e + j < row_numel) s[p][j] += to_acc(row[e + j]) / sigma_k;
        }
      }
    }
  }
  acc_t sum_sq = 0;
#pragma unroll
  for (int p = 0; p < kPacksPerThread; ++p) {
#pragma unroll
    for (int j = 0; j < 4; ++j) sum_sq += s[p][j] * s[p][j];
  }
  sum_sq = block_sum(sum_sq);
  if (threadIdx.x == 0) partials[b * gridDim.x + blockIdx.x] = sum_sq;
}

template <typename acc_t>
__global__ void finish_kernel(const acc_t* __restrict__ partials, acc_t* __restrict__ out, int64_t tiles,
                              int levels) {
  const int64_t b = blockIdx.x;
  acc_t v = 0;
  for (int64_t i = threadIdx.x; i < tiles; i += kThreads) v += partials[b * tiles + i];
  v = block_sum(v);
  if (threadIdx.x == 0) out[b] = sqrt(v) / static_cast<acc_t>(levels);
}

}  // namespace

int64_t score_norm_workspace_numel(int64_t batch, int64_t row_numel) {
  return batch * ((row_numel + kTile - 1) / kTile);
}

cudaError_t score_norm(DType dtype, const void* eps_hat, const void* sigma, void* out, void* workspace,
                       int64_t levels, int64_t batch, int64_t row_numel, cudaStream_t stream) {
  if (batch == 0) return cudaSuccess;
  if (batch > 65535) return cudaErrorInvalidConfiguration;  // gridDim.y limit
  const int64_t tiles = (row_numel + kTile - 1) / kTile;
  const bool vector = row_numel % 4 == 0;
  return dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    using acc_t = typename Acc<T>::type;
    const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(batch));
    const auto* e = static_cast<const T*>(eps_hat);
    const auto* s = static_cast<const acc_t*>(sigma);
    auto* partials = static_cast<acc_t*>(workspace);
    if (tiles > 0) {
      if (vector) {
        partials_kernel<T, true><<<grid, kThreads, 0, stream>>>(e, s, partials, static_cast<int>(levels), batch,
                                                               row_numel);
      } else {
        partials_kernel<T, false><<<grid, kThreads, 0, stream>>>(e, s, partials, static_cast<int>(levels), batch,
                                                                row_numel);
      }
    }
    finish_kernel<acc_t><<<static_cast<unsigned>(batch), kThreads, 0, stream>>>(partials, static_cast<acc_t*>(out),
                                                                                 tiles, static_cast<int>(levels));
    return cudaGetLastError();
  });
}

}  // namespace ssni::cuda
