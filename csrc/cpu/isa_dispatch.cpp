// isa_dispatch.h. setup.py defines SSNI_BUILT_<ISA> for each ISA build it links in besides DEFAULT.
#include "isa_dispatch.h"

#include <c10/util/Exception.h>

#include <cstdlib>
#include <cstring>

#include "common.h"

namespace ssni {

namespace DEFAULT {
extern const IsaKernels kernels;
}
#ifdef SSNI_BUILT_AVX2
namespace AVX2 {
extern const IsaKernels kernels;
}
#endif
#ifdef SSNI_BUILT_AVX512
namespace AVX512 {
extern const IsaKernels kernels;
}
#endif

namespace {

constexpr const char* kCapabilityNames[] = {"default", "avx2", "avx512"};
constexpr CpuCapability kCapabilities[] = {CpuCapability::kDefault, CpuCapability::kAvx2, CpuCapability::kAvx512};
constexpr const char* kCapabilityEnv = "SSNI_CPU_CAPABILITY";

// The table of a capability this build has, else null.
const IsaKernels* built(CpuCapability capability) {
  switch (capability) {
    case CpuCapability::kDefault:
      return &DEFAULT::kernels;
#ifdef SSNI_BUILT_AVX2
    case CpuCapability::kAvx2:
      return &AVX2::kernels;
#endif
#ifdef SSNI_BUILT_AVX512
    case CpuCapability::kAvx512:
      return &AVX512::kernels;
#endif
    default:
      return nullptr;
  }
}

bool cpu_runs(CpuCapability capability) {
  switch (capability) {
    case CpuCapability::kDefault:
      return true;
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    case CpuCapability::kAvx2:  // libgcc's checks include the OS's support for the ymm/zmm state (XCR0)
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

std::vector<CpuCapability> find_available() {
  std::vector<CpuCapability> found;
  for (const auto capability : kCapabilities) {
    const IsaKernels* kernels = built(capability);
    if (kernels == nullptr) continue;
    TORCH_INTERNAL_ASSERT(cpu::kBlock % kernels->philox_step_normals == 0, "kBlock (", cpu::kBlock,
                          ") is not a multiple of the ", capability_name(capability), " generator's step (",
                          kernels->philox_step_normals, " normals)");
    if (cpu_runs(capability)) found.push_back(capability);
  }
  return found;
}

CpuCapability choose_active() {
  const CpuCapability widest = available_capabilities().back();
  const char* cap = std::getenv(kCapabilityEnv);
  if (cap == nullptr || *cap == '\0') return widest;
  const CpuCapability requested = parse_capability(cap, kCapabilityEnv);
  return requested < widest ? requested : widest;
}

}  // namespace

const char* capability_name(CpuCapability capability) { return kCapabilityNames[static_cast<int>(capability)]; }

CpuCapability parse_capability(const char* name, const char* what) {
  for (const auto capability : kCapabilities) {
    if (std::strcmp(name, capability_name(capability)) == 0) return capability;
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

const IsaKernels& isa_kernels(CpuCapability capability) {
  for (const auto a : available_capabilities()) {
    if (a == capability) return *built(capability);
  }
  TORCH_CHECK(false, "the ", capability_name(capability), " kernels are not available here (this build and CPU run ",
              capability_name(available_capabilities().back()), " and below)");
}

const IsaKernels& isa_kernels() {
  static const IsaKernels& active = *built(active_capability());
  return active;
}

}  // namespace ssni
