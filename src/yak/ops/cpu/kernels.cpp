#include "yak/ops/cpu/kernels.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "yak/base/error.h"
#include "yak/tensor/half.h"

namespace yak::ops::cpu {
namespace {

#if defined(__AVX2__) && defined(__FMA__)
inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  __m128 sh = _mm_movehdup_ps(lo);
  lo = _mm_add_ps(lo, sh);
  sh = _mm_movehl_ps(sh, lo);
  lo = _mm_add_ss(lo, sh);
  return _mm_cvtss_f32(lo);
}
inline __m256 load_bf16(const uint16_t* p) {
  __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
inline __m256 load_f16(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

template <typename Load, typename W>
float dot_simd(const W* w, const float* x, int64_t n, Load load) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm256_fmadd_ps(load(w + i), _mm256_loadu_ps(x + i), a0);
    a1 = _mm256_fmadd_ps(load(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
    a2 = _mm256_fmadd_ps(load(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);
    a3 = _mm256_fmadd_ps(load(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);
  }
  for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(load(w + i), _mm256_loadu_ps(x + i), a0);
  float s = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  for (; i < n; ++i) {
    alignas(32) float tmp[8];
    W one[8] = {};
    one[0] = w[i];
    _mm256_store_ps(tmp, load(one));
    s += tmp[0] * x[i];
  }
  return s;
}

// Dots of one weight row against up to 4 inputs at once: the row is loaded once.
template <typename Load, typename W>
void dot4_simd(const W* w, const float* x, int64_t ldx, int m, int64_t n, float* out, Load load) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 wv = load(w + i);
    for (int k = 0; k < m; ++k) acc[k] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + k * ldx + i), acc[k]);
  }
  for (int k = 0; k < m; ++k) {
    float s = hsum(acc[k]);
    for (int64_t j = i; j < n; ++j) {
      alignas(32) float tmp[8];
      W one[8] = {};
      one[0] = w[j];
      _mm256_store_ps(tmp, load(one));
      s += tmp[0] * x[k * ldx + j];
    }
    out[k] = s;
  }
}

const auto kLoadF32 = [](const float* p) { return _mm256_loadu_ps(p); };
const auto kLoadBf16 = [](const uint16_t* p) { return load_bf16(p); };
const auto kLoadF16 = [](const uint16_t* p) { return load_f16(p); };
#endif

float dot_scalar(DType wt, const void* w, const float* x, int64_t n) {
  double s = 0;
  switch (wt) {
    case DType::F32:
      for (int64_t i = 0; i < n; ++i) s += static_cast<const float*>(w)[i] * x[i];
      break;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) s += bf16_to_f32(static_cast<const uint16_t*>(w)[i]) * x[i];
      break;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) s += f16_to_f32(static_cast<const uint16_t*>(w)[i]) * x[i];
      break;
    default:
      throw Error(std::string("dot: unsupported weight dtype ") + dtype_name(wt));
  }
  return static_cast<float>(s);
}

}  // namespace

float dot(DType wt, const void* w, const float* x, int64_t n) {
#if defined(__AVX2__) && defined(__FMA__)
  switch (wt) {
    case DType::F32:
      return dot_simd(static_cast<const float*>(w), x, n, kLoadF32);
    case DType::BF16:
      return dot_simd(static_cast<const uint16_t*>(w), x, n, kLoadBf16);
    case DType::F16:
      return dot_simd(static_cast<const uint16_t*>(w), x, n, kLoadF16);
    default:
      break;
  }
#endif
  return dot_scalar(wt, w, x, n);
}

void gemv_rows(DType wt, const void* W, int64_t K, int64_t r0, int64_t r1, const float* x, int64_t M, int64_t ldx,
               float* y, int64_t ldy) {
  const size_t row_bytes = dtype_bytes(wt, K);
  auto base = static_cast<const uint8_t*>(W);
  for (int64_t r = r0; r < r1; ++r) {
    const void* w = base + r * row_bytes;
    if (M == 1) {
      y[r] = dot(wt, w, x, K);
      continue;
    }
#if defined(__AVX2__) && defined(__FMA__)
    for (int64_t m0 = 0; m0 < M; m0 += 4) {
      int m = static_cast<int>(std::min<int64_t>(4, M - m0));
      float out[4];
      switch (wt) {
        case DType::F32:
          dot4_simd(static_cast<const float*>(w), x + m0 * ldx, ldx, m, K, out, kLoadF32);
          break;
        case DType::BF16:
          dot4_simd(static_cast<const uint16_t*>(w), x + m0 * ldx, ldx, m, K, out, kLoadBf16);
          break;
        case DType::F16:
          dot4_simd(static_cast<const uint16_t*>(w), x + m0 * ldx, ldx, m, K, out, kLoadF16);
          break;
        default:
          for (int k = 0; k < m; ++k) out[k] = dot_scalar(wt, w, x + (m0 + k) * ldx, K);
      }
      for (int k = 0; k < m; ++k) y[(m0 + k) * ldy + r] = out[k];
    }
#else
    for (int64_t m = 0; m < M; ++m) y[m * ldy + r] = dot_scalar(wt, w, x + m * ldx, K);
#endif
  }
}

void rows_to_f32(DType wt, const void* W, int64_t K, int64_t r0, int64_t r1, float* dst) {
  const size_t row_bytes = dtype_bytes(wt, K);
  auto base = static_cast<const uint8_t*>(W) + r0 * row_bytes;
  const int64_t n = (r1 - r0) * K;
#if defined(__AVX2__)
  if (wt == DType::BF16 || wt == DType::F16) {
    auto src = reinterpret_cast<const uint16_t*>(base);
    int64_t i = 0;
    if (wt == DType::BF16)
      for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load_bf16(src + i));
    else
      for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load_f16(src + i));
    for (; i < n; ++i) dst[i] = wt == DType::BF16 ? bf16_to_f32(src[i]) : f16_to_f32(src[i]);
    return;
  }
#endif
  switch (wt) {
    case DType::F32:
      std::memcpy(dst, base, n * 4);
      return;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(reinterpret_cast<const uint16_t*>(base)[i]);
      return;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(reinterpret_cast<const uint16_t*>(base)[i]);
      return;
    default:
      throw Error(std::string("rows_to_f32: unsupported dtype ") + dtype_name(wt));
  }
}

void rms_norm(const float* x, const float* w, float eps, int64_t n, float* out) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  float inv = static_cast<float>(1.0 / std::sqrt(ss / n + eps));
  for (int64_t i = 0; i < n; ++i) out[i] = w[i] * (x[i] * inv);
}

void silu_mul(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void rope_rotate_half(float* x, const float* cos, const float* sin, int64_t d) {
  const int64_t h = d / 2;
  for (int64_t i = 0; i < h; ++i) {
    float a = x[i], b = x[i + h];
    x[i] = a * cos[i] - b * sin[i];
    x[i + h] = b * cos[i] + a * sin[i];
  }
}

void softmax(float* x, int64_t n) {
  float mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

}  // namespace yak::ops::cpu
