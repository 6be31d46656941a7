// The ssni Philox4x32-10 normal stream on the CPU (definition: ssni_kernels/philox.py).
//
// Per sample and element e: key = (seed lo, seed hi), counter = (e div 4, step, sample id, stream); the four
// output words become uniforms u = (r >> 9)·2^-23 + 2^-24 and two Box–Muller pairs (z0, z1), (z2, z3).
// The words are bit-identical to philox.py; the normals are computed in float32 with polynomial log/sin/cos
// (a few ulp from the float64 definition), the same bits on every instruction set.
//
// The generator is compiled once per instruction set (isa/philox_kernels.cpp) and chosen at run time
// (philox.cpp): the widest the CPU has, at most SSNI_CPU_CAPABILITY (default, avx2, avx512) when that is set.
#pragma once

#include <cstdint>
#include <vector>

namespace ssni {

constexpr uint32_t kPhiloxM0 = 0xD2511F53u;
constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;
constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;
constexpr int kPhiloxRounds = 10;

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

// The fixed part of one sample's counter and key: everything but the group index e div 4.
struct PhiloxRow {
  uint32_t key0;
  uint32_t key1;
  uint32_t step;
  uint32_t sample_id;
  uint32_t stream;
};

inline PhiloxRow make_philox_row(int64_t seed, int64_t sample_id, int64_t step, int64_t stream) {
  const uint64_t s = static_cast<uint64_t>(seed);
  return PhiloxRow{static_cast<uint32_t>(s), static_cast<uint32_t>(s >> 32), static_cast<uint32_t>(step),
                   static_cast<uint32_t>(sample_id), static_cast<uint32_t>(stream)};
}

// Instruction sets the generator is compiled for, in increasing order (names: default, avx2, avx512).
enum class CpuCapability { kDefault, kAvx2, kAvx512 };

const char* capability_name(CpuCapability capability);

// Parses a name of capability_name; an error naming `what` (where the name came from) otherwise.
CpuCapability parse_capability(const char* name, const char* what);

// Those this build has and this CPU runs, in increasing order (kDefault always).
const std::vector<CpuCapability>& available_capabilities();

// The one the ops use: the widest available, capped by SSNI_CPU_CAPABILITY (read once, at the first call).
CpuCapability active_capability();

// Normals of groups [group0, group0 + n_groups) of one sample: out[4·i + j] = z_j of group group0 + i
// (4·n_groups floats). With the active capability, or a given available one.
void philox_normals(const PhiloxRow& row, uint32_t group0, int64_t n_groups, float* out);
void philox_normals(CpuCapability capability, const PhiloxRow& row, uint32_t group0, int64_t n_groups, float* out);

// The words of the same counters: out[4·i + j] = word j of group group0 + i (4·n_groups words).
void philox_words(CpuCapability capability, const PhiloxRow& row, uint32_t group0, int64_t n_groups, uint32_t* out);

}  // namespace ssni
