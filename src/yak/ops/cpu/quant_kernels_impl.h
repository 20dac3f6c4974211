// Dot products of quantized weight rows with quantized activation rows (ggml's block formats,
// tensor/quant.h), included by kernels_impl.h into each instruction set's translation unit.
//
// Every kernel has one shape: integer sums of weight levels times activation levels per block
// (or sub-block), scaled by the product of the two f16/f32 scales, minus the weights' minimums
// times the activations' block sums where the format has minimums. Legacy formats (blocks of 32)
// pair with Q8_0 (or Q8_1, whose s = d Σq carries the sum for Q4_1/Q5_1); K formats (super-blocks
// of 256) pair with Q8_K. The K formats unpack a super-block's levels to signed bytes and
// their sub-block scales to int16 once, then share one signed-byte dot (`dot_levels`).
//
// Only raw loops and intrinsics, as in kernels_impl.h.
#include <type_traits>

#include "yak/tensor/quant.h"

namespace yak::ops::cpu::YAK_KNS {
namespace {

using quant::BlockQ2_K;
using quant::BlockQ3_K;
using quant::BlockQ4_0;
using quant::BlockQ4_1;
using quant::BlockQ4_K;
using quant::BlockQ5_0;
using quant::BlockQ5_1;
using quant::BlockQ5_K;
using quant::BlockQ6_K;
using quant::BlockQ8_0;
using quant::BlockQ8_1;
using quant::BlockQ8_K;

inline float h2f(uint16_t h) {
  return f16f(h);
}
// Weight rows are short (hundreds of bytes) and follow each other: the dot kernels ask for the
// bytes 4 KiB ahead (the row-group kernels: the same bytes 16 rows on) into L2 (measured on one
// thread streaming Q4_0: 1.6 ns a block against 2.4 with a non-temporal hint and 3.4 with the
// hardware prefetcher alone).
inline void prefetch_ahead(const void* p, int64_t distance = 4096) {
  __builtin_prefetch(static_cast<const char*>(p) + distance, 0, 2);
}
constexpr int64_t kAheadRows = 16;

#if defined(YAK_SIMD_AVX512) || defined(YAK_SIMD_AVX2)
#define YAK_QUANT_SIMD 1
// Σ over 32 byte pairs of w * x, both signed (|w| ≤ 127), as eight int32 lanes after each
// adjacent pair of int16 products is weighted by `scales` (int16 per 16-byte half: lanes 0-7
// cover bytes 0-15, lanes 8-15 bytes 16-31).
inline __m256i dot32_scaled(__m256i w, __m256i x, __m256i scales) {
  const __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
  return _mm256_madd_epi16(p16, scales);
}
inline __m256i dot32(__m256i w, __m256i x) {
  return dot32_scaled(w, x, _mm256_set1_epi16(1));
}
inline float hsum_ps(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline int hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}
// The 32 nibbles of 16 bytes as bytes: low nibbles (elements 0-15) then high ones (16-31).
inline __m256i nibbles32(const uint8_t* qs) {
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i m = _mm_set1_epi8(0x0F);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m), _mm_and_si128(q, m));
}
// 0x10 in byte i where bit i of the 32 bits is set.
inline __m256i bits32_to_0x10(uint32_t bits) {
  const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
  __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bits)), shuf);
  const __m256i sel = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ULL));
  v = _mm256_cmpeq_epi8(_mm256_and_si256(v, sel), sel);
  return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}
inline __m256i load32(const void* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}
#endif

// Σ_i L[i] x[i] over 256 signed levels, each 16 weighted by scales[j]; int32 (no overflow: the
// formats bound |L| · |scale| · 127 · 256 well below 2^31).
inline int dot_levels(const int8_t* L, const int8_t* x, const int16_t* scales) {
#ifdef YAK_QUANT_SIMD
  __m256i acc = _mm256_setzero_si256();
  for (int c = 0; c < 8; ++c) {
    const __m256i sc = _mm256_set_m128i(_mm_set1_epi16(scales[2 * c + 1]), _mm_set1_epi16(scales[2 * c]));
    acc = _mm256_add_epi32(acc, dot32_scaled(load32(L + 32 * c), load32(x + 32 * c), sc));
  }
  return hsum_epi32(acc);
#else
  int total = 0;
  for (int j = 0; j < 16; ++j) {
    int s = 0;
    for (int i = 0; i < 16; ++i) s += L[16 * j + i] * x[16 * j + i];
    total += s * scales[j];
  }
  return total;
#endif
}

