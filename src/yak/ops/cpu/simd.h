// The vector type the CPU kernels are written over, chosen by the translation unit that includes
// this header: kernels_avx512.cpp defines YAK_SIMD_AVX512, kernels_avx2.cpp YAK_SIMD_AVX2, and
// kernels_scalar.cpp neither (one lane of plain C++: the portable fallback and the reference).
// Only the kernel files include it, each compiled for its own instruction set, and each puts the
// code in its own namespace (YAK_KNS), so no instruction leaks into code run on other CPUs.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(YAK_SIMD_AVX512) || defined(YAK_SIMD_AVX2)
#include <immintrin.h>
#else
#include "yak/tensor/half.h"
#endif

namespace yak::ops::cpu::YAK_KNS {

#if defined(YAK_SIMD_AVX512)

struct VecF {
  static constexpr int N = 16;
  __m512 v;
  static VecF zero() { return {_mm512_setzero_ps()}; }
  static VecF set1(float x) { return {_mm512_set1_ps(x)}; }
  static VecF load(const float* p) { return {_mm512_loadu_ps(p)}; }
  static VecF load_bf16(const uint16_t* p) {
    __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return {_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16))};
  }
  static VecF load_f16(const uint16_t* p) {
    return {_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)))};
  }
  // First n (< N) lanes from p, the rest zero.
  static VecF load_partial(const float* p, int n) { return {_mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), p)}; }
  // 2N bf16 values as two vectors by interleaving zero words (no shift): lo holds the elements
  // pair_src(k, false), hi those of pair_src(k, true), k < N (inputs are permuted to match).
  static void load_bf16_pair(const uint16_t* p, VecF& lo, VecF& hi) {
    const __m512i u = _mm512_loadu_si512(p), z = _mm512_setzero_si512();
    lo.v = _mm512_castsi512_ps(_mm512_unpacklo_epi16(z, u));
    hi.v = _mm512_castsi512_ps(_mm512_unpackhi_epi16(z, u));
  }
  static constexpr int pair_src(int k, bool hi) { return (k / 4) * 8 + (hi ? 4 : 0) + k % 4; }
  void store(float* p) const { _mm512_storeu_ps(p, v); }
  void store_partial(float* p, int n) const { _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1), v); }
  void store_bf16(uint16_t* p) const;
  void store_f16(uint16_t* p) const {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
  }
  float sum() const { return _mm512_reduce_add_ps(v); }
  float max() const { return _mm512_reduce_max_ps(v); }
};
inline VecF operator+(VecF a, VecF b) {
  return {_mm512_add_ps(a.v, b.v)};
}
inline VecF operator-(VecF a, VecF b) {
  return {_mm512_sub_ps(a.v, b.v)};
}
inline VecF operator*(VecF a, VecF b) {
  return {_mm512_mul_ps(a.v, b.v)};
}
inline VecF fma(VecF a, VecF b, VecF c) {
  return {_mm512_fmadd_ps(a.v, b.v, c.v)};
}
inline VecF vmax(VecF a, VecF b) {
  return {_mm512_max_ps(a.v, b.v)};
}
inline VecF vdiv(VecF a, VecF b) {
  return {_mm512_div_ps(a.v, b.v)};
}
inline VecF vsqrt(VecF a) {
  return {_mm512_sqrt_ps(a.v)};
}
// bf16 round to nearest even, NaN kept quiet (as f32_to_bf16).
inline void VecF::store_bf16(uint16_t* p) const {
  __m512i u = _mm512_castps_si512(v);
  __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb));
  __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(u, _mm512_set1_epi32(0x400000)));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16)));
}
// 2^n for integer-valued n in [-126, 127]
inline VecF exp2i(VecF n) {
  __m512i i = _mm512_add_epi32(_mm512_cvtps_epi32(n.v), _mm512_set1_epi32(127));
  return {_mm512_castsi512_ps(_mm512_slli_epi32(i, 23))};
}
inline VecF vround(VecF a) {
  return {_mm512_roundscale_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)};
}

