// Host launchers of the CUDA C++ kernels (csrc/cuda/*.cu). No torch types here: the .cu files compile with CUDA
// headers only (fast), and bindings.cpp adapts torch tensors to these plain pointers.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace ssni::cuda {

// Storage dtype of the data tensors; arithmetic is float32, or float64 for kFloat64 (as reference.compute_dtype).
enum class DType : int { kFloat32 = 0, kFloat64 = 1, kFloat16 = 2, kBFloat16 = 3 };

// out_b = sqrt(ᾱ[t_b])·x_b + sqrt(1 − ᾱ[t_b])·ε_b over [batch, row_numel] contiguous rows. ε is `noise` (same
// layout and dtype as x) or, when noise is null, the ssni Philox stream of (seed, sample_ids[b] or b, step,
// stream 0). t: [batch] int64 indices into alphas_cumprod: float64 [T].
cudaError_t noise_inject(DType dtype, const void* x, const void* noise, void* out, const int64_t* t,
                         const double* alphas_cumprod, const int64_t* sample_ids, int64_t batch, int64_t row_numel,
                         uint64_t seed, int64_t step, cudaStream_t stream);

// out_b = ‖Σ_k eps_hat[k·B + b] / σ_k‖₂ / K over level-major rows [levels·batch, row_numel]. sigma: [levels] in
// the arithmetic type (float, or double for kFloat64), as is out: [batch]. workspace: at least
// score_norm_workspace_numel(batch, row_numel) elements of the arithmetic type. Deterministic two-pass reduction.
int64_t score_norm_workspace_numel(int64_t batch, int64_t row_numel);
cudaError_t score_norm(DType dtype, const void* eps_hat, const void* sigma, void* out, void* workspace,
                       int64_t levels, int64_t batch, int64_t row_numel, cudaStream_t stream);

}  // namespace ssni::cuda