// --- legacy formats against Q8_0 / Q8_1 --------------------------------------------------------
// Each format says how a weight block's 32 levels read, in activation order: as a vector
// (`simd`) and into bytes (`scalar`); formats with a minimum (Q4_1, Q5_1) pair with Q8_1 and add
// m_w s_x per block (Σ (d_w q + m_w) d_x p = d_w d_x Σ q p + m_w s_x, s_x = d_x Σ p). One loop
// serves every format, one row or four at a time.

struct Q8_0Levels {
  using W = BlockQ8_0;
  using X = BlockQ8_0;
  static constexpr bool kMin = false;
  static void scalar(const W& b, int8_t* L) { std::memcpy(L, b.qs, 32); }
#ifdef YAK_QUANT_SIMD
  static __m256i simd(const W& b) {
    return load32(b.qs);
  }
#endif
};
struct Q4_0Levels {
  using W = BlockQ4_0;
  using X = BlockQ8_0;
  static constexpr bool kMin = false;
  static void scalar(const W& b, int8_t* L) {
    for (int j = 0; j < 16; ++j) {
      L[j] = static_cast<int8_t>((b.qs[j] & 0x0F) - 8);
      L[j + 16] = static_cast<int8_t>((b.qs[j] >> 4) - 8);
    }
  }
#ifdef YAK_QUANT_SIMD
  static __m256i simd(const W& b) {
    return _mm256_sub_epi8(nibbles32(b.qs), _mm256_set1_epi8(8));
  }
#endif
};
struct Q4_1Levels {
  using W = BlockQ4_1;
  using X = BlockQ8_1;
  static constexpr bool kMin = true;
  static void scalar(const W& b, int8_t* L) {
    for (int j = 0; j < 16; ++j) {
      L[j] = static_cast<int8_t>(b.qs[j] & 0x0F);
      L[j + 16] = static_cast<int8_t>(b.qs[j] >> 4);
    }
  }
#ifdef YAK_QUANT_SIMD
  static __m256i simd(const W& b) {
    return nibbles32(b.qs);
  }
#endif
};
// Q5_0 / Q5_1: the nibbles plus the fifth bits (bit j of qh for element j), offset 16 or none.
template <typename B, int kOffset>
struct Q5Levels {
  using W = B;
  using X = std::conditional_t<kOffset == 0, BlockQ8_1, BlockQ8_0>;
  static constexpr bool kMin = kOffset == 0;
  static void scalar(const W& b, int8_t* L) {
    uint32_t qh;
    std::memcpy(&qh, b.qh, 4);
    for (int j = 0; j < 16; ++j) {
      L[j] = static_cast<int8_t>(((b.qs[j] & 0x0F) | static_cast<int>(((qh >> j) & 1u) << 4)) - kOffset);
      L[j + 16] = static_cast<int8_t>(((b.qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4)) - kOffset);
    }
  }
#ifdef YAK_QUANT_SIMD
  static __m256i simd(const W& b) {
    uint32_t qh;
    std::memcpy(&qh, b.qh, 4);
    return _mm256_sub_epi8(_mm256_or_si256(nibbles32(b.qs), bits32_to_0x10(qh)), _mm256_set1_epi8(kOffset));
  }
#endif
};
using Q5_0Levels = Q5Levels<BlockQ5_0, 16>;
using Q5_1Levels = Q5Levels<BlockQ5_1, 0>;

