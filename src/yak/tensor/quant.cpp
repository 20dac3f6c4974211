// Reference block quantizers and dequantizers (see quant.h). Every float operation here is
// ordered as ggml's reference code orders it and this file is compiled without contraction of
// a * b + c into fused multiply-adds, so the bytes and floats agree with ggml's on any CPU.
#include "yak/tensor/quant.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "yak/tensor/half.h"

namespace yak::quant {
namespace {

constexpr float kGroupEps = 1e-15f;  // below this a group is all zero

// Round to nearest, ties to even, by the float-add trick (|v| < 2^22).
inline int round_even(float v) {
  float t = v + 12582912.f;
  int32_t i;
  std::memcpy(&i, &t, 4);
  return (i & 0x007fffff) - 0x00400000;
}
inline int clamp(int v, int lo, int hi) {
  return std::max(lo, std::min(hi, v));
}
inline float h2f(uint16_t h) {
  return f16_to_f32(h);
}
inline uint16_t f2h(float f) {
  return f32_to_f16(f);
}

// The value of largest magnitude in x[0..n) (the first one on ties), and that magnitude.
inline float signed_absmax(const float* x, int n, float* amax_out) {
  float amax = 0, max = 0;
  for (int i = 0; i < n; ++i) {
    const float a = std::fabs(x[i]);
    if (amax < a) {
      amax = a;
      max = x[i];
    }
  }
  *amax_out = amax;
  return max;
}

inline void min_max(const float* x, int n, float* lo, float* hi) {
  float mn = FLT_MAX, mx = -FLT_MAX;
  for (int i = 0; i < n; ++i) {
    if (x[i] < mn) mn = x[i];
    if (x[i] > mx) mx = x[i];
  }
  *lo = mn;
  *hi = mx;
}

// --- symmetric and asymmetric scale searches of the K formats --------------------------------

// Signed levels L in [0, 2 nmax) for x ≈ scale * (L - nmax), weighted by x² (weighting kind 1),
// searching 18 scales around nmax / max; returns the scale.
float search_symmetric(int n, int nmax, const float* x, int8_t* L) {
  float amax;
  const float max = signed_absmax(x, n, &amax);
  if (amax < kGroupEps) {
    std::fill(L, L + n, 0);
    return 0.f;
  }
  float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = clamp(round_even(iscale * x[i]), -nmax, nmax - 1);
    L[i] = static_cast<int8_t>(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(nmax + 0.1f * is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = clamp(round_even(iscale * x[i]), -nmax, nmax - 1);
      const float w = x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(nmax + clamp(round_even(iscale * x[i]), -nmax, nmax - 1));
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// Q3_K's search: start from nmax / max, then move single levels while the weighted fit improves
// (at most five sweeps). L in [0, 2 nmax).
float search_q3(int n, int nmax, const float* x, int8_t* L) {
  float amax;
  const float max = signed_absmax(x, n, &amax);
  if (amax < kGroupEps) {
    std::fill(L, L + n, 0);
    return 0.f;
  }
  const float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = clamp(round_even(iscale * x[i]), -nmax, nmax - 1);
    L[i] = static_cast<int8_t>(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  for (int sweep = 0; sweep < 5; ++sweep) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * L[i];
      if (slx <= 0) continue;
      float sl2 = suml2 - w * L[i] * L[i];
      const int nl = clamp(round_even(x[i] * sl2 / slx), -nmax, nmax - 1);
      if (nl == L[i]) continue;
      slx += w * x[i] * nl;
      sl2 += w * nl * nl;
      if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
        L[i] = static_cast<int8_t>(nl);
        sumlx = slx;
        suml2 = sl2;
        ++changed;
      }
    }
    if (!changed) break;
  }
  for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// Levels L in [0, nmax] for x ≈ scale * L - min (min ≥ 0 returned through *neg_min), minimising
// the weighted error (absolute when `mad`, squared otherwise) over nstep + 1 candidate scales
// (rmin + rdelta * k + nmax) / (max - min) and their least-squares fits.
float search_affine(int n, int nmax, const float* x, const float* w, uint8_t* L, float* neg_min, uint8_t* aux,
                    float rmin, float rdelta, int nstep, bool mad) {
  float mn = x[0], mx = x[0];
  float sum_w = w[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < mn) mn = x[i];
    if (x[i] > mx) mx = x[i];
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (mn > 0) mn = 0;
  if (mx == mn) {
    std::fill(L, L + n, 0);
    *neg_min = -mn;
    return 0.f;
  }
  float iscale = nmax / (mx - mn);
  float scale = 1 / iscale;
  float best = 0;
  for (int i = 0; i < n; ++i) {
    L[i] = static_cast<uint8_t>(clamp(round_even(iscale * (x[i] - mn)), 0, nmax));
    float diff = scale * L[i] + mn - x[i];
    diff = mad ? std::fabs(diff) : diff * diff;
    best += w[i] * diff;
  }
  if (nstep < 1) {
    *neg_min = -mn;
    return scale;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * is + nmax) / (mx - mn);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = clamp(round_even(iscale * (x[i] - mn)), 0, nmax);
      aux[i] = static_cast<uint8_t>(l);
      sum_l += w[i] * l;
      sum_l2 += w[i] * l * l;
      sum_xl += w[i] * l * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D <= 0) continue;
    float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
    float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
    if (this_min > 0) {
      this_min = 0;
      this_scale = sum_xl / sum_l2;
    }
    float err = 0;
    for (int i = 0; i < n; ++i) {
      float diff = this_scale * aux[i] + this_min - x[i];
      diff = mad ? std::fabs(diff) : diff * diff;
      err += w[i] * diff;
    }
    if (err < best) {
      std::copy(aux, aux + n, L);
      best = err;
      scale = this_scale;
      mn = this_min;
    }
  }
  *neg_min = -mn;
  return scale;
}

// Q4_K / Q5_K: eight sub-blocks of 32 with 6-bit scales and mins; L gets levels in [0, nmax].
// `rmin`, `nstep`: the search range ggml uses for the format.
void quantize_k_affine(const float* x, uint16_t* d_out, uint16_t* dmin_out, uint8_t scales_out[12], uint8_t L[256],
                       int nmax, float rmin, int nstep) {
  float scales[8], mins[8], w[32];
  uint8_t aux[32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    const float* xs = x + 32 * j;
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) w[l] = av_x + std::fabs(xs[l]);
    scales[j] = search_affine(32, nmax, xs, w, L + 32 * j, &mins[j], aux, rmin, 0.1f, nstep, false);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  uint8_t* s = scales_out;
  for (int j = 0; j < 8; ++j) {
    const uint8_t ls = std::min<uint8_t>(63, static_cast<uint8_t>(round_even(inv_scale * scales[j])));
    const uint8_t lm = std::min<uint8_t>(63, static_cast<uint8_t>(round_even(inv_min * mins[j])));
    if (j < 4) {
      s[j] = ls;
      s[j + 4] = lm;
    } else {
      s[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
      s[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
      s[j] |= static_cast<uint8_t>((lm >> 4) << 6);
    }
  }
  *d_out = f2h(max_scale / 63.f);
  *dmin_out = f2h(max_min / 63.f);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    k4_scale_min(j, s, &sc, &m);
    const float d = h2f(*d_out) * sc;
    if (!d) continue;
    const float dm = h2f(*dmin_out) * m;
    for (int i = 0; i < 32; ++i)
      L[32 * j + i] = static_cast<uint8_t>(clamp(round_even((x[32 * j + i] + dm) / d), 0, nmax));
  }
}

// Q2_K / Q3_K / Q6_K pack four 2-bit level planes of 32 per 128 elements into one byte each.
void pack_2bit(const uint8_t* L, uint8_t* qs) {
  for (int j = 0; j < kSuper; j += 128)
    for (int l = 0; l < 32; ++l)
      qs[j / 4 + l] =
          static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

}  // namespace

// --- legacy formats ---------------------------------------------------------------------------

void quantize_q8_0(const float* x, void* out, int64_t n) {
  auto* y = static_cast<BlockQ8_0*>(out);
  for (int64_t b = 0; b < n / kBlock; ++b, x += kBlock) {
    float amax = 0;
    for (int j = 0; j < kBlock; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127;
    const float id = d ? 1.0f / d : 0.0f;
    y[b].d = f2h(d);
    for (int j = 0; j < kBlock; ++j) y[b].qs[j] = static_cast<int8_t>(std::round(x[j] * id));
  }
}

void quantize_q8_1(const float* x, void* out, int64_t n) {
  auto* y = static_cast<BlockQ8_1*>(out);
  for (int64_t b = 0; b < n / kBlock; ++b, x += kBlock) {
    float amax = 0;
    for (int j = 0; j < kBlock; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127;
    const float id = d ? 1.0f / d : 0.0f;
    y[b].d = f2h(d);
    int sum = 0;
    for (int j = 0; j < kBlock; ++j) {
      y[b].qs[j] = static_cast<int8_t>(std::round(x[j] * id));
      sum += y[b].qs[j];
    }
    y[b].s = f2h(static_cast<float>(sum) * d);
  }
}

void quantize_q4_0(const float* x, void* out, int64_t n) {
  auto* y = static_cast<BlockQ4_0*>(out);
  for (int64_t b = 0; b < n / kBlock; ++b, x += kBlock) {
    float amax;
    const float max = signed_absmax(x, kBlock, &amax);
    const float d = max / -8;
    const float id = d ? 1.0f / d : 0.0f;
    y[b].d = f2h(d);
    for (int j = 0; j < 16; ++j) {
      const uint8_t lo = static_cast<uint8_t>(std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f))));
      const uint8_t hi =
          static_cast<uint8_t>(std::min(15, static_cast<int>(static_cast<int8_t>(x[j + 16] * id + 8.5f))));
      y[b].qs[j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

void quantize_q4_1(const float* x, void* out, int64_t n) {
  auto* y = static_cast<BlockQ4_1*>(out);
  for (int64_t b = 0; b < n / kBlock; ++b, x += kBlock) {
    float mn, mx;
    min_max(x, kBlock, &mn, &mx);
    const float d = (mx - mn) / 15;
    const float id = d ? 1.0f / d : 0.0f;
    y[b].d = f2h(d);
    y[b].m = f2h(mn);
    for (int j = 0; j < 16; ++j) {
      const uint8_t lo =
          static_cast<uint8_t>(std::min(15, static_cast<int>(static_cast<int8_t>((x[j] - mn) * id + 0.5f))));
      const uint8_t hi =
          static_cast<uint8_t>(std::min(15, static_cast<int>(static_cast<int8_t>((x[j + 16] - mn) * id + 0.5f))));
      y[b].qs[j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

void quantize_q5_0(const float* x, void* out, int64_t n) {
  auto* y = static_cast<BlockQ5_0*>(out);
  for (int64_t b = 0; b < n / kBlock; ++b, x += kBlock) {
    float amax;
    const float max = signed_absmax(x, kBlock, &amax);
    const float d = max / -16;
    const float id = d ? 1.0f / d : 0.0f;
    y[b].d = f2h(d);
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
      const uint8_t lo = static_cast<uint8_t>(std::min(31, static_cast<int>(static_cast<int8_t>(x[j] * id + 16.5f))));
      const uint8_t hi =
          static_cast<uint8_t>(std::min(31, static_cast<int>(static_cast<int8_t>(x[j + 16] * id + 16.5f))));
      y[b].qs[j] = static_cast<uint8_t>((lo & 0x0F) | ((hi & 0x0F) << 4));
      qh |= static_cast<uint32_t>((lo & 0x10u) >> 4) << j;
      qh |= static_cast<uint32_t>((hi & 0x10u) >> 4) << (j + 16);
    }
    std::memcpy(y[b].qh, &qh, 4);
  }
}

void quantize_q5_1(const float* x, void* out, int64_t n) {
  auto* y = static_cast<BlockQ5_1*>(out);
  for (int64_t b = 0; b < n / kBlock; ++b, x += kBlock) {
    float mn, mx;
    min_max(x, kBlock, &mn, &mx);
    const float d = (mx - mn) / 31;
    const float id = d ? 1.0f / d : 0.0f;
    y[b].d = f2h(d);
    y[b].m = f2h(mn);
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
      const uint8_t lo = static_cast<uint8_t>((x[j] - mn) * id + 0.5f);
      const uint8_t hi = static_cast<uint8_t>((x[j + 16] - mn) * id + 0.5f);
      y[b].qs[j] = static_cast<uint8_t>((lo & 0x0F) | ((hi & 0x0F) << 4));
      qh |= static_cast<uint32_t>((lo & 0x10u) >> 4) << j;
      qh |= static_cast<uint32_t>((hi & 0x10u) >> 4) << (j + 16);
    }
    std::memcpy(y[b].qh, &qh, 4);
  }
}

void dequantize_q8_0(const void* in, float* y, int64_t n) {
  auto* x = static_cast<const BlockQ8_0*>(in);
  for (int64_t b = 0; b < n / kBlock; ++b, y += kBlock) {
    const float d = h2f(x[b].d);
    for (int j = 0; j < kBlock; ++j) y[j] = x[b].qs[j] * d;
  }
}

void dequantize_q8_1(const void* in, float* y, int64_t n) {
  auto* x = static_cast<const BlockQ8_1*>(in);
  for (int64_t b = 0; b < n / kBlock; ++b, y += kBlock) {
    const float d = h2f(x[b].d);
    for (int j = 0; j < kBlock; ++j) y[j] = x[b].qs[j] * d;
  }
}

void dequantize_q4_0(const void* in, float* y, int64_t n) {
  auto* x = static_cast<const BlockQ4_0*>(in);
  for (int64_t b = 0; b < n / kBlock; ++b, y += kBlock) {
    const float d = h2f(x[b].d);
    for (int j = 0; j < 16; ++j) {
      y[j] = ((x[b].qs[j] & 0x0F) - 8) * d;
      y[j + 16] = ((x[b].qs[j] >> 4) - 8) * d;
    }
  }
}

void dequantize_q4_1(const void* in, float* y, int64_t n) {
  auto* x = static_cast<const BlockQ4_1*>(in);
  for (int64_t b = 0; b < n / kBlock; ++b, y += kBlock) {
    const float d = h2f(x[b].d), m = h2f(x[b].m);
    for (int j = 0; j < 16; ++j) {
      y[j] = (x[b].qs[j] & 0x0F) * d + m;
      y[j + 16] = (x[b].qs[j] >> 4) * d + m;
    }
  }
}

void dequantize_q5_0(const void* in, float* y, int64_t n) {
  auto* x = static_cast<const BlockQ5_0*>(in);
  for (int64_t b = 0; b < n / kBlock; ++b, y += kBlock) {
    const float d = h2f(x[b].d);
    uint32_t qh;
    std::memcpy(&qh, x[b].qh, 4);
    for (int j = 0; j < 16; ++j) {
      const int lo = ((x[b].qs[j] & 0x0F) | (((qh >> j) & 1u) << 4)) - 16;
      const int hi = ((x[b].qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4)) - 16;
      y[j] = lo * d;
      y[j + 16] = hi * d;
    }
  }
}

void dequantize_q5_1(const void* in, float* y, int64_t n) {
  auto* x = static_cast<const BlockQ5_1*>(in);
  for (int64_t b = 0; b < n / kBlock; ++b, y += kBlock) {
    const float d = h2f(x[b].d), m = h2f(x[b].m);
    uint32_t qh;
    std::memcpy(&qh, x[b].qh, 4);
    for (int j = 0; j < 16; ++j) {
      const int lo = (x[b].qs[j] & 0x0F) | static_cast<int>(((qh >> j) & 1u) << 4);
      const int hi = (x[b].qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
      y[j] = lo * d + m;
      y[j + 16] = hi * d + m;
    }
  }
}

// --- K formats ----------------------------------------------------------------------------------

void quantize_q2_k(const float* x, void* out, int64_t n) {
  auto* y = static_cast<BlockQ2_K*>(out);
  for (int64_t b = 0; b < n / kSuper; ++b, x += kSuper) {
    uint8_t L[kSuper], aux[16];
    float w[16], scales[16], mins[16];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 16; ++j) {
      for (int l = 0; l < 16; ++l) w[l] = std::fabs(x[16 * j + l]);
      scales[j] = search_affine(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], aux, -0.5f, 0.1f, 15, true);
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    BlockQ2_K& o = y[b];
    if (max_scale > 0) {
      const float iscale = 15.f / max_scale;
      for (int j = 0; j < 16; ++j) o.scales[j] = static_cast<uint8_t>(round_even(iscale * scales[j]));
      o.d = f2h(max_scale / 15.f);
    } else {
      std::fill(o.scales, o.scales + 16, 0);
      o.d = f2h(0.f);
    }
    if (max_min > 0) {
      const float iscale = 15.f / max_min;
      for (int j = 0; j < 16; ++j) o.scales[j] |= static_cast<uint8_t>(round_even(iscale * mins[j]) << 4);
      o.dmin = f2h(max_min / 15.f);
    } else {
      o.dmin = f2h(0.f);
    }
    for (int j = 0; j < 16; ++j) {
      const float d = h2f(o.d) * (o.scales[j] & 0xF);
      if (!d) continue;
      const float dm = h2f(o.dmin) * (o.scales[j] >> 4);
      for (int i = 0; i < 16; ++i)
        L[16 * j + i] = static_cast<uint8_t>(clamp(round_even((x[16 * j + i] + dm) / d), 0, 3));
    }
    pack_2bit(L, o.qs);
  }
}

void dequantize_q2_k(const void* in, float* y, int64_t n) {
  auto* x = static_cast<const BlockQ2_K*>(in);
  for (int64_t b = 0; b < n / kSuper; ++b) {
    const float d = h2f(x[b].d), dmin = h2f(x[b].dmin);
    const uint8_t* q = x[b].qs;
    int is = 0;
    for (int half = 0; half < 2; ++half, q += 32) {
      for (int shift = 0; shift < 8; shift += 2) {
        for (int part = 0; part < 2; ++part) {
          const uint8_t sc = x[b].scales[is++];
          const float dl = d * (sc & 0xF), ml = dmin * (sc >> 4);
          for (int l = 0; l < 16; ++l) *y++ = dl * static_cast<int8_t>((q[l + 16 * part] >> shift) & 3) - ml;
        }
      }
    }
  }
}

void q3k_scales(const uint8_t p[12], int8_t out[16]) {
  for (int j = 0; j < 16; ++j) {
    const int low = j < 8 ? (p[j] & 0xF) : (p[j - 8] >> 4);
    const int high = (p[8 + j % 4] >> (2 * (j / 4))) & 3;
    out[j] = static_cast<int8_t>((low | (high << 4)) - 32);
  }
}

void quantize_q3_k(const float* x, void* out, int64_t n) {
  auto* y = static_cast<BlockQ3_K*>(out);
  for (int64_t b = 0; b < n / kSuper; ++b, x += kSuper) {
    int8_t L[kSuper];
    float scales[16];
    for (int j = 0; j < 16; ++j) scales[j] = search_q3(16, 4, x + 16 * j, L + 16 * j);
    float amax;
    const float max_scale = signed_absmax(scales, 16, &amax);
    BlockQ3_K& o = y[b];
    std::memset(o.scales, 0, 12);
    if (max_scale) {
      const float iscale = -32.f / max_scale;
      for (int j = 0; j < 16; ++j) {
        int8_t l = static_cast<int8_t>(round_even(iscale * scales[j]));
        l = static_cast<int8_t>(clamp(l, -32, 31) + 32);
        if (j < 8)
          o.scales[j] = static_cast<uint8_t>(l & 0xF);
        else
          o.scales[j - 8] |= static_cast<uint8_t>((l & 0xF) << 4);
        l = static_cast<int8_t>(l >> 4);
        o.scales[j % 4 + 8] |= static_cast<uint8_t>(l << (2 * (j / 4)));
      }
      o.d = f2h(1 / iscale);
    } else {
      o.d = f2h(0.f);
    }
    int8_t sc[16];
    q3k_scales(o.scales, sc);
    for (int j = 0; j < 16; ++j) {
      const float d = h2f(o.d) * sc[j];
      if (!d) continue;
      for (int i = 0; i < 16; ++i) L[16 * j + i] = static_cast<int8_t>(clamp(round_even(x[16 * j + i] / d), -4, 3) + 4);
    }
    std::memset(o.hmask, 0, 32);
    uint8_t U[kSuper];
    for (int j = 0; j < kSuper; ++j) {  // third bit of element j: byte j % 32, bit j / 32
      U[j] = static_cast<uint8_t>(L[j]);
      if (U[j] > 3) {
        o.hmask[j % 32] |= static_cast<uint8_t>(1u << (j / 32));
        U[j] = static_cast<uint8_t>(U[j] - 4);
      }
    }
    pack_2bit(U, o.qs);
  }
}

void dequantize_q3_k(const void* in, float* y, int64_t n) {
  auto* x = static_cast<const BlockQ3_K*>(in);
  for (int64_t b = 0; b < n / kSuper; ++b) {
    const float d_all = h2f(x[b].d);
    int8_t sc[16];
    q3k_scales(x[b].scales, sc);
    const uint8_t* q = x[b].qs;
    const uint8_t* hm = x[b].hmask;
    uint8_t m = 1;
    int is = 0;
    for (int half = 0; half < 2; ++half, q += 32) {
      for (int shift = 0; shift < 8; shift += 2, m = static_cast<uint8_t>(m << 1)) {
        for (int part = 0; part < 2; ++part) {
          const float dl = d_all * sc[is++];
          for (int l = 0; l < 16; ++l) {
            const int k = l + 16 * part;
            *y++ = dl * (static_cast<int8_t>((q[k] >> shift) & 3) - ((hm[k] & m) ? 0 : 4));
          }
        }
      }
    }
  }
}

void quantize_q4_k(const float* x, void* out, int64_t n) {
  auto* y = static_cast<BlockQ4_K*>(out);
  for (int64_t b = 0; b < n / kSuper; ++b, x += kSuper) {
    uint8_t L[kSuper];
    BlockQ4_K& o = y[b];
    std::memset(o.scales, 0, 12);
    quantize_k_affine(x, &o.d, &o.dmin, o.scales, L, 15, -1.f, 20);
    uint8_t* q = o.qs;
    for (int j = 0; j < kSuper; j += 64, q += 32)
      for (int l = 0; l < 32; ++l) q[l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
  }
}

void dequantize_q4_k(const void* in, float* y, int64_t n) {
  auto* x = static_cast<const BlockQ4_K*>(in);
  for (int64_t b = 0; b < n / kSuper; ++b) {
    const float d = h2f(x[b].d), dmin = h2f(x[b].dmin);
    const uint8_t* q = x[b].qs;
    for (int j = 0; j < 8; j += 2, q += 32) {
      uint8_t sc, m;
      k4_scale_min(j, x[b].scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      k4_scale_min(j + 1, x[b].scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
    }
  }
}

void quantize_q5_k(const float* x, void* out, int64_t n) {
  auto* y = static_cast<BlockQ5_K*>(out);
  for (int64_t b = 0; b < n / kSuper; ++b, x += kSuper) {
    uint8_t L[kSuper];
    BlockQ5_K& o = y[b];
    std::memset(o.scales, 0, 12);
    quantize_k_affine(x, &o.d, &o.dmin, o.scales, L, 31, -0.5f, 15);
    std::memset(o.qh, 0, 32);
    uint8_t* ql = o.qs;
    uint8_t m1 = 1, m2 = 2;
    for (int base = 0; base < kSuper; base += 64, ql += 32) {
      for (int j = 0; j < 32; ++j) {
        int l1 = L[base + j], l2 = L[base + j + 32];
        if (l1 > 15) {
          l1 -= 16;
          o.qh[j] |= m1;
        }
        if (l2 > 15) {
          l2 -= 16;
          o.qh[j] |= m2;
        }
        ql[j] = static_cast<uint8_t>(l1 | (l2 << 4));
      }
      m1 = static_cast<uint8_t>(m1 << 2);
      m2 = static_cast<uint8_t>(m2 << 2);
    }
  }
}

void dequantize_q5_k(const void* in, float* y, int64_t n) {
  auto* x = static_cast<const BlockQ5_K*>(in);
  for (int64_t b = 0; b < n / kSuper; ++b) {
    const float d = h2f(x[b].d), dmin = h2f(x[b].dmin);
    const uint8_t* ql = x[b].qs;
    const uint8_t* qh = x[b].qh;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0; j < 8; j += 2, ql += 32) {
      uint8_t sc, m;
      k4_scale_min(j, x[b].scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      k4_scale_min(j + 1, x[b].scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
      u1 = static_cast<uint8_t>(u1 << 2);
      u2 = static_cast<uint8_t>(u2 << 2);
    }
  }
}

void quantize_q6_k(const float* x, void* out, int64_t n) {
  auto* y = static_cast<BlockQ6_K*>(out);
  for (int64_t b = 0; b < n / kSuper; ++b, x += kSuper) {
    int8_t L[kSuper];
    float scales[16];
    for (int j = 0; j < 16; ++j) scales[j] = search_symmetric(16, 32, x + 16 * j, L + 16 * j);
    float max_abs;
    const float max_scale = signed_absmax(scales, 16, &max_abs);
    BlockQ6_K& o = y[b];
    if (max_abs < kGroupEps) {
      std::memset(&o, 0, sizeof o);
      continue;
    }
    const float iscale = -128.f / max_scale;
    o.d = f2h(1 / iscale);
    for (int j = 0; j < 16; ++j) o.scales[j] = static_cast<int8_t>(std::min(127, round_even(iscale * scales[j])));
    for (int j = 0; j < 16; ++j) {
      const float d = h2f(o.d) * o.scales[j];
      if (!d) continue;
      for (int i = 0; i < 16; ++i)
        L[16 * j + i] = static_cast<int8_t>(clamp(round_even(x[16 * j + i] / d), -32, 31) + 32);
    }
    uint8_t* ql = o.ql;
    uint8_t* qh = o.qh;
    for (int j = 0; j < kSuper; j += 128, ql += 64, qh += 32) {
      for (int l = 0; l < 32; ++l) {
        const int a = L[j + l], bb = L[j + l + 32], c = L[j + l + 64], e = L[j + l + 96];
        ql[l] = static_cast<uint8_t>((a & 0xF) | ((c & 0xF) << 4));
        ql[l + 32] = static_cast<uint8_t>((bb & 0xF) | ((e & 0xF) << 4));
        qh[l] = static_cast<uint8_t>((a >> 4) | ((bb >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6));
      }
    }
  }
}

void dequantize_q6_k(const void* in, float* y, int64_t n) {
  auto* x = static_cast<const BlockQ6_K*>(in);
  for (int64_t b = 0; b < n / kSuper; ++b) {
    const float d = h2f(x[b].d);
    const uint8_t* ql = x[b].ql;
    const uint8_t* qh = x[b].qh;
    const int8_t* sc = x[b].scales;
    for (int half = 0; half < 2; ++half, y += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * sc[is] * q1;
        y[l + 32] = d * sc[is + 2] * q2;
        y[l + 64] = d * sc[is + 4] * q3;
        y[l + 96] = d * sc[is + 6] * q4;
      }
    }
  }
}

void quantize_q8_k(const float* x, void* out, int64_t n) {
  auto* y = static_cast<BlockQ8_K*>(out);
  for (int64_t b = 0; b < n / kSuper; ++b, x += kSuper) {
    float amax;
    const float max = signed_absmax(x, kSuper, &amax);
    BlockQ8_K& o = y[b];
    if (!amax) {
      o.d = 0;
      std::memset(o.qs, 0, sizeof o.qs);
      std::memset(o.bsums, 0, sizeof o.bsums);
      continue;
    }
    const float iscale = -127.f / max;
    for (int j = 0; j < kSuper; ++j) o.qs[j] = static_cast<int8_t>(std::min(127, round_even(iscale * x[j])));
    for (int j = 0; j < 16; ++j) {
      int sum = 0;
      for (int i = 0; i < 16; ++i) sum += o.qs[16 * j + i];
      o.bsums[j] = static_cast<int16_t>(sum);
    }
    o.d = 1 / iscale;
  }
}

void dequantize_q8_k(const void* in, float* y, int64_t n) {
  auto* x = static_cast<const BlockQ8_K*>(in);
  for (int64_t b = 0; b < n / kSuper; ++b)
    for (int j = 0; j < kSuper; ++j) *y++ = x[b].d * x[b].qs[j];
}

}  // namespace yak::quant
