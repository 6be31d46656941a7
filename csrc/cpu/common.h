// Shared pieces of the CPU kernels: argument checks, the chunked parallel loop, the noise source and the fused
// elementwise loop (its arithmetic: the per-ISA kernels of isa_kernels.h).
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "isa_dispatch.h"
#include "philox.h"

namespace ssni::cpu {

// Elements per work item: a multiple of kBlock.
constexpr int64_t kChunk = 6144;
// Elements per step within a work item: small enough that generating a block's noise and using it alternate
// finely, so that the memory streams of x and out keep flowing while the generator computes (and the buffers stay
// in L1); a multiple of every ISA's philox_step_normals (isa_dispatch.cpp checks), so no generated normal is wasted.
constexpr int64_t kBlock = 384;

// Stream ids of reference.py (STREAM_*): separate the ops' noise.
constexpr int64_t kStreamNoiseInject = 0;
constexpr int64_t kStreamNoiseLevels = 1;
constexpr int64_t kStreamReverseStep = 2;
constexpr int64_t kStreamVpSdeStep = 3;

// Arithmetic type of a storage type: double for double, float otherwise.
template <typename scalar_t>
using acc_type = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;

inline void check_data(const char* op, const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), op, ": ", name, " must be a CPU tensor for the CPU kernel, got ", t.device());
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), op, ": ", name, " must be floating point, got ", t.scalar_type());
  TORCH_CHECK(t.dim() >= 1 && t.size(0) > 0, op, ": ", name, " must be [B, ...] with B > 0, got ", t.sizes());
}

inline void check_like(const char* op, const at::Tensor& t, const char* name, const at::Tensor& x) {
  TORCH_CHECK(t.sizes() == x.sizes(), op, ": ", name, " must have the shape of x ", x.sizes(), ", got ", t.sizes());
  TORCH_CHECK(t.scalar_type() == x.scalar_type(), op, ": ", name, " must have the dtype of x (", x.scalar_type(),
              "), got ", t.scalar_type());
  TORCH_CHECK(t.device() == x.device(), op, ": ", name, " must be on the device of x");
}

// A 1-D per-sample (or per-level) vector of length n on the CPU, returned contiguous in `dtype`.
inline at::Tensor vector_arg(const char* op, const at::Tensor& v, const char* name, int64_t n, bool integer,
                             at::ScalarType dtype) {
  TORCH_CHECK(v.device().is_cpu(), op, ": ", name, " must be a CPU tensor, got ", v.device());
  TORCH_CHECK(v.dim() == 1 && v.size(0) == n, op, ": ", name, " must have shape [", n, "], got ", v.sizes());
  if (integer) {
    TORCH_CHECK(!at::isFloatingType(v.scalar_type()) && v.scalar_type() != at::kBool, op, ": ", name,
                " must be an integer tensor, got ", v.scalar_type());
  } else if (dtype != at::kBool) {
    TORCH_CHECK(at::isFloatingType(v.scalar_type()), op, ": ", name, " must be floating point, got ",
                v.scalar_type());
  } else {
    TORCH_CHECK(v.scalar_type() == at::kBool, op, ": ", name, " must be a bool tensor, got ", v.scalar_type());
  }
  return v.to(dtype).contiguous();
}

// Elements of work below which one more thread does not pay for its hand-off (ATen's at::internal::GRAIN_SIZE):
// an op on a small tensor (an MNIST batch is 16-64 × 784 elements) runs on the calling thread alone, so it never
// waits for a worker that another process holds off its core.
constexpr int64_t kGrain = 32768;