// Up to four consecutive weight rows against one activation row: each activation block is loaded
// once for them, and the sums are independent chains (the decode path's kernel). A row's result
// does not depend on how many rows share the call, so any split of the rows gives the same bits.
template <typename F>
void vec_dot_legacy_rows(int64_t K, const void* wv, int64_t ldw, const void* xv, float* out, int rows) {
  using W = typename F::W;
  const auto* x = static_cast<const typename F::X*>(xv);
  const W* w[4];
  for (int r = 0; r < 4; ++r)
    w[r] = reinterpret_cast<const W*>(static_cast<const uint8_t*>(wv) + (r < rows ? r : 0) * ldw);
  float mins[4] = {0, 0, 0, 0};
#ifdef YAK_QUANT_SIMD
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  for (int64_t b = 0; b < K / 32; ++b) {
    const __m256i xq = load32(x[b].qs);
    const float dx = h2f(x[b].d);
    for (int r = 0; r < rows; ++r) {
      prefetch_ahead(w[r] + b, kAheadRows * ldw);
      acc[r] =
          _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[r][b].d) * dx), _mm256_cvtepi32_ps(dot32(F::simd(w[r][b]), xq)), acc[r]);
      if constexpr (F::kMin) mins[r] += h2f(w[r][b].m) * h2f(x[b].s);
    }
  }
  // the four horizontal sums at once
  const __m256 s01 = _mm256_hadd_ps(acc[0], acc[1]), s23 = _mm256_hadd_ps(acc[2], acc[3]);
  const __m256 s = _mm256_hadd_ps(s01, s23);
  float all[4];
  _mm_storeu_ps(all, _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1)));
  for (int r = 0; r < rows; ++r) out[r] = all[r] + mins[r];
#else
  for (int r = 0; r < rows; ++r) {
    float sum = 0;
    for (int64_t b = 0; b < K / 32; ++b) {
      int8_t L[32];
      F::scalar(w[r][b], L);
      int si = 0;
      for (int j = 0; j < 32; ++j) si += L[j] * x[b].qs[j];
      sum += h2f(w[r][b].d) * h2f(x[b].d) * static_cast<float>(si);
      if constexpr (F::kMin) mins[r] += h2f(w[r][b].m) * h2f(x[b].s);
    }
    out[r] = sum + mins[r];
  }
#endif
}
template <typename F>
float vec_dot_legacy(int64_t K, const void* w, const void* x) {
  float out;
  vec_dot_legacy_rows<F>(K, w, 0, x, &out, 1);
  return out;
}

float vec_dot_q8_0_k(int64_t K, const void* w, const void* x) {
  return vec_dot_legacy<Q8_0Levels>(K, w, x);
}
float vec_dot_q4_0_k(int64_t K, const void* w, const void* x) {
  return vec_dot_legacy<Q4_0Levels>(K, w, x);
}
float vec_dot_q4_1_k(int64_t K, const void* w, const void* x) {
  return vec_dot_legacy<Q4_1Levels>(K, w, x);
}
float vec_dot_q5_0_k(int64_t K, const void* w, const void* x) {
  return vec_dot_legacy<Q5_0Levels>(K, w, x);
}
float vec_dot_q5_1_k(int64_t K, const void* w, const void* x) {
  return vec_dot_legacy<Q5_1Levels>(K, w, x);
}

// Formats without a row-group kernel: one row at a time.
template <float (*Dot)(int64_t, const void*, const void*)>
void vec_dot4_generic(int64_t K, const void* w, int64_t ldw, const void* x, float* out, int rows) {
  for (int r = 0; r < rows; ++r) out[r] = Dot(K, static_cast<const uint8_t*>(w) + r * ldw, x);
}

// --- K formats against Q8_K ---------------------------------------------------------------------
// Each unpack writes the super-block's 256 levels in element order and 16 int16 scales (one per
// 16 elements); those with minimums return Σ_j min_j · (sum of the activations of sub-block j)
// through `min_dot` (ints), to be scaled by dmin.

void unpack_q2_k(const BlockQ2_K& b, const BlockQ8_K& x, int8_t* L, int16_t* sc, int* min_dot) {
  const uint8_t* q = b.qs;
  int8_t* o = L;
  for (int half = 0; half < 2; ++half, q += 32)
    for (int shift = 0; shift < 8; shift += 2)
      for (int l = 0; l < 32; ++l) *o++ = static_cast<int8_t>((q[l] >> shift) & 3);
  int md = 0;
  for (int j = 0; j < 16; ++j) {
    sc[j] = static_cast<int16_t>(b.scales[j] & 0xF);
    md += (b.scales[j] >> 4) * x.bsums[j];
  }
  *min_dot = md;
}

