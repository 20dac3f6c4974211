// Quantized decode kernels with AVX-512 VNNI (vpdpbusd: 64 unsigned x signed byte products a
// instruction), used by the Amx level (every CPU with AMX has VNNI). This file alone gets
// -mavx512vnni. Four weight rows share each pair of activation blocks: the activations are
// loaded once, and the offset that makes the weights unsigned (8 for Q4_0's nibbles, 128 for
// Q8_0's bytes) is taken back with the activations' block sums, computed once for the four rows.
#include "yak/ops/cpu/kernels.h"

#if defined(__x86_64__) && defined(YAK_HAVE_VNNI)
#include <immintrin.h>

#include <cstring>

#include "yak/tensor/quant.h"

namespace yak::ops::cpu::vnni {
namespace {

using quant::BlockQ4_0;
using quant::BlockQ8_0;

inline __m512i load2x32(const int8_t* a, const int8_t* b) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a))),
                            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b)), 1);
}
// Two f16 scales as 16 lanes: the first in lanes 0-7, the second in 8-15.
inline __m512 scales2(uint16_t a, uint16_t b) {
  const __m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(a | (static_cast<uint32_t>(b) << 16))));
  const __m512i idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(f));
}

// Levels of weight blocks b, b + 1 of a row as 64 unsigned bytes in activation order.
struct Q4Levels {
  static __m512i get(const BlockQ4_0* w, int64_t b) {
    const __m256i q = _mm256_set_m128i(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[b + 1].qs)),
                                       _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[b].qs)));
    const __m256i m = _mm256_set1_epi8(0x0F);
    const __m256i lo = _mm256_and_si256(q, m), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m);
    // [lo_b lo_b1 | hi_b hi_b1] -> [lo_b hi_b | lo_b1 hi_b1]
    const __m512i a = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    return _mm512_shuffle_i64x2(a, a, _MM_SHUFFLE(3, 1, 2, 0));
  }
  static constexpr int kOffset = 8;
};
struct Q8Levels {
  static __m512i get(const BlockQ8_0* w, int64_t b) {
    return _mm512_xor_si512(load2x32(w[b].qs, w[b + 1].qs), _mm512_set1_epi8(static_cast<char>(0x80)));
  }
  static constexpr int kOffset = 128;
};

// The same bytes of the row this many rows further on are requested into L2 while a row is
// summed (measured on one thread streaming Q4_0: 1.6 ns a block, 2.4 with a non-temporal hint).
constexpr int64_t kAheadRows = 16;

template <typename WB, typename Levels>
void dot4(int64_t K, const void* wv, int64_t ldw, const void* xv, float* out, int rows,
          float (*one)(int64_t, const void*, const void*)) {
  const auto* x = static_cast<const BlockQ8_0*>(xv);
  const WB* w[4];
  for (int r = 0; r < 4; ++r)
    w[r] = reinterpret_cast<const WB*>(static_cast<const uint8_t*>(wv) + (r < rows ? r : 0) * ldw);
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
  const __m512i offset = _mm512_set1_epi8(Levels::kOffset);
  const int64_t nb = K / 32;
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    const __m512i xq = load2x32(x[b].qs, x[b + 1].qs);
    const __m512i corr = _mm512_dpbusd_epi32(_mm512_setzero_si512(), offset, xq);
    const __m512 dx = scales2(x[b].d, x[b + 1].d);
    for (int r = 0; r < rows; ++r) {
      __builtin_prefetch(reinterpret_cast<const char*>(w[r] + b) + kAheadRows * ldw, 0, 2);
      const __m512i s = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), Levels::get(w[r], b), xq), corr);
      const __m512 d = _mm512_mul_ps(scales2(w[r][b].d, w[r][b + 1].d), dx);
      acc[r] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(s), acc[r]);
    }
  }
  for (int r = 0; r < rows; ++r) out[r] = _mm512_reduce_add_ps(acc[r]);
  if (b < nb)  // an odd last block
    for (int r = 0; r < rows; ++r) out[r] += one(32, w[r] + b, x + b);
}

}  // namespace
}  // namespace yak::ops::cpu::vnni

namespace yak::ops::cpu {
void use_vnni_kernels(KernelTable& t) {
  static float (*q8)(int64_t, const void*, const void*) = nullptr;
  static float (*q4)(int64_t, const void*, const void*) = nullptr;
  q8 = t.vec_dot_q[static_cast<int>(QuantDot::Q8_0)];
  q4 = t.vec_dot_q[static_cast<int>(QuantDot::Q4_0)];
  t.vec_dot4_q[static_cast<int>(QuantDot::Q8_0)] = [](int64_t K, const void* w, int64_t ldw, const void* x, float* out,
                                                      int rows) {
    vnni::dot4<quant::BlockQ8_0, vnni::Q8Levels>(K, w, ldw, x, out, rows, q8);
  };
  t.vec_dot4_q[static_cast<int>(QuantDot::Q4_0)] = [](int64_t K, const void* w, int64_t ldw, const void* x, float* out,
                                                      int rows) {
    vnni::dot4<quant::BlockQ4_0, vnni::Q4Levels>(K, w, ldw, x, out, rows, q4);
  };
}
}  // namespace yak::ops::cpu
#else
namespace yak::ops::cpu {
void use_vnni_kernels(KernelTable&) {}
}  // namespace yak::ops::cpu
#endif
