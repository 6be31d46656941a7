// CUDA dispatch-key kernels of the ssni:: ops (schemas: ssni_kernels/ops.py) backed by csrc/cuda/*.cu. The public
// wrappers in ops.py have validated the arguments; here tensors become contiguous pointers on one device.
// Loaded only when SSNI_CUDA_BACKEND=cuda (ssni_kernels/triton/__init__.py); Triton serves the other ops.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <optional>

#include "kernels.h"

namespace ssni::cuda {
namespace {

DType dtype_of(const at::Tensor& t, const char* op) {
  switch (t.scalar_type()) {
    case at::kFloat:
      return DType::kFloat32;
    case at::kDouble:
      return DType::kFloat64;
    case at::kHalf:
      return DType::kFloat16;
    case at::kBFloat16:
      return DType::kBFloat16;
    default:
      TORCH_CHECK(false, op, ": unsupported dtype ", t.scalar_type());
  }
}

at::ScalarType compute_dtype(const at::Tensor& t) { return t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat; }

at::Tensor noise_inject_cuda(const at::Tensor& x, const at::Tensor& t, const at::Tensor& alphas_cumprod,
                             const std::optional<at::Tensor>& noise, int64_t seed,
                             const std::optional<at::Tensor>& sample_ids, int64_t step) {
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor xc = x.contiguous();
  const at::Tensor tc = t.to(at::kLong).contiguous();
  const at::Tensor ac = alphas_cumprod.to(at::kDouble).contiguous();
  at::Tensor noise_c, ids_c;
  if (noise.has_value()) noise_c = noise->to(x.scalar_type()).contiguous();
  if (sample_ids.has_value()) ids_c = sample_ids->to(at::kLong).contiguous();
  at::Tensor out = at::empty(x.sizes(), x.options());
  const int64_t batch = x.size(0);
  C10_CUDA_CHECK(ssni::cuda::noise_inject(dtype_of(x, "noise_inject"), xc.const_data_ptr(),
                                          noise_c.defined() ? noise_c.const_data_ptr() : nullptr, out.data_ptr(),
                                          tc.const_data_ptr<int64_t>(), ac.const_data_ptr<double>(),
                                          ids_c.defined() ? ids_c.const_data_ptr<int64_t>() : nullptr, batch,
                                          batch ? x.numel() / batch : 0, static_cast<uint64_t>(seed), step,
                                          c10::cuda::getCurrentCUDAStream()));
  return out;
}

at::Tensor score_norm_cuda(const at::Tensor& eps_hat, const at::Tensor& sigma) {
  const c10::cuda::CUDAGuard guard(eps_hat.device());
  const int64_t levels = sigma.size(0);
  const int64_t batch = eps_hat.size(0) / levels;
  const int64_t row_numel = batch ? eps_hat.numel() / eps_hat.size(0) : 0;
  const at::ScalarType cdt = compute_dtype(eps_hat);
  const at::Tensor ec = eps_hat.contiguous();
  const at::Tensor sc = sigma.to(cdt).contiguous();
  at::Tensor out = at::empty({batch}, eps_hat.options().dtype(cdt));
  at::Tensor workspace =
      at::empty({ssni::cuda::score_norm_workspace_numel(batch, row_numel)}, eps_hat.options().dtype(cdt));
  C10_CUDA_CHECK(ssni::cuda::score_norm(dtype_of(eps_hat, "score_norm"), ec.const_data_ptr(), sc.const_data_ptr(),
                                        out.data_ptr(), workspace.data_ptr(), levels, batch, row_numel,
                                        c10::cuda::getCurrentCUDAStream()));
  return out;
}

}  // namespace
}  // namespace ssni::cuda

TORCH_LIBRARY_IMPL(ssni, CUDA, m) {
  m.impl("noise_inject", &ssni::cuda::noise_inject_cuda);
  m.impl("score_norm", &ssni::cuda::score_norm_cuda);
}