void unpack_q3_k(const BlockQ3_K& b, const BlockQ8_K&, int8_t* L, int16_t* sc, int*) {
  const uint8_t* q = b.qs;
  int8_t* o = L;
  uint8_t m = 1;
  for (int half = 0; half < 2; ++half, q += 32)
    for (int shift = 0; shift < 8; shift += 2, m = static_cast<uint8_t>(m << 1))
      for (int l = 0; l < 32; ++l) *o++ = static_cast<int8_t>(((q[l] >> shift) & 3) - ((b.hmask[l] & m) ? 0 : 4));
  int8_t s[16];
  quant::q3k_scales(b.scales, s);
  for (int j = 0; j < 16; ++j) sc[j] = s[j];
}

// Q4_K / Q5_K scales and the minimum term (their sub-blocks are 32: two 16-scale slots each).
inline int k4_scales(const uint8_t* packed, const BlockQ8_K& x, int16_t* sc) {
  int md = 0;
  for (int j = 0; j < 8; ++j) {
    uint8_t s, m;
    quant::k4_scale_min(j, packed, &s, &m);
    sc[2 * j] = sc[2 * j + 1] = s;
    md += m * (x.bsums[2 * j] + x.bsums[2 * j + 1]);
  }
  return md;
}

void unpack_q4_k(const BlockQ4_K& b, const BlockQ8_K& x, int8_t* L, int16_t* sc, int* min_dot) {
  const uint8_t* q = b.qs;
  for (int c = 0; c < 4; ++c, q += 32) {
#ifdef YAK_QUANT_SIMD
    const __m256i v = load32(q), m = _mm256_set1_epi8(0x0F);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(L + 64 * c), _mm256_and_si256(v, m));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(L + 64 * c + 32), _mm256_and_si256(_mm256_srli_epi16(v, 4), m));
#else
    for (int l = 0; l < 32; ++l) {
      L[64 * c + l] = static_cast<int8_t>(q[l] & 0xF);
      L[64 * c + 32 + l] = static_cast<int8_t>(q[l] >> 4);
    }
#endif
  }
  *min_dot = k4_scales(b.scales, x, sc);
}

void unpack_q5_k(const BlockQ5_K& b, const BlockQ8_K& x, int8_t* L, int16_t* sc, int* min_dot) {
  const uint8_t* q = b.qs;
  for (int c = 0; c < 4; ++c, q += 32) {
#ifdef YAK_QUANT_SIMD
    const __m256i v = load32(q), m = _mm256_set1_epi8(0x0F), h = load32(b.qh);
    const __m256i b1 = _mm256_set1_epi8(static_cast<char>(1 << (2 * c))),
                  b2 = _mm256_set1_epi8(static_cast<char>(2 << (2 * c)));
    const __m256i h1 = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(h, b1), b1), _mm256_set1_epi8(16));
    const __m256i h2 = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(h, b2), b2), _mm256_set1_epi8(16));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(L + 64 * c), _mm256_or_si256(_mm256_and_si256(v, m), h1));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(L + 64 * c + 32),
                        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v, 4), m), h2));
#else
    const uint8_t u1 = static_cast<uint8_t>(1 << (2 * c)), u2 = static_cast<uint8_t>(2 << (2 * c));
    for (int l = 0; l < 32; ++l) {
      L[64 * c + l] = static_cast<int8_t>((q[l] & 0xF) + ((b.qh[l] & u1) ? 16 : 0));
      L[64 * c + 32 + l] = static_cast<int8_t>((q[l] >> 4) + ((b.qh[l] & u2) ? 16 : 0));
    }
#endif
  }
  *min_dot = k4_scales(b.scales, x, sc);
}