// f(row, start, len) over [rows × row_numel] split into chunks of kChunk elements, on at most one thread per kGrain
// elements of work (`reads_per_element`: the input elements a chunk reads per element of its range, K for the
// score-norm loops). Each thread claims the next run of consecutive chunks when it is done with one, so that a thread
// that loses its core for a while (other processes on a shared machine) does not hold up the others with a fixed
// share of the work; a run is 1/8 of a worker's share, long enough that each thread streams through contiguous
// memory (the hardware prefetchers restart at every jump: one chunk per claim cost 5-10% of copy bandwidth here).
template <typename F>
void for_each_chunk(int64_t rows, int64_t row_numel, const F& f, int64_t reads_per_element = 1) {
  const int64_t per_row = (row_numel + kChunk - 1) / kChunk;
  const int64_t chunks = rows * per_row;
  const int64_t work = rows * row_numel * reads_per_element;
  const int64_t workers =
      std::min<int64_t>({at::get_num_threads(), chunks, (work + kGrain - 1) / kGrain});
  const int64_t run = std::max<int64_t>(1, chunks / (8 * std::max<int64_t>(workers, 1)));  // 0 chunks: 0 workers
  std::atomic<int64_t> next{0};
  const auto claim_chunks = [&] {
    for (int64_t first = next.fetch_add(run, std::memory_order_relaxed); first < chunks;
         first = next.fetch_add(run, std::memory_order_relaxed)) {
      for (int64_t c = first; c < std::min(first + run, chunks); ++c) {
        const int64_t row = c / per_row;
        const int64_t start = (c % per_row) * kChunk;
        f(row, start, std::min(kChunk, row_numel - start));
      }
    }
  };
  if (workers <= 1) {
    claim_chunks();
    return;
  }
  at::parallel_for(0, workers, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t worker = lo; worker < hi; ++worker) claim_chunks();
  });
}

inline PhiloxRow make_philox_row(int64_t seed, int64_t sample_id, int64_t step, int64_t stream) {
  const uint64_t s = static_cast<uint64_t>(seed);
  return PhiloxRow{static_cast<uint32_t>(s), static_cast<uint32_t>(s >> 32), static_cast<uint32_t>(step),
                   static_cast<uint32_t>(sample_id), static_cast<uint32_t>(stream)};
}

// The kernels of isa_kernels.h by arithmetic type.
inline void affine(const IsaKernels& k, float* out, const float* x, const float* e, const float* z, float cx,
                   float ce, float cz, int64_t n) {
  k.affine_f32(out, x, e, z, cx, ce, cz, n);
}
inline void affine(const IsaKernels& k, double* out, const double* x, const double* e, const double* z, double cx,
                   double ce, double cz, int64_t n) {
  k.affine_f64(out, x, e, z, cx, ce, cz, n);
}
inline void add_scaled(const IsaKernels& k, float* acc, const float* const* src, const float* w, int count,
                       int64_t n) {
  k.add_scaled_f32(acc, src, w, count, n);
}
inline void add_scaled(const IsaKernels& k, double* acc, const double* const* src, const double* w, int count,
                       int64_t n) {
  k.add_scaled_f64(acc, src, w, count, n);
}
inline float sum_squares(const IsaKernels& k, const float* v, int64_t n) { return k.sum_squares_f32(v, n); }
inline double sum_squares(const IsaKernels& k, const double* v, int64_t n) { return k.sum_squares_f64(v, n); }

// Size of the largest cache CPU 0 reports in Linux's sysfs (a core's share of the last level: the L3 of its core
// complex, where sysconf would give the whole package's), else 32 MiB.
inline int64_t last_level_cache_bytes() {
  int64_t largest = 0;
  for (int index = 0; index < 8; ++index) {
    std::ifstream file("/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/size");
    int64_t value = 0;
    char unit = 0;
    if (!(file >> value)) break;
    file >> unit;
    largest = std::max(largest, value << (unit == 'K' ? 10 : unit == 'M' ? 20 : 0));
  }
  return largest > 0 ? largest : int64_t{32} << 20;
}

// Outputs larger than the last-level cache are written around the caches (non-temporal stores, as glibc's memcpy
// does past a similar size): the lines would be evicted before anyone reads them, and streaming skips the read of
// each destination line that an ordinary store costs.
inline bool stream_output(int64_t bytes) {
  static const int64_t cache_bytes = last_level_cache_bytes();
  return bytes > cache_bytes;
}