#elif defined(YAK_SIMD_AVX2)

struct VecF {
  static constexpr int N = 8;
  __m256 v;
  static VecF zero() { return {_mm256_setzero_ps()}; }
  static VecF set1(float x) { return {_mm256_set1_ps(x)}; }
  static VecF load(const float* p) { return {_mm256_loadu_ps(p)}; }
  static VecF load_bf16(const uint16_t* p) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return {_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))};
  }
  static VecF load_f16(const uint16_t* p) {
    return {_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)))};
  }
  static VecF load_partial(const float* p, int n) {
    alignas(32) float t[8] = {};
    for (int i = 0; i < n; ++i) t[i] = p[i];
    return {_mm256_load_ps(t)};
  }
  static void load_bf16_pair(const uint16_t* p, VecF& lo, VecF& hi) {
    const __m256i u = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)), z = _mm256_setzero_si256();
    lo.v = _mm256_castsi256_ps(_mm256_unpacklo_epi16(z, u));
    hi.v = _mm256_castsi256_ps(_mm256_unpackhi_epi16(z, u));
  }
  static constexpr int pair_src(int k, bool hi) { return (k / 4) * 8 + (hi ? 4 : 0) + k % 4; }
  void store(float* p) const { _mm256_storeu_ps(p, v); }
  void store_partial(float* p, int n) const {
    alignas(32) float t[8];
    _mm256_store_ps(t, v);
    for (int i = 0; i < n; ++i) p[i] = t[i];
  }
  void store_bf16(uint16_t* p) const;
  void store_f16(uint16_t* p) const {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
  }
  float sum() const {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    __m128 sh = _mm_movehdup_ps(lo);
    lo = _mm_add_ps(lo, sh);
    sh = _mm_movehl_ps(sh, lo);
    lo = _mm_add_ss(lo, sh);
    return _mm_cvtss_f32(lo);
  }
  float max() const {
    __m128 lo = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    lo = _mm_max_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_max_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
  }
};
inline VecF operator+(VecF a, VecF b) {
  return {_mm256_add_ps(a.v, b.v)};
}
inline VecF operator-(VecF a, VecF b) {
  return {_mm256_sub_ps(a.v, b.v)};
}
inline VecF operator*(VecF a, VecF b) {
  return {_mm256_mul_ps(a.v, b.v)};
}
inline VecF fma(VecF a, VecF b, VecF c) {
  return {_mm256_fmadd_ps(a.v, b.v, c.v)};
}
inline VecF vmax(VecF a, VecF b) {
  return {_mm256_max_ps(a.v, b.v)};
}
inline VecF vdiv(VecF a, VecF b) {
  return {_mm256_div_ps(a.v, b.v)};
}
inline VecF vsqrt(VecF a) {
  return {_mm256_sqrt_ps(a.v)};
}
inline void VecF::store_bf16(uint16_t* p) const {
  __m256i u = _mm256_castps_si256(v);
  __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb));
  __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  r = _mm256_blendv_epi8(r, _mm256_or_si256(u, _mm256_set1_epi32(0x400000)), nan);
  r = _mm256_srli_epi32(r, 16);
  __m128i packed = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), packed);
}
inline VecF exp2i(VecF n) {
  __m256i i = _mm256_add_epi32(_mm256_cvtps_epi32(n.v), _mm256_set1_epi32(127));
  return {_mm256_castsi256_ps(_mm256_slli_epi32(i, 23))};
}
inline VecF vround(VecF a) {
  return {_mm256_round_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)};
}

#else  // one lane of plain C++