void unpack_q6_k(const BlockQ6_K& b, const BlockQ8_K&, int8_t* L, int16_t* sc, int*) {
  const uint8_t* ql = b.ql;
  const uint8_t* qh = b.qh;
  for (int half = 0; half < 2; ++half, ql += 64, qh += 32) {
    int8_t* o = L + 128 * half;
#ifdef YAK_QUANT_SIMD
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3), k32 = _mm256_set1_epi8(32);
    const __m256i lo = load32(ql), hi = load32(ql + 32), h = load32(qh);
    auto put = [&](int at, __m256i low4, int shift) {
      const __m256i top = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, shift), m2), 4);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + at), _mm256_sub_epi8(_mm256_or_si256(low4, top), k32));
    };
    put(0, _mm256_and_si256(lo, m4), 0);
    put(32, _mm256_and_si256(hi, m4), 2);
    put(64, _mm256_and_si256(_mm256_srli_epi16(lo, 4), m4), 4);
    put(96, _mm256_and_si256(_mm256_srli_epi16(hi, 4), m4), 6);
#else
    for (int l = 0; l < 32; ++l) {
      o[l] = static_cast<int8_t>(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
      o[l + 32] = static_cast<int8_t>(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
      o[l + 64] = static_cast<int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
      o[l + 96] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
    }
#endif
  }
  for (int j = 0; j < 16; ++j) sc[j] = b.scales[j];
}

// --- dequantization (prefill tiles) --------------------------------------------------------------
// The reference dequantizers' arithmetic (one multiply, or a multiply then a subtraction), eight
// values at a time where the instruction set has vectors; the scalar table uses the references.

#ifdef YAK_QUANT_SIMD
inline void store_levels_scaled(const __m256i q8, float d, float* y) {  // 32 signed byte levels * d
  const __m256 dv = _mm256_set1_ps(d);
  const __m128i lo = _mm256_castsi256_si128(q8), hi = _mm256_extracti128_si256(q8, 1);
  _mm256_storeu_ps(y, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), dv));
  _mm256_storeu_ps(y + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))), dv));
  _mm256_storeu_ps(y + 16, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), dv));
  _mm256_storeu_ps(y + 24, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))), dv));
}

template <typename F>
void dequant_legacy(const void* in, float* y, int64_t n) {
  const auto* x = static_cast<const typename F::W*>(in);
  for (int64_t b = 0; b < n / 32; ++b, y += 32) store_levels_scaled(F::simd(x[b]), h2f(x[b].d), y);
}
#endif

void dequant_q8_0_k(const void* in, float* y, int64_t n) {
#ifdef YAK_QUANT_SIMD
  dequant_legacy<Q8_0Levels>(in, y, n);
#else
  quant::dequantize_q8_0(in, y, n);
#endif
}
void dequant_q4_0_k(const void* in, float* y, int64_t n) {
#ifdef YAK_QUANT_SIMD
  dequant_legacy<Q4_0Levels>(in, y, n);
#else
  quant::dequantize_q4_0(in, y, n);
#endif
}
void dequant_q5_0_k(const void* in, float* y, int64_t n) {
#ifdef YAK_QUANT_SIMD
  dequant_legacy<Q5_0Levels>(in, y, n);
#else
  quant::dequantize_q5_0(in, y, n);
#endif
}
#ifdef YAK_QUANT_SIMD
const BlockQ8_K kNoActivations{};  // the unpacks' activation argument, unused when dequantizing