// dst[0, n) ← values rounded to scalar_t; through a buffer and copy_streaming when `streaming`.
template <typename scalar_t, typename acc_t>
void store(const IsaKernels& kernels, scalar_t* dst, const acc_t* values, int64_t n, bool streaming) {
  if constexpr (std::is_same_v<acc_t, scalar_t>) {
    if (streaming) {
      kernels.copy_streaming(dst, values, n * static_cast<int64_t>(sizeof(scalar_t)));
    } else {
      std::copy(values, values + n, dst);
    }
  } else {
    alignas(64) scalar_t rounded[kChunk];
    for (int64_t i = 0; i < n; ++i) rounded[i] = static_cast<scalar_t>(values[i]);
    store(kernels, dst, rounded, n, streaming);
  }
}

// src[0, n) in the arithmetic type acc_t: src itself when it has that type, else converted into buffer.
template <typename acc_t, typename scalar_t>
const acc_t* as_acc(const scalar_t* src, int64_t n, acc_t* buffer) {
  if constexpr (std::is_same_v<acc_t, scalar_t>) {
    return src;
  } else {
    for (int64_t i = 0; i < n; ++i) buffer[i] = static_cast<acc_t>(src[i]);
    return buffer;
  }
}

// Where a step's ε comes from: a given tensor (one row per output row, contiguous), or the Philox stream.
template <typename scalar_t>
struct NoiseSource {
  const scalar_t* given = nullptr;  // [out rows, row_numel] when not null
  int64_t seed = 0;
  int64_t step = 0;
  int64_t stream = 0;
  bool step_is_level = false;           // noise_inject_levels: output row k·B + b draws with step = k
  const int64_t* steps = nullptr;       // per-sample step words (the step ops' `steps`); null: `step` for all
  const int64_t* sample_ids = nullptr;  // null: the sample's row index is its id

  // The Philox stream of input sample `sample` at level `level` (generated noise only).
  PhiloxRow key(int64_t sample, int64_t level) const {
    const int64_t id = sample_ids != nullptr ? sample_ids[sample] : sample;
    const int64_t word = step_is_level ? level : (steps != nullptr ? steps[sample] : step);
    return make_philox_row(seed, id, word, stream);
  }

  // ε of output row `row` (input sample `sample`, level `level`) at elements [start, start + len), len ≤ kBlock,
  // start a multiple of 4, in the arithmetic type: the given row itself when it has that type, else in z.
  template <typename acc_t>
  const acc_t* load(const IsaKernels& kernels, int64_t row, int64_t sample, int64_t level, int64_t row_numel,
                    int64_t start, int64_t len, acc_t* z) const {
    if (given != nullptr) return as_acc(given + row * row_numel + start, len, z);
    const PhiloxRow key = this->key(sample, level);
    const uint32_t group0 = static_cast<uint32_t>(start / 4);
    if constexpr (std::is_same_v<acc_t, double>) {
      alignas(64) float normals[kBlock];
      kernels.philox_normals(key, group0, (len + 3) / 4, normals);
      for (int64_t i = 0; i < len; ++i) z[i] = normals[i];
    } else {
      kernels.philox_normals(key, group0, (len + 3) / 4, z);
      if constexpr (!std::is_same_v<scalar_t, float>) {
        // The reference draws ε in x's dtype: round half/bfloat16 noise the same way.
        for (int64_t i = 0; i < len; ++i) z[i] = static_cast<float>(static_cast<scalar_t>(z[i]));
      }
    }
    return z;
  }
};

// Builds the noise source of an op: `noise` (checked against `noise_shape`, x's dtype and device) when given,
// else the Philox stream. noise_c / ids_c keep the contiguous copies alive.
template <typename scalar_t>
NoiseSource<scalar_t> make_noise_source(const char* op, const std::optional<at::Tensor>& noise,
                                        at::IntArrayRef noise_shape, const at::Tensor& x, at::Tensor& noise_c,
                                        int64_t seed, const std::optional<at::Tensor>& sample_ids,
                                        at::Tensor& ids_c, int64_t step, int64_t stream) {
  NoiseSource<scalar_t> src;
  if (noise.has_value()) {
    TORCH_CHECK(noise->sizes() == noise_shape, op, ": noise must have shape ", noise_shape, ", got ",
                noise->sizes());
    TORCH_CHECK(noise->scalar_type() == x.scalar_type(), op, ": noise must have the dtype of x (", x.scalar_type(),
                "), got ", noise->scalar_type());
    TORCH_CHECK(noise->device() == x.device(), op, ": noise must be on the device of x");
    noise_c = noise->contiguous();
    src.given = noise_c.data_ptr<scalar_t>();
    return src;
  }
  if (sample_ids.has_value()) {
    ids_c = vector_arg(op, *sample_ids, "sample_ids", x.size(0), /*integer=*/true, at::kLong);
    src.sample_ids = ids_c.data_ptr<int64_t>();
  }
  src.seed = seed;
  src.step = step;
  src.stream = stream;
  return src;
}

