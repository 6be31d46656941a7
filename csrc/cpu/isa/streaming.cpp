// copy_streaming (isa_kernels.h): a copy with non-temporal stores, the widest this build's ISA has (SSE2 in the
// baseline x86-64 build); a plain copy elsewhere.
#if defined(__x86_64__) || defined(__SSE2__)
#include <immintrin.h>
#endif

#include "isa.h"

namespace ssni::SSNI_CPU_CAPABILITY {

void copy_streaming(void* dst, const void* src, int64_t bytes) {
  char* d = static_cast<char*>(dst);
  const char* s = static_cast<const char*>(src);
#if defined(__AVX512F__)
  constexpr int64_t width = 64;
#elif defined(__AVX2__)
  constexpr int64_t width = 32;
#elif defined(__SSE2__)
  constexpr int64_t width = 16;
#else
  constexpr int64_t width = 0;
#endif
  if constexpr (width > 0) {
    // Up to the first aligned destination byte, the aligned body, then the rest: ordinary copies around the body.
    const int64_t head = static_cast<int64_t>((width - reinterpret_cast<uintptr_t>(d) % width) % width);
    const int64_t body = head < bytes ? (bytes - head) / width * width : 0;
    __builtin_memcpy(d, s, head < bytes ? head : bytes);
    for (int64_t i = head; i < head + body; i += width) {
#if defined(__AVX512F__)
      _mm512_stream_si512(reinterpret_cast<__m512i*>(d + i), _mm512_loadu_si512(s + i));
#elif defined(__AVX2__)
      _mm256_stream_si256(reinterpret_cast<__m256i*>(d + i), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i)));
#else
      _mm_stream_si128(reinterpret_cast<__m128i*>(d + i), _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i)));
#endif
    }
    if (head < bytes) __builtin_memcpy(d + head + body, s + head + body, bytes - head - body);
#if defined(__SSE2__)
    _mm_sfence();  // non-temporal stores are weakly ordered: visible to other threads before this returns
#endif
  } else {
    __builtin_memcpy(d, s, bytes);
  }
}

}  // namespace ssni::SSNI_CPU_CAPABILITY
