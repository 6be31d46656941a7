// Diagnostics of the per-ISA kernels (isa_dispatch.h), in a namespace of their own that exists wherever this
// library is loaded (the ssni:: schemas live in ssni_kernels/ops.py): which instruction set the ops use, and the
// Philox generator of any available one on its own, single-threaded, for the cross-ISA tests and the RNG benchmark.
//
//   ssni_cpu::capability() -> str        the instruction set the ops use (default, avx2 or avx512)
//   ssni_cpu::capabilities() -> str[]    those this build and CPU run, in increasing order
//   ssni_cpu::philox_normals(seed, sample_id, step, stream, group0, n_groups, capability) -> float32 [4·n_groups]
//   ssni_cpu::philox_words(seed, sample_id, step, stream, group0, n_groups, capability) -> int64 [n_groups, 4]
//
// The counters are (group0 + i, step, sample_id, stream), i < n_groups, under key = seed: the stream of one sample.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <string>
#include <vector>

#include "common.h"

namespace ssni::cpu {
namespace {

std::string capability() { return capability_name(active_capability()); }

std::vector<std::string> capabilities() {
  std::vector<std::string> names;
  for (const auto c : available_capabilities()) names.emplace_back(capability_name(c));
  return names;
}

PhiloxRow checked_row(const char* op, int64_t seed, int64_t sample_id, int64_t step, int64_t stream, int64_t group0,
                      int64_t n_groups) {
  TORCH_CHECK(group0 >= 0 && group0 < (int64_t{1} << 32), op, ": group0 must be in [0, 2^32), got ", group0);
  TORCH_CHECK(n_groups >= 0, op, ": n_groups must be >= 0, got ", n_groups);
  return make_philox_row(seed, sample_id, step, stream);
}

at::Tensor philox_normals_op(int64_t seed, int64_t sample_id, int64_t step, int64_t stream, int64_t group0,
                             int64_t n_groups, c10::string_view capability) {
  const PhiloxRow row = checked_row("philox_normals", seed, sample_id, step, stream, group0, n_groups);
  const CpuCapability isa = parse_capability(std::string(capability).c_str(), "capability");
  at::Tensor out = at::empty({4 * n_groups}, at::kFloat);
  isa_kernels(isa).philox_normals(row, static_cast<uint32_t>(group0), n_groups, out.data_ptr<float>());
  return out;
}

at::Tensor philox_words_op(int64_t seed, int64_t sample_id, int64_t step, int64_t stream, int64_t group0,
                           int64_t n_groups, c10::string_view capability) {
  const PhiloxRow row = checked_row("philox_words", seed, sample_id, step, stream, group0, n_groups);
  const CpuCapability isa = parse_capability(std::string(capability).c_str(), "capability");
  std::vector<uint32_t> words(4 * n_groups);
  isa_kernels(isa).philox_words(row, static_cast<uint32_t>(group0), n_groups, words.data());
  at::Tensor out = at::empty({n_groups, 4}, at::kLong);
  int64_t* dst = out.data_ptr<int64_t>();
  for (int64_t i = 0; i < 4 * n_groups; ++i) dst[i] = words[i];
  return out;
}

}  // namespace
}  // namespace ssni::cpu

TORCH_LIBRARY(ssni_cpu, m) {
  m.def("capability() -> str", &ssni::cpu::capability);
  m.def("capabilities() -> str[]", &ssni::cpu::capabilities);
  m.def("philox_normals(int seed, int sample_id, int step, int stream, int group0, int n_groups, str capability) "
        "-> Tensor",
        &ssni::cpu::philox_normals_op);
  m.def("philox_words(int seed, int sample_id, int step, int stream, int group0, int n_groups, str capability) "
        "-> Tensor",
        &ssni::cpu::philox_words_op);
}