struct VecF {
  static constexpr int N = 1;
  float v;
  static VecF zero() { return {0.0f}; }
  static VecF set1(float x) { return {x}; }
  static VecF load(const float* p) { return {*p}; }
  static VecF load_bf16(const uint16_t* p) {
    uint32_t u = static_cast<uint32_t>(*p) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return {f};
  }
  static VecF load_f16(const uint16_t* p) { return {f16_to_f32(*p)}; }
  static VecF load_partial(const float* p, int n) { return {n > 0 ? *p : 0.0f}; }
  static void load_bf16_pair(const uint16_t* p, VecF& lo, VecF& hi) {
    lo = load_bf16(p);
    hi = load_bf16(p + 1);
  }
  static constexpr int pair_src(int, bool hi) { return hi ? 1 : 0; }
  void store(float* p) const { *p = v; }
  void store_partial(float* p, int n) const {
    if (n > 0) *p = v;
  }
  float sum() const { return v; }
  float max() const { return v; }
};
inline VecF operator+(VecF a, VecF b) {
  return {a.v + b.v};
}
inline VecF operator-(VecF a, VecF b) {
  return {a.v - b.v};
}
inline VecF operator*(VecF a, VecF b) {
  return {a.v * b.v};
}
inline VecF fma(VecF a, VecF b, VecF c) {
  return {std::fma(a.v, b.v, c.v)};
}
inline VecF vmax(VecF a, VecF b) {
  return {a.v > b.v ? a.v : b.v};
}
inline VecF vdiv(VecF a, VecF b) {
  return {a.v / b.v};
}
inline VecF vsqrt(VecF a) {
  return {std::sqrt(a.v)};
}
inline VecF exp2i(VecF n) {
  return {std::ldexp(1.0f, static_cast<int>(n.v))};
}
inline VecF vround(VecF a) {
  return {std::nearbyint(a.v)};
}

#endif

inline void prefetch(const void* p) {
#if defined(YAK_SIMD_AVX512) || defined(YAK_SIMD_AVX2)
  _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0);
#else
  (void)p;
#endif
}

// e^x with a relative error below 2e-7 over the float range (x below -87 gives 0): range
// reduction to 2^n * e^r, |r| <= ln2/2, and a degree-6 polynomial. Used by softmax-like kernels,
// where every lane count (scalar included) runs the same formula.
inline VecF vexp(VecF x) {
  const VecF lo = VecF::set1(-87.3f), hi = VecF::set1(88.3f);
  x = vmax(x, lo);
#if defined(YAK_SIMD_AVX512)
  x.v = _mm512_min_ps(x.v, hi.v);
#elif defined(YAK_SIMD_AVX2)
  x.v = _mm256_min_ps(x.v, hi.v);
#else
  x.v = x.v < hi.v ? x.v : hi.v;
#endif
  const VecF n = vround(x * VecF::set1(1.44269504088896341f));
  // r = x - n ln2 in two steps (Cody-Waite) for accuracy
  VecF r = fma(n, VecF::set1(-0.693359375f), x);
  r = fma(n, VecF::set1(2.12194440e-4f), r);
  VecF p = VecF::set1(1.0f / 720.0f);
  p = fma(p, r, VecF::set1(1.0f / 120.0f));
  p = fma(p, r, VecF::set1(1.0f / 24.0f));
  p = fma(p, r, VecF::set1(1.0f / 6.0f));
  p = fma(p, r, VecF::set1(0.5f));
  p = fma(p, r, VecF::set1(1.0f));
  p = fma(p, r, VecF::set1(1.0f));
  // below the smallest normal the result flushes to zero
  VecF out = p * exp2i(n);
#if defined(YAK_SIMD_AVX512)
  out.v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x.v, _mm512_set1_ps(-87.0f), _CMP_GT_OQ), out.v);
#elif defined(YAK_SIMD_AVX2)
  out.v = _mm256_and_ps(out.v, _mm256_cmp_ps(x.v, _mm256_set1_ps(-87.0f), _CMP_GT_OQ));
#else
  if (!(x.v > -87.0f)) out.v = 0.0f;
#endif
  return out;
}

}  // namespace yak::ops::cpu::YAK_KNS