// Q4_K / Q5_K: (d * scale) * level - dmin * min per sub-block of 32, as the reference.
template <typename B, void (*Unpack)(const B&, const BlockQ8_K&, int8_t*, int16_t*, int*)>
void dequant_k4(const void* in, float* y, int64_t n) {
  const auto* x = static_cast<const B*>(in);
  alignas(32) int8_t L[256];
  int16_t sc[16];
  int md;
  for (int64_t b = 0; b < n / 256; ++b, y += 256) {
    Unpack(x[b], kNoActivations, L, sc, &md);
    const float d = h2f(x[b].d), dmin = h2f(x[b].dmin);
    for (int j = 0; j < 8; ++j) {
      uint8_t s, m;
      quant::k4_scale_min(j, x[b].scales, &s, &m);
      const __m256 dv = _mm256_set1_ps(d * s), mv = _mm256_set1_ps(dmin * m);
      for (int k = 0; k < 32; k += 8) {
        const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(L + 32 * j + k));
        _mm256_storeu_ps(y + 32 * j + k,
                         _mm256_sub_ps(_mm256_mul_ps(dv, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q))), mv));
      }
    }
  }
}
#endif
void dequant_q4_k_k(const void* in, float* y, int64_t n) {
#ifdef YAK_QUANT_SIMD
  dequant_k4<BlockQ4_K, unpack_q4_k>(in, y, n);
#else
  quant::dequantize_q4_k(in, y, n);
#endif
}
void dequant_q5_k_k(const void* in, float* y, int64_t n) {
#ifdef YAK_QUANT_SIMD
  dequant_k4<BlockQ5_K, unpack_q5_k>(in, y, n);
#else
  quant::dequantize_q5_k(in, y, n);
#endif
}

void dequant_q6_k_k(const void* in, float* y, int64_t n) {
#ifdef YAK_QUANT_SIMD
  // levels through the dot kernels' unpack, then (d * scale) * level as the reference orders it
  const auto* x = static_cast<const BlockQ6_K*>(in);
  alignas(32) int8_t L[256];
  int16_t sc[16];
  for (int64_t b = 0; b < n / 256; ++b, y += 256) {
    unpack_q6_k(x[b], kNoActivations, L, sc, nullptr);
    const float d = h2f(x[b].d);
    for (int j = 0; j < 16; ++j) {
      const __m256 dv = _mm256_set1_ps(d * static_cast<float>(x[b].scales[j]));
      const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(L + 16 * j));
      _mm256_storeu_ps(y + 16 * j, _mm256_mul_ps(dv, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q))));
      _mm256_storeu_ps(y + 16 * j + 8,
                       _mm256_mul_ps(dv, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q, 8)))));
    }
  }
#else
  quant::dequantize_q6_k(in, y, n);
#endif
}

// Σ over super-blocks of x.d (d Σ_j sc_j Σ L x - dmin Σ_j m_j bsum_j); formats without minimums
// have no dmin and their unpack leaves min_dot at 0.
template <typename B>
inline float dmin_of(const B& b) {
  if constexpr (requires { b.dmin; })
    return h2f(b.dmin);
  else
    return 0.f;
}
template <typename B, void (*Unpack)(const B&, const BlockQ8_K&, int8_t*, int16_t*, int*)>
float vec_dot_k(int64_t K, const void* wv, const void* xv) {
  const auto* w = static_cast<const B*>(wv);
  const auto* x = static_cast<const BlockQ8_K*>(xv);
  alignas(32) int8_t L[256];
  int16_t sc[16];
  float s = 0;
  for (int64_t b = 0; b < K / 256; ++b) {
    int md = 0;
    for (size_t off = 0; off < sizeof(B); off += 64) prefetch_ahead(reinterpret_cast<const char*>(w + b) + off);
    Unpack(w[b], x[b], L, sc, &md);
    const int dot = dot_levels(L, x[b].qs, sc);
    s += x[b].d * (h2f(w[b].d) * static_cast<float>(dot) - dmin_of(w[b]) * static_cast<float>(md));
  }
  return s;
}

float vec_dot_q2_k_k(int64_t K, const void* w, const void* x) {
  return vec_dot_k<BlockQ2_K, unpack_q2_k>(K, w, x);
}
float vec_dot_q3_k_k(int64_t K, const void* w, const void* x) {
  return vec_dot_k<BlockQ3_K, unpack_q3_k>(K, w, x);
}
float vec_dot_q5_k_k(int64_t K, const void* w, const void* x) {
  return vec_dot_k<BlockQ5_K, unpack_q5_k>(K, w, x);
}

