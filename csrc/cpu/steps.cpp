// CPU kernels of ssni::reverse_step (DDIM/DDPM, spec §5) and ssni::vp_sde_step (VP-SDE Euler–Maruyama, spec §6).
// Both are out = cx·x + ce·ε̂ + cz·z with per-sample coefficients computed here in float64.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "common.h"

namespace ssni::cpu {
namespace {

at::ScalarType compute_dtype(const at::Tensor& x) {
  return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

// Samples that keep x unchanged because active[b] is false.
std::vector<bool> inactive_rows(const char* op, const std::optional<at::Tensor>& active, int64_t B) {
  std::vector<bool> inactive(B, false);
  if (active.has_value()) {
    const at::Tensor ac = vector_arg(op, *active, "active", B, false, at::kBool);
    const bool* p = ac.data_ptr<bool>();
    for (int64_t b = 0; b < B; ++b) inactive[b] = !p[b];
  }
  return inactive;
}

at::Tensor run_step(const char* op, const at::Tensor& x, const at::Tensor& eps_hat, const std::vector<RowCoefs>& coefs,
                    const std::optional<at::Tensor>& noise, int64_t seed, const std::optional<at::Tensor>& sample_ids,
                    int64_t step, const std::optional<at::Tensor>& steps, int64_t stream) {
  const int64_t B = x.size(0), N = x.numel() / B;
  const at::Tensor xc = x.contiguous();
  const at::Tensor ec = eps_hat.contiguous();
  at::Tensor out = at::empty(x.sizes(), x.options());
  at::Tensor noise_c, ids_c;
  // Per-sample step words (one call for rows at different steps of their own walks).
  const at::Tensor steps_c =
      steps.has_value() ? vector_arg(op, *steps, "steps", B, /*integer=*/true, at::kLong) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "ssni_step", [&] {
    auto src = make_noise_source<scalar_t>(op, noise, x.sizes(), x, noise_c, seed, sample_ids, ids_c, step, stream);
    if (steps_c.defined()) src.steps = steps_c.data_ptr<int64_t>();
    affine_rows<scalar_t>(out.data_ptr<scalar_t>(), xc.data_ptr<scalar_t>(), B, ec.data_ptr<scalar_t>(), src, coefs,
                          N);
  });
  return out;
}

// x̂0 = (x − sqrt(1−a)·ε̂)/sqrt(a);  out = sqrt(a')·x̂0 + c1·z + c2·ε̂
//   = sqrt(a'/a)·x + (c2 − sqrt(a'(1−a)/a))·ε̂ + c1·z
at::Tensor reverse_step_cpu(const at::Tensor& x, const at::Tensor& eps_hat, const at::Tensor& a,
                            const at::Tensor& a_next, double eta, const std::optional<at::Tensor>& noise,
                            int64_t seed, const std::optional<at::Tensor>& sample_ids, int64_t step,
                            const std::optional<at::Tensor>& active, const std::optional<at::Tensor>& steps) {
  constexpr const char* op = "reverse_step";
  check_data(op, x, "x");
  check_like(op, eps_hat, "eps_hat", x);
  const int64_t B = x.size(0);
  // Rounded to the arithmetic type first, as the reference does.
  const at::Tensor ac = vector_arg(op, a, "a", B, false, compute_dtype(x)).to(at::kDouble);
  const at::Tensor nc = vector_arg(op, a_next, "a_next", B, false, compute_dtype(x)).to(at::kDouble);
  const std::vector<bool> inactive = inactive_rows(op, active, B);
  std::vector<RowCoefs> coefs(B);
  for (int64_t b = 0; b < B; ++b) {
    const double ab = ac.data_ptr<double>()[b], an = nc.data_ptr<double>()[b];
    RowCoefs& c = coefs[b];
    c.copy = inactive[b] || ab == an;
    if (c.copy) continue;
    const double c1 = eta * std::sqrt(std::max(0.0, (1.0 - ab / an) * (1.0 - an) / (1.0 - ab)));
    const double c2 = std::sqrt(std::max(0.0, 1.0 - an - c1 * c1));
    c.cx = std::sqrt(an) / std::sqrt(ab);
    c.ce = c2 - std::sqrt(an) * std::sqrt(1.0 - ab) / std::sqrt(ab);
    c.cz = eta != 0.0 ? c1 : 0.0;
  }
  return run_step(op, x, eps_hat, coefs, noise, seed, sample_ids, step, steps, kStreamReverseStep);
}

// β = β0 + t(β1 − β0), σ = sqrt(1 − m(t)²);  out = x + ½β·dt·x − (β·dt/σ)·ε̂ + sqrt(β·dt)·z
at::Tensor vp_sde_step_cpu(const at::Tensor& x, const at::Tensor& eps_hat, const at::Tensor& t, double dt,
                           const std::optional<at::Tensor>& noise, int64_t seed,
                           const std::optional<at::Tensor>& sample_ids, int64_t step,
                           const std::optional<at::Tensor>& active, double beta_min, double beta_max,
                           const std::optional<at::Tensor>& steps) {
  constexpr const char* op = "vp_sde_step";
  check_data(op, x, "x");
  check_like(op, eps_hat, "eps_hat", x);
  const int64_t B = x.size(0);
  const at::Tensor tc = vector_arg(op, t, "t", B, false, at::kDouble);
  const std::vector<bool> inactive = inactive_rows(op, active, B);
  std::vector<RowCoefs> coefs(B);
  for (int64_t b = 0; b < B; ++b) {
    const double tb = tc.data_ptr<double>()[b];
    RowCoefs& c = coefs[b];
    c.copy = inactive[b];
    if (c.copy) continue;
    const double beta = beta_min + tb * (beta_max - beta_min);
    const double log_m = -0.25 * tb * tb * (beta_max - beta_min) - 0.5 * tb * beta_min;
    const double sigma = std::sqrt(-std::expm1(2.0 * log_m));
    c.cx = 1.0 + 0.5 * beta * dt;
    c.ce = -beta * dt / sigma;
    c.cz = std::sqrt(beta * dt);
  }
  return run_step(op, x, eps_hat, coefs, noise, seed, sample_ids, step, steps, kStreamVpSdeStep);
}

}  // namespace
}  // namespace ssni::cpu

TORCH_LIBRARY_IMPL(ssni, CPU, m) {
  m.impl("reverse_step", &ssni::cpu::reverse_step_cpu);
  m.impl("vp_sde_step", &ssni::cpu::vp_sde_step_cpu);
}
