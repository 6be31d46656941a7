// CPU kernels of ssni::score_norm and ssni::score_norm_backward (EPS score norm, spec §2).
//
// eps_hat is [K·B, ...] level-major; the mean score of sample b is s_b = −(1/K) Σ_k eps_hat[k·B + b] / σ_k and
// the op returns e_b = ‖s_b‖₂ (float32, float64 for float64 input). One pass over eps_hat, no [B, ...] temporary.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "common.h"

namespace ssni::cpu {
namespace {

struct Levels {
  int64_t K;
  int64_t B;
  int64_t N;
  std::vector<double> weights;  // w_k = −1/(K·σ_k): s_b = Σ_k w_k·eps_hat[k·B + b]
};

Levels check_levels(const char* op, const at::Tensor& eps_hat, const at::Tensor& sigma) {
  check_data(op, eps_hat, "eps_hat");
  TORCH_CHECK(sigma.dim() == 1 && sigma.size(0) > 0, op, ": sigma must be a non-empty 1-D tensor, got ",
              sigma.sizes());
  const int64_t K = sigma.size(0);
  TORCH_CHECK(eps_hat.size(0) % K == 0, op, ": eps_hat has ", eps_hat.size(0),
              " rows, not a multiple of K = len(sigma) = ", K);
  const at::ScalarType cdt = eps_hat.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor s = vector_arg(op, sigma, "sigma", K, false, cdt).to(at::kDouble);
  std::vector<double> weights(K);
  for (int64_t k = 0; k < K; ++k) weights[k] = -1.0 / (static_cast<double>(K) * s.data_ptr<double>()[k]);
  return Levels{K, eps_hat.size(0) / K, eps_hat.numel() / eps_hat.size(0), std::move(weights)};
}

// score[0, len) ← s_b at elements [start, start + len), len ≤ kChunk: one pass over the K slabs of sample b,
// kMaxSources slabs at a time (levels in order).
template <typename scalar_t, typename acc_t>
void mean_score(const IsaKernels& kernels, const scalar_t* eps, const Levels& lv, const acc_t* w, int64_t b,
                int64_t start, int64_t len, acc_t* score) {
  std::fill(score, score + len, acc_t(0));
  constexpr bool convert = !std::is_same_v<acc_t, scalar_t>;
  alignas(64) acc_t converted[convert ? kMaxSources : 1][convert ? kChunk : 1];
  for (int64_t k = 0; k < lv.K; k += kMaxSources) {
    const int count = static_cast<int>(std::min<int64_t>(kMaxSources, lv.K - k));
    const acc_t* src[kMaxSources];
    for (int j = 0; j < count; ++j) {
      src[j] = as_acc(eps + ((k + j) * lv.B + b) * lv.N + start, len, converted[convert ? j : 0]);
    }
    add_scaled(kernels, score, src, w + k, count, len);
  }
}

// dst[0, len) ← c·v[i] rounded to scalar_t, len ≤ kChunk (non-temporal stores when `streaming`).
template <typename scalar_t, typename acc_t>
void store_scaled(const IsaKernels& kernels, scalar_t* dst, const acc_t* v, acc_t c, int64_t len, bool streaming) {
  if constexpr (std::is_same_v<acc_t, scalar_t>) {
    if (!streaming) return affine(kernels, dst, v, nullptr, nullptr, c, acc_t(0), acc_t(0), len);
  }
  alignas(64) acc_t scaled[kChunk];
  affine(kernels, scaled, v, nullptr, nullptr, c, acc_t(0), acc_t(0), len);
  store(kernels, dst, scaled, len, streaming);
}

template <typename acc_t>
std::vector<acc_t> cast_weights(const Levels& lv) {
  std::vector<acc_t> w(lv.K);
  for (int64_t k = 0; k < lv.K; ++k) w[k] = static_cast<acc_t>(lv.weights[k]);
  return w;
}

at::Tensor score_norm_cpu(const at::Tensor& eps_hat, const at::Tensor& sigma) {
  constexpr const char* op = "score_norm";
  const Levels lv = check_levels(op, eps_hat, sigma);
  const at::Tensor ec = eps_hat.contiguous();
  const at::ScalarType cdt = eps_hat.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor out = at::empty({lv.B}, eps_hat.options().dtype(cdt));
  const int64_t per_row = (lv.N + kChunk - 1) / kChunk;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, eps_hat.scalar_type(), op, [&] {
    using acc_t = acc_type<scalar_t>;
    const std::vector<acc_t> w = cast_weights<acc_t>(lv);
    std::vector<acc_t> partial(lv.B * per_row, acc_t(0));
    const IsaKernels& kernels = isa_kernels();
    for_each_chunk(lv.B, lv.N, [&](int64_t b, int64_t start, int64_t len) {
      alignas(64) acc_t score[kChunk];
      mean_score(kernels, ec.data_ptr<scalar_t>(), lv, w.data(), b, start, len, score);
      partial[b * per_row + start / kChunk] = sum_squares(kernels, score, len);
    }, lv.K);
    acc_t* dst = out.data_ptr<acc_t>();
    for (int64_t b = 0; b < lv.B; ++b) {
      acc_t sq = 0;
      for (int64_t c = 0; c < per_row; ++c) sq += partial[b * per_row + c];
      dst[b] = std::sqrt(sq);
    }
  });
  return out;
}

// ∂e_b/∂eps_hat[k·B + b] = w_k·s_b / e_b (0 where e_b = 0, as torch's vector_norm backward): one read of eps_hat
// (for s_b) and one write of the gradient, around the caches when it is larger than the last-level cache.
at::Tensor score_norm_backward_cpu(const at::Tensor& grad, const at::Tensor& eps_hat, const at::Tensor& sigma,
                                   const at::Tensor& norm) {
  constexpr const char* op = "score_norm_backward";
  const Levels lv = check_levels(op, eps_hat, sigma);
  const at::ScalarType cdt = eps_hat.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor gc = vector_arg(op, grad, "grad", lv.B, false, cdt);
  const at::Tensor nc = vector_arg(op, norm, "norm", lv.B, false, cdt);
  const at::Tensor ec = eps_hat.contiguous();
  at::Tensor out = at::empty(eps_hat.sizes(), eps_hat.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, eps_hat.scalar_type(), op, [&] {
    using acc_t = acc_type<scalar_t>;
    const std::vector<acc_t> w = cast_weights<acc_t>(lv);
    const acc_t* g = gc.data_ptr<acc_t>();
    const acc_t* e = nc.data_ptr<acc_t>();
    const IsaKernels& kernels = isa_kernels();
    const bool streaming = stream_output(out.numel() * static_cast<int64_t>(sizeof(scalar_t)));
    for_each_chunk(lv.B, lv.N, [&](int64_t b, int64_t start, int64_t len) {
      alignas(64) acc_t score[kChunk];
      mean_score(kernels, ec.data_ptr<scalar_t>(), lv, w.data(), b, start, len, score);
      const acc_t scale = e[b] == acc_t(0) ? acc_t(0) : g[b] / e[b];
      for (int64_t k = 0; k < lv.K; ++k) {
        scalar_t* dst = out.data_ptr<scalar_t>() + (k * lv.B + b) * lv.N + start;
        store_scaled(kernels, dst, score, scale * w[k], len, streaming);
      }
    }, lv.K);
  });
  return out;
}

}  // namespace
}  // namespace ssni::cpu

TORCH_LIBRARY_IMPL(ssni, CPU, m) {
  m.impl("score_norm", &ssni::cpu::score_norm_cpu);
  m.impl("score_norm_backward", &ssni::cpu::score_norm_backward_cpu);
}
