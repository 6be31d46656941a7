// The kernels compiled once per instruction set (ATen's CPU-capability scheme): setup.py compiles csrc/cpu/isa/*.cpp
// once per ISA of its ISA_FLAGS (x86-64: default = the baseline, avx2 = AVX2 + FMA, avx512 = AVX-512F), each build
// in namespace ssni::<ISA> with one IsaKernels table; isa_dispatch.h chooses among them at run time. Included by
// those builds, so it defines no functions (an inline function compiled for one ISA could stand in for another's
// at link time).
//
// Results: the Philox normals are the same bits on every ISA (isa/philox.cpp); the elementwise kernels round every
// operation on its own, so they too; the reductions accumulate in a fixed number of lanes, whatever the register
// width, so they too.
#pragma once

#include <cstdint>

#include "philox.h"

namespace ssni {

// Instruction sets with a build of the kernels, in increasing order.
enum class CpuCapability { kDefault, kAvx2, kAvx512 };

// Lanes of the reductions' accumulators (a fixed summation order on every ISA).
constexpr int kReductionLanes = 16;
// Sources add_scaled reads in one pass: several memory streams at once keep more misses in flight than one (a single
// stream leaves most of a core's read bandwidth unused).
constexpr int kMaxSources = 4;

struct IsaKernels {
  // The Philox stream of one sample (philox.h): the normals of groups [group0, group0 + n_groups):
  // out[4·i + j] = z_j of group group0 + i; and the words of the same counters, out[4·i + j] = word j.
  // The generator makes philox_step_normals at a time: a call for a multiple of them wastes nothing.
  int philox_step_normals;
  void (*philox_normals)(const PhiloxRow& row, uint32_t group0, int64_t n_groups, float* out);
  void (*philox_words)(const PhiloxRow& row, uint32_t group0, int64_t n_groups, uint32_t* out);
  // affine_f32 with z = the normals of elements [4·group0, 4·group0 + n) of that stream, made and used a step at a
  // time (the memory streams of x, e and out flow while the generator computes).
  void (*philox_affine_f32)(const PhiloxRow& row, uint32_t group0, int64_t n, float* out, const float* x,
                            const float* e, float cx, float ce, float cz);

  // out[i] = cx·x[i] + ce·e[i] + cz·z[i], each product and sum rounded (left to right); a null e or z leaves its
  // term out.
  void (*affine_f32)(float* out, const float* x, const float* e, const float* z, float cx, float ce, float cz,
                     int64_t n);
  void (*affine_f64)(double* out, const double* x, const double* e, const double* z, double cx, double ce,
                     double cz, int64_t n);

  // acc[i] += w[j]·src[j][i] for j = 0, 1, ..., count − 1 in turn (each product and sum rounded), count ≤
  // kMaxSources: the same bits as count passes of one source, in one pass.
  void (*add_scaled_f32)(float* acc, const float* const* src, const float* w, int count, int64_t n);
  void (*add_scaled_f64)(double* acc, const double* const* src, const double* w, int count, int64_t n);

  // dst[0, bytes) ← src[0, bytes) with non-temporal stores where the ISA has them (around the caches, no read of the
  // destination lines first), fenced before returning: for outputs larger than the last-level cache.
  void (*copy_streaming)(void* dst, const void* src, int64_t bytes);

  // Σ v[i]²: lane l = i mod kReductionLanes sums its squares in order, then the lanes are summed in order.
  float (*sum_squares_f32)(const float* v, int64_t n);
  double (*sum_squares_f64)(const double* v, int64_t n);
};

}  // namespace ssni