#ifdef YAK_QUANT_SIMD
// Q4_K and Q6_K (the bulk of a Q4_K_M file) straight from their packed bits: the levels, unsigned,
// go into maddubs against the activations, with no unpacked copy and no sign trick; Q6_K's offset
// of 32 comes back through the activations' 16-element sums. The integer sum equals dot_levels'
// exactly, and the float arithmetic after it is vec_dot_k's, so the result is the same bits.
inline __m256i udot32_scaled(__m256i levels, __m256i x, __m256i scales) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(levels, x), scales);
}
inline __m256i two_scales(int16_t first16, int16_t second16) {
  return _mm256_set_m128i(_mm_set1_epi16(second16), _mm_set1_epi16(first16));
}

float vec_dot_q4_k_k(int64_t K, const void* wv, const void* xv) {
  const auto* w = static_cast<const BlockQ4_K*>(wv);
  const auto* x = static_cast<const BlockQ8_K*>(xv);
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  float s = 0;
  for (int64_t b = 0; b < K / 256; ++b) {
    for (size_t off = 0; off < sizeof(BlockQ4_K); off += 64) prefetch_ahead(reinterpret_cast<const char*>(w + b) + off);
    int16_t sc[16];
    const int md = k4_scales(w[b].scales, x[b], sc);
    __m256i acc = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {  // 64 elements: sub-block 2c from the low nibbles, 2c + 1 from the high
      const __m256i v = load32(w[b].qs + 32 * c);
      acc = _mm256_add_epi32(acc, udot32_scaled(_mm256_and_si256(v, m4), load32(x[b].qs + 64 * c),
                                                _mm256_set1_epi16(sc[4 * c])));
      acc = _mm256_add_epi32(acc, udot32_scaled(_mm256_and_si256(_mm256_srli_epi16(v, 4), m4),
                                                load32(x[b].qs + 64 * c + 32), _mm256_set1_epi16(sc[4 * c + 2])));
    }
    const int dot = hsum_epi32(acc);
    s += x[b].d * (h2f(w[b].d) * static_cast<float>(dot) - h2f(w[b].dmin) * static_cast<float>(md));
  }
  return s;
}

float vec_dot_q6_k_k(int64_t K, const void* wv, const void* xv) {
  const auto* w = static_cast<const BlockQ6_K*>(wv);
  const auto* x = static_cast<const BlockQ8_K*>(xv);
  const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3);
  float s = 0;
  for (int64_t b = 0; b < K / 256; ++b) {
    for (size_t off = 0; off < sizeof(BlockQ6_K); off += 64) prefetch_ahead(reinterpret_cast<const char*>(w + b) + off);
    const int8_t* sc = w[b].scales;
    int offset = 0;  // Σ_j sc_j bsum_j: the levels' 32 taken back below
    for (int j = 0; j < 16; ++j) offset += sc[j] * x[b].bsums[j];
    __m256i acc = _mm256_setzero_si256();
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = w[b].ql + 64 * half;
      const __m256i lo = load32(ql), hi = load32(ql + 32), h = load32(w[b].qh + 32 * half);
      const int8_t* xq = x[b].qs + 128 * half;
      const int8_t* s8 = sc + 8 * half;
      auto top = [&](int shift) { return _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, shift), m2), 4); };
      const __m256i q[4] = {_mm256_or_si256(_mm256_and_si256(lo, m4), top(0)),
                            _mm256_or_si256(_mm256_and_si256(hi, m4), top(2)),
                            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lo, 4), m4), top(4)),
                            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(hi, 4), m4), top(6))};
      for (int i = 0; i < 4; ++i)
        acc = _mm256_add_epi32(acc, udot32_scaled(q[i], load32(xq + 32 * i), two_scales(s8[2 * i], s8[2 * i + 1])));
    }
    const int dot = hsum_epi32(acc) - 32 * offset;
    s += x[b].d * (h2f(w[b].d) * static_cast<float>(dot));  // vec_dot_k minus its zero dmin term
  }
  return s;
}
#else
float vec_dot_q4_k_k(int64_t K, const void* w, const void* x) {
  return vec_dot_k<BlockQ4_K, unpack_q4_k>(K, w, x);
}
float vec_dot_q6_k_k(int64_t K, const void* w, const void* x) {
  return vec_dot_k<BlockQ6_K, unpack_q6_k>(K, w, x);
}
#endif

}  // namespace
}  // namespace yak::ops::cpu::YAK_KNS
