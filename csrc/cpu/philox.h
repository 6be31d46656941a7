// The ssni Philox4x32-10 normal stream on the CPU (definition: ssni_kernels/philox.py).
//
// Per sample and element e: key = (seed lo, seed hi), counter = (e div 4, step, sample id, stream); the four
// output words become uniforms u = (r >> 9)·2^-23 + 2^-24 and two Box–Muller pairs (z0, z1), (z2, z3).
// The words are bit-identical to philox.py; the normals are computed in float32 with polynomial log/sin/cos
// (a few ulp from the float64 definition), the same bits on every instruction set.
//
// The vectorised generator is compiled once per instruction set (isa/philox.cpp, table: isa_kernels.h); this
// header is included by those builds too, so it defines no functions (an inline function compiled for one ISA
// could stand in for another's at link time).
#pragma once

#include <cstdint>

namespace ssni {

constexpr uint32_t kPhiloxM0 = 0xD2511F53u;
constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;
constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;
constexpr int kPhiloxRounds = 10;

// The fixed part of one sample's counter and key: everything but the group index e div 4.
struct PhiloxRow {
  uint32_t key0;
  uint32_t key1;
  uint32_t step;
  uint32_t sample_id;
  uint32_t stream;
};

}  // namespace ssni
