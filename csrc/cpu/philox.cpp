// Run-time choice among the per-ISA builds of the Philox generator (philox.h, isa/philox_kernels.cpp), as ATen's
// DispatchStub does: the CPU's features (cpuid, with the OS's register-state support) decide what may run, an
// environment variable may cap it. setup.py defines SSNI_BUILT_<ISA> for each ISA build it links in.
#include "philox.h"

#include <c10/util/Exception.h>

#include <cstdlib>
#include <cstring>

namespace ssni {

#define SSNI_DECLARE_PHILOX_KERNELS(isa)                                                 \
  namespace isa {                                                                        \
  void philox_normals(const PhiloxRow& row, uint32_t group0, int64_t n_groups, float* out); \
  void philox_words(const PhiloxRow& row, uint32_t group0, int64_t n_groups, uint32_t* out); \
  }
SSNI_DECLARE_PHILOX_KERNELS(DEFAULT)
#ifdef SSNI_BUILT_AVX2
SSNI_DECLARE_PHILOX_KERNELS(AVX2)
#endif
#ifdef SSNI_BUILT_AVX512
SSNI_DECLARE_PHILOX_KERNELS(AVX512)
#endif
#undef SSNI_DECLARE_PHILOX_KERNELS

namespace {

constexpr const char* kCapabilityNames[] = {"default", "avx2", "avx512"};
constexpr const char* kCapabilityEnv = "SSNI_CPU_CAPABILITY";

bool cpu_runs(CpuCapability capability) {
  switch (capability) {
    case CpuCapability::kDefault:
      return true;
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    case CpuCapability::kAvx2:
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case CpuCapability::kAvx512:
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
#endif
    default:
      return false;
  }
}

bool built(CpuCapability capability) {
  switch (capability) {
    case CpuCapability::kDefault:
      return true;
#ifdef SSNI_BUILT_AVX2
    case CpuCapability::kAvx2:
      return true;
#endif
#ifdef SSNI_BUILT_AVX512
    case CpuCapability::kAvx512:
      return true;
#endif
    default:
      return false;
  }
}

std::vector<CpuCapability> find_available() {
  std::vector<CpuCapability> found;
  for (const auto capability : {CpuCapability::kDefault, CpuCapability::kAvx2, CpuCapability::kAvx512}) {
    if (built(capability) && cpu_runs(capability)) found.push_back(capability);
  }
  return found;
}

CpuCapability choose_active() {
  CpuCapability widest = available_capabilities().back();
  const char* cap = std::getenv(kCapabilityEnv);
  if (cap == nullptr || *cap == '\0') return widest;
  const CpuCapability requested = parse_capability(cap, kCapabilityEnv);
  return requested < widest ? requested : widest;
}

void check_available(CpuCapability capability) {
  const auto& available = available_capabilities();
  for (const auto a : available) {
    if (a == capability) return;
  }
  TORCH_CHECK(false, "the Philox generator for ", capability_name(capability),
              " is not available here (this build and CPU run: ", capability_name(available.back()), " and below)");
}

}  // namespace

const char* capability_name(CpuCapability capability) { return kCapabilityNames[static_cast<int>(capability)]; }

CpuCapability parse_capability(const char* name, const char* what) {
  for (int i = 0; i < 3; ++i) {
    if (std::strcmp(name, kCapabilityNames[i]) == 0) return static_cast<CpuCapability>(i);
  }
  TORCH_CHECK(false, what, " must be one of default, avx2, avx512, got '", name, "'");
}

const std::vector<CpuCapability>& available_capabilities() {
  static const std::vector<CpuCapability> available = find_available();
  return available;
}

CpuCapability active_capability() {
  static const CpuCapability active = choose_active();
  return active;
}

namespace {

void dispatch_normals(CpuCapability capability, const PhiloxRow& row, uint32_t group0, int64_t n_groups,
                      float* out) {
  switch (capability) {
#ifdef SSNI_BUILT_AVX512
    case CpuCapability::kAvx512:
      return AVX512::philox_normals(row, group0, n_groups, out);
#endif
#ifdef SSNI_BUILT_AVX2
    case CpuCapability::kAvx2:
      return AVX2::philox_normals(row, group0, n_groups, out);
#endif
    default:
      return DEFAULT::philox_normals(row, group0, n_groups, out);
  }
}

}  // namespace

void philox_normals(const PhiloxRow& row, uint32_t group0, int64_t n_groups, float* out) {
  dispatch_normals(active_capability(), row, group0, n_groups, out);
}

void philox_normals(CpuCapability capability, const PhiloxRow& row, uint32_t group0, int64_t n_groups,
                    float* out) {
  check_available(capability);
  dispatch_normals(capability, row, group0, n_groups, out);
}

void philox_words(CpuCapability capability, const PhiloxRow& row, uint32_t group0, int64_t n_groups,
                  uint32_t* out) {
  check_available(capability);
  switch (capability) {
#ifdef SSNI_BUILT_AVX512
    case CpuCapability::kAvx512:
      return AVX512::philox_words(row, group0, n_groups, out);
#endif
#ifdef SSNI_BUILT_AVX2
    case CpuCapability::kAvx2:
      return AVX2::philox_words(row, group0, n_groups, out);
#endif
    default:
      return DEFAULT::philox_words(row, group0, n_groups, out);
  }
}

}  // namespace ssni
