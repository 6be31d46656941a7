// CPU kernels of ssni::noise_inject and ssni::noise_inject_levels (math: ssni_kernels/reference.py).
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <cmath>
#include <optional>
#include <vector>

#include "common.h"

namespace ssni::cpu {
namespace {

// out_b = sqrt(ᾱ[t_b])·x_b + sqrt(1 − ᾱ[t_b])·ε_b
at::Tensor noise_inject_cpu(const at::Tensor& x, const at::Tensor& t, const at::Tensor& alphas_cumprod,
                            const std::optional<at::Tensor>& noise, int64_t seed,
                            const std::optional<at::Tensor>& sample_ids, int64_t step) {
  constexpr const char* op = "noise_inject";
  check_data(op, x, "x");
  const int64_t B = x.size(0), N = x.numel() / B;
  const at::Tensor tc = vector_arg(op, t, "t", B, /*integer=*/true, at::kLong);
  TORCH_CHECK(alphas_cumprod.dim() == 1 && alphas_cumprod.size(0) > 0, op,
              ": alphas_cumprod must be a non-empty 1-D tensor, got ", alphas_cumprod.sizes());
  const at::Tensor ac = vector_arg(op, alphas_cumprod, "alphas_cumprod", alphas_cumprod.size(0), false, at::kDouble);
  const int64_t T = ac.size(0);
  const int64_t* tp = tc.data_ptr<int64_t>();
  const double* ap = ac.data_ptr<double>();
  std::vector<RowCoefs> coefs(B);
  for (int64_t b = 0; b < B; ++b) {
    TORCH_CHECK(tp[b] >= 0 && tp[b] < T, op, ": t[", b, "] = ", tp[b], " is outside [0, ", T, ")");
    coefs[b].cx = std::sqrt(ap[tp[b]]);
    coefs[b].cz = std::sqrt(1.0 - ap[tp[b]]);
  }
  const at::Tensor xc = x.contiguous();
  at::Tensor out = at::empty(x.sizes(), x.options());
  at::Tensor noise_c, ids_c;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), op, [&] {
    const auto src = make_noise_source<scalar_t>(op, noise, x.sizes(), x, noise_c, seed, sample_ids, ids_c, step,
                                                 kStreamNoiseInject);
    affine_rows<scalar_t>(out.data_ptr<scalar_t>(), xc.data_ptr<scalar_t>(), B, nullptr, src, coefs, N);
  });
  return out;
}

// out[k·B + b] = mean_coef[k]·x_b + std[k]·ε_{k,b}; level k draws with step = k.
at::Tensor noise_inject_levels_cpu(const at::Tensor& x, const at::Tensor& mean_coef, const at::Tensor& std_,
                                   const std::optional<at::Tensor>& noise, int64_t seed,
                                   const std::optional<at::Tensor>& sample_ids) {
  constexpr const char* op = "noise_inject_levels";
  check_data(op, x, "x");
  const int64_t B = x.size(0), N = x.numel() / B;
  TORCH_CHECK(mean_coef.dim() == 1 && mean_coef.size(0) > 0, op, ": mean_coef must be a non-empty 1-D tensor, got ",
              mean_coef.sizes());
  const int64_t K = mean_coef.size(0);
  // Rounded to the arithmetic type first, as the reference does.
  const at::ScalarType cdt = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor mc = vector_arg(op, mean_coef, "mean_coef", K, false, cdt).to(at::kDouble);
  const at::Tensor sc = vector_arg(op, std_, "std", K, false, cdt).to(at::kDouble);
  std::vector<RowCoefs> coefs(K * B);
  for (int64_t r = 0; r < K * B; ++r) {
    coefs[r].cx = mc.data_ptr<double>()[r / B];
    coefs[r].cz = sc.data_ptr<double>()[r / B];
  }
  std::vector<int64_t> out_shape(x.sizes().begin(), x.sizes().end());
  out_shape[0] = K * B;
  const at::Tensor xc = x.contiguous();
  at::Tensor out = at::empty(out_shape, x.options());
  at::Tensor noise_c, ids_c;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), op, [&] {
    auto src = make_noise_source<scalar_t>(op, noise, out_shape, x, noise_c, seed, sample_ids, ids_c, 0,
                                           kStreamNoiseLevels);
    src.step_is_level = true;
    affine_rows<scalar_t>(out.data_ptr<scalar_t>(), xc.data_ptr<scalar_t>(), B, nullptr, src, coefs, N);
  });
  return out;
}

// Philox4x32-10 of one counter, in place: the plain definition, for arbitrary counters (philox_bits).
inline void philox4x32_10(uint32_t c[4], uint32_t k0, uint32_t k1) {
  for (int r = 0; r < kPhiloxRounds; ++r) {
    const uint64_t p0 = static_cast<uint64_t>(kPhiloxM0) * c[0];
    const uint64_t p1 = static_cast<uint64_t>(kPhiloxM1) * c[2];
    const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c[1] ^ k0;
    const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c[3] ^ k1;
    c[1] = static_cast<uint32_t>(p1);
    c[3] = static_cast<uint32_t>(p0);
    c[0] = n0;
    c[2] = n2;
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
}

// ssni::philox_bits(counters [N, 4] int64 holding uint32, seed) -> [N, 4] int64: the raw words, for tests.
at::Tensor philox_bits_cpu(const at::Tensor& counters, int64_t seed) {
  TORCH_CHECK(counters.device().is_cpu(), "philox_bits: counters must be a CPU tensor");
  TORCH_CHECK(counters.scalar_type() == at::kLong, "philox_bits: counters must be int64, got ", counters.scalar_type());
  TORCH_CHECK(counters.dim() == 2 && counters.size(1) == 4, "philox_bits: counters must have shape [N, 4], got ",
              counters.sizes());
  const at::Tensor c = counters.contiguous();
  at::Tensor out = at::empty_like(c);
  const int64_t* src = c.data_ptr<int64_t>();
  int64_t* dst = out.data_ptr<int64_t>();
  const PhiloxRow key = make_philox_row(seed, 0, 0, 0);
  at::parallel_for(0, c.size(0), 4096, [&](int64_t lo, int64_t hi) {
    for (int64_t n = lo; n < hi; ++n) {
      uint32_t w[4];
      for (int j = 0; j < 4; ++j) w[j] = static_cast<uint32_t>(src[4 * n + j]);
      philox4x32_10(w, key.key0, key.key1);
      for (int j = 0; j < 4; ++j) dst[4 * n + j] = static_cast<int64_t>(w[j]);
    }
  });
  return out;
}

}  // namespace
}  // namespace ssni::cpu

TORCH_LIBRARY_IMPL(ssni, CPU, m) {
  m.impl("noise_inject", &ssni::cpu::noise_inject_cpu);
  m.impl("noise_inject_levels", &ssni::cpu::noise_inject_levels_cpu);
  m.impl("philox_bits", &ssni::cpu::philox_bits_cpu);
}
