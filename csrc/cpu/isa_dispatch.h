// The run-time choice among the per-ISA kernel tables (isa_kernels.h), as ATen's DispatchStub does: the widest
// table the CPU runs (cpuid, with the OS's support for the register state), capped by the environment variable
// SSNI_CPU_CAPABILITY (default, avx2 or avx512; read once, at the first use).
#pragma once

#include <vector>

#include "isa_kernels.h"

namespace ssni {

const char* capability_name(CpuCapability capability);

// Parses a name of capability_name; an error naming `what` (where the name came from) otherwise.
CpuCapability parse_capability(const char* name, const char* what);

// The capabilities this build has and this CPU runs, in increasing order (kDefault always).
const std::vector<CpuCapability>& available_capabilities();

// The one the ops use: the widest available, capped by SSNI_CPU_CAPABILITY.
CpuCapability active_capability();

// The kernels of an available capability (an error for another), or of the active one.
const IsaKernels& isa_kernels(CpuCapability capability);
const IsaKernels& isa_kernels();

}  // namespace ssni