// Per output row: out = cx·x + ce·ε̂ + cz·z, or a copy of x (a sample that does not move).
struct RowCoefs {
  double cx = 1.0;
  double ce = 0.0;
  double cz = 0.0;
  bool copy = false;
};

// The one fused elementwise loop behind every op but score_norm: out = cx·x + ce·ε̂ + cz·z per output row. Output row
// r reads x row r mod B (levels repeat the batch), eps_hat row r (when given) and noise row r. Arithmetic in
// acc_type<scalar_t> by the ISA's kernels: float32 with generated noise in one call that makes the noise and uses
// it (philox_affine_f32); otherwise block by block (half/bfloat16 through float buffers; outputs larger than the
// last-level cache through a buffer and non-temporal stores).
template <typename scalar_t>
void affine_rows(scalar_t* out, const scalar_t* x, int64_t x_rows, const scalar_t* eps_hat,
                 const NoiseSource<scalar_t>& noise, const std::vector<RowCoefs>& coefs, int64_t row_numel) {
  using acc_t = acc_type<scalar_t>;
  const IsaKernels& kernels = isa_kernels();
  const int64_t rows = static_cast<int64_t>(coefs.size());
  const bool streaming = stream_output(rows * row_numel * static_cast<int64_t>(sizeof(scalar_t)));
  for_each_chunk(rows, row_numel, [&](int64_t row, int64_t start, int64_t len) {
    const RowCoefs& c = coefs[row];
    const int64_t sample = row % x_rows;
    if (c.copy) {
      std::copy(x + sample * row_numel + start, x + sample * row_numel + start + len, out + row * row_numel + start);
      return;
    }
    const acc_t cx = static_cast<acc_t>(c.cx), ce = static_cast<acc_t>(c.ce), cz = static_cast<acc_t>(c.cz);
    if constexpr (std::is_same_v<scalar_t, float>) {
      if (noise.given == nullptr && c.cz != 0.0 && !streaming) {  // the hot path: one call makes and uses the noise
        kernels.philox_affine_f32(noise.key(sample, row / x_rows), static_cast<uint32_t>(start / 4), len,
                                  out + row * row_numel + start, x + sample * row_numel + start,
                                  eps_hat != nullptr ? eps_hat + row * row_numel + start : nullptr, cx, ce, cz);
        return;
      }
    }
    alignas(64) acc_t x_buffer[kBlock], e_buffer[kBlock], z_buffer[kBlock], out_buffer[kBlock];
    for (int64_t offset = start; offset < start + len; offset += kBlock) {
      const int64_t n = std::min(kBlock, start + len - offset);
      const acc_t* xs = as_acc(x + sample * row_numel + offset, n, x_buffer);
      const acc_t* es = eps_hat != nullptr ? as_acc(eps_hat + row * row_numel + offset, n, e_buffer) : nullptr;
      const acc_t* zs =
          c.cz != 0.0 ? noise.load(kernels, row, sample, row / x_rows, row_numel, offset, n, z_buffer) : nullptr;
      scalar_t* dst = out + row * row_numel + offset;
      if constexpr (std::is_same_v<acc_t, scalar_t>) {
        if (!streaming) {
          affine(kernels, dst, xs, es, zs, cx, ce, cz, n);
          continue;
        }
      }
      affine(kernels, out_buffer, xs, es, zs, cx, ce, cz, n);
      store(kernels, dst, out_buffer, n, streaming);
    }
  });
}

}  // namespace ssni::cpu
