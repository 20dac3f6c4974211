// The CPU kernels, written once over VecF (simd.h) and compiled once per instruction set by
// kernels_{scalar,avx2,avx512}.cpp. Only raw loops and intrinsics here: no standard-library
// templates, whose out-of-line copies could otherwise be shared with code built for other CPUs.
#include "yak/ops/cpu/kernels.h"
#include "yak/ops/cpu/simd.h"

namespace yak::ops::cpu::YAK_KNS {
namespace {

constexpr int N = VecF::N;

inline float bf16f(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
#if defined(YAK_SIMD_AVX512) || defined(YAK_SIMD_AVX2)
inline float f16f(uint16_t h) {
  return _cvtsh_ss(h);
}
inline uint16_t to_f16(float f) {
  return static_cast<uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT));
}
#else
inline float f16f(uint16_t h) {
  return f16_to_f32(h);
}
inline uint16_t to_f16(float f) {
  return f32_to_f16(f);
}
#endif

// Element loaders for the weight / cache types.
struct LF32 {
  using T = float;
  static VecF vec(const float* p) { return VecF::load(p); }
  static float one(const float* p) { return *p; }
};
struct LBf16 {
  using T = uint16_t;
  static VecF vec(const uint16_t* p) { return VecF::load_bf16(p); }
  static float one(const uint16_t* p) { return bf16f(*p); }
};
struct LF16 {
  using T = uint16_t;
  static VecF vec(const uint16_t* p) { return VecF::load_f16(p); }
  static float one(const uint16_t* p) { return f16f(*p); }
};

inline float fmax1(float a, float b) {
  return a > b ? a : b;
}

void bf16_to_f32_k(const uint16_t* s, float* d, int64_t n) {
  int64_t i = 0;
  for (; i + N <= n; i += N) VecF::load_bf16(s + i).store(d + i);
  for (; i < n; ++i) d[i] = bf16f(s[i]);
}
void f16_to_f32_k(const uint16_t* s, float* d, int64_t n) {
  int64_t i = 0;
  for (; i + N <= n; i += N) VecF::load_f16(s + i).store(d + i);
  for (; i < n; ++i) d[i] = f16f(s[i]);
}
void f32_to_bf16_k(const float* s, uint16_t* d, int64_t n) {
  int64_t i = 0;
#if defined(YAK_SIMD_AVX512) || defined(YAK_SIMD_AVX2)
  for (; i + N <= n; i += N) VecF::load(s + i).store_bf16(d + i);
#endif
  for (; i < n; ++i) d[i] = to_bf16(s[i]);
}
void f32_to_f16_k(const float* s, uint16_t* d, int64_t n) {
  int64_t i = 0;
#if defined(YAK_SIMD_AVX512) || defined(YAK_SIMD_AVX2)
  for (; i + N <= n; i += N) VecF::load(s + i).store_f16(d + i);
#endif
  for (; i < n; ++i) d[i] = to_f16(s[i]);
}

// How far ahead (elements) the matrix-vector kernels prefetch a weight row: the next rows are
// on their way while this one is summed (measured: ~90% of the read bandwidth instead of ~78%).
constexpr int64_t kAhead = 512;

template <typename L>
float dot_t(const typename L::T* w, const float* x, int64_t n) {
  VecF a0 = VecF::zero(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    prefetch(w + i + kAhead);
    a0 = fma(L::vec(w + i), VecF::load(x + i), a0);
    a1 = fma(L::vec(w + i + N), VecF::load(x + i + N), a1);
    a2 = fma(L::vec(w + i + 2 * N), VecF::load(x + i + 2 * N), a2);
    a3 = fma(L::vec(w + i + 3 * N), VecF::load(x + i + 3 * N), a3);
  }
  for (; i + N <= n; i += N) a0 = fma(L::vec(w + i), VecF::load(x + i), a0);
  float s = ((a0 + a1) + (a2 + a3)).sum();
  for (; i < n; ++i) s += L::one(w + i) * x[i];
  return s;
}

// One weight row against up to 4 inputs: the row is loaded once.
template <typename L>
void dot4_t(const typename L::T* w, const float* x, int64_t ldx, int m, int64_t n, float* out) {
  VecF acc[4] = {VecF::zero(), VecF::zero(), VecF::zero(), VecF::zero()};
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    if (i % (4 * N) == 0) prefetch(w + i + kAhead);
    const VecF wv = L::vec(w + i);
    for (int k = 0; k < m; ++k) acc[k] = fma(wv, VecF::load(x + k * ldx + i), acc[k]);
  }
  for (int k = 0; k < m; ++k) {
    float s = acc[k].sum();
    for (int64_t j = i; j < n; ++j) s += L::one(w + j) * x[k * ldx + j];
    out[k] = s;
  }
}

template <typename L>
void gemv_t(const typename L::T* W, int64_t ldw, int64_t K, int64_t r0, int64_t r1, const float* x, int64_t M,
            int64_t ldx, float* y, int64_t ldy) {
  for (int64_t r = r0; r < r1; ++r) {
    const typename L::T* w = W + r * ldw;
    if (M == 1) {
      y[r] = dot_t<L>(w, x, K);
      continue;
    }
    for (int64_t m0 = 0; m0 < M; m0 += 4) {
      const int m = static_cast<int>(M - m0 < 4 ? M - m0 : 4);
      float out[4];
      dot4_t<L>(w, x + m0 * ldx, ldx, m, K, out);
      for (int k = 0; k < m; ++k) y[(m0 + k) * ldy + r] = out[k];
    }
  }
}

// bf16 rows: 2N weights per load, widened by interleaving zero words, against activations that
// prep_bf16 put in the same pair order (the tail past the last full block stays in order).
void prep_bf16_k(const float* x, int64_t K, float* out) {
  int64_t i = 0;
  for (; i + 2 * N <= K; i += 2 * N)
    for (int k = 0; k < N; ++k) {
      out[i + k] = x[i + VecF::pair_src(k, false)];
      out[i + N + k] = x[i + VecF::pair_src(k, true)];
    }
  for (; i < K; ++i) out[i] = x[i];
}

float dot_bf16_pairs(const uint16_t* w, const float* x, int64_t n) {
  VecF a0 = VecF::zero(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    prefetch(w + i + kAhead);
    VecF l0, h0, l1, h1;
    VecF::load_bf16_pair(w + i, l0, h0);
    VecF::load_bf16_pair(w + i + 2 * N, l1, h1);
    a0 = fma(l0, VecF::load(x + i), a0);
    a1 = fma(h0, VecF::load(x + i + N), a1);
    a2 = fma(l1, VecF::load(x + i + 2 * N), a2);
    a3 = fma(h1, VecF::load(x + i + 3 * N), a3);
  }
  for (; i + 2 * N <= n; i += 2 * N) {
    VecF l0, h0;
    VecF::load_bf16_pair(w + i, l0, h0);
    a0 = fma(l0, VecF::load(x + i), a0);
    a1 = fma(h0, VecF::load(x + i + N), a1);
  }
  float s = ((a0 + a1) + (a2 + a3)).sum();
  for (; i < n; ++i) s += bf16f(w[i]) * x[i];
  return s;
}

void dot4_bf16_pairs(const uint16_t* w, const float* x, int64_t ldx, int m, int64_t n, float* out) {
  VecF acc[4][2];
  for (int k = 0; k < 4; ++k) acc[k][0] = acc[k][1] = VecF::zero();
  int64_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    prefetch(w + i + kAhead);
    VecF lo, hi;
    VecF::load_bf16_pair(w + i, lo, hi);
    for (int k = 0; k < m; ++k) {
      acc[k][0] = fma(lo, VecF::load(x + k * ldx + i), acc[k][0]);
      acc[k][1] = fma(hi, VecF::load(x + k * ldx + i + N), acc[k][1]);
    }
  }
  for (int k = 0; k < m; ++k) {
    float s = (acc[k][0] + acc[k][1]).sum();
    for (int64_t j = i; j < n; ++j) s += bf16f(w[j]) * x[k * ldx + j];
    out[k] = s;
  }
}

// Two weight rows against up to 4 inputs: each input vector is loaded once for both rows. Every
// (row, input) sum runs exactly as in dot4_bf16_pairs, so the result does not depend on which
// kernel a row went through.
void dot2x4_bf16_pairs(const uint16_t* w0, const uint16_t* w1, const float* x, int64_t ldx, int m, int64_t n,
                       float* out0, float* out1) {
  VecF acc[2][4][2];
  for (int k = 0; k < 4; ++k) acc[0][k][0] = acc[0][k][1] = acc[1][k][0] = acc[1][k][1] = VecF::zero();
  int64_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    prefetch(w0 + i + kAhead);
    prefetch(w1 + i + kAhead);
    VecF lo0, hi0, lo1, hi1;
    VecF::load_bf16_pair(w0 + i, lo0, hi0);
    VecF::load_bf16_pair(w1 + i, lo1, hi1);
    for (int k = 0; k < m; ++k) {
      const VecF xl = VecF::load(x + k * ldx + i), xh = VecF::load(x + k * ldx + i + N);
      acc[0][k][0] = fma(lo0, xl, acc[0][k][0]);
      acc[0][k][1] = fma(hi0, xh, acc[0][k][1]);
      acc[1][k][0] = fma(lo1, xl, acc[1][k][0]);
      acc[1][k][1] = fma(hi1, xh, acc[1][k][1]);
    }
  }
  for (int k = 0; k < m; ++k) {
    float s0 = (acc[0][k][0] + acc[0][k][1]).sum(), s1 = (acc[1][k][0] + acc[1][k][1]).sum();
    for (int64_t j = i; j < n; ++j) {
      s0 += bf16f(w0[j]) * x[k * ldx + j];
      s1 += bf16f(w1[j]) * x[k * ldx + j];
    }
    out0[k] = s0;
    out1[k] = s1;
  }
}

float dot_f32_k(const float* w, const float* x, int64_t n) {
  return dot_t<LF32>(w, x, n);
}
float dot_bf16_k(const uint16_t* w, const float* x, int64_t n) {
  return dot_t<LBf16>(w, x, n);
}
float dot_f16_k(const uint16_t* w, const float* x, int64_t n) {
  return dot_t<LF16>(w, x, n);
}
void gemv_f32_k(const float* W, int64_t ldw, int64_t K, int64_t r0, int64_t r1, const float* x, int64_t M, int64_t ldx,
                float* y, int64_t ldy) {
  gemv_t<LF32>(W, ldw, K, r0, r1, x, M, ldx, y, ldy);
}
void gemv_bf16_k(const uint16_t* W, int64_t ldw, int64_t K, int64_t r0, int64_t r1, const float* x, int64_t M,
                 int64_t ldx, float* y, int64_t ldy) {
  int64_t r = r0;
  if constexpr (N >= 16) {  // 32 vector registers: two rows at a time (16 accumulators)
    if (M > 1)
      for (; r + 2 <= r1; r += 2)
        for (int64_t m0 = 0; m0 < M; m0 += 4) {
          const int m = static_cast<int>(M - m0 < 4 ? M - m0 : 4);
          float out0[4], out1[4];
          dot2x4_bf16_pairs(W + r * ldw, W + (r + 1) * ldw, x + m0 * ldx, ldx, m, K, out0, out1);
          for (int k = 0; k < m; ++k) {
            y[(m0 + k) * ldy + r] = out0[k];
            y[(m0 + k) * ldy + r + 1] = out1[k];
          }
        }
  }
  for (; r < r1; ++r) {
    const uint16_t* w = W + r * ldw;
    if (M == 1) {
      y[r] = dot_bf16_pairs(w, x, K);
      continue;
    }
    for (int64_t m0 = 0; m0 < M; m0 += 4) {
      const int m = static_cast<int>(M - m0 < 4 ? M - m0 : 4);
      float out[4];
      dot4_bf16_pairs(w, x + m0 * ldx, ldx, m, K, out);
      for (int k = 0; k < m; ++k) y[(m0 + k) * ldy + r] = out[k];
    }
  }
}
void gemv_f16_k(const uint16_t* W, int64_t ldw, int64_t K, int64_t r0, int64_t r1, const float* x, int64_t M,
                int64_t ldx, float* y, int64_t ldy) {
  gemv_t<LF16>(W, ldw, K, r0, r1, x, M, ldx, y, ldy);
}

void axpy_k(float a, const float* x, float* y, int64_t n) {
  const VecF av = VecF::set1(a);
  int64_t i = 0;
  for (; i + N <= n; i += N) fma(av, VecF::load(x + i), VecF::load(y + i)).store(y + i);
  for (; i < n; ++i) y[i] += a * x[i];
}
void add_k(const float* a, const float* b, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + N <= n; i += N) (VecF::load(a + i) + VecF::load(b + i)).store(out + i);
  for (; i < n; ++i) out[i] = a[i] + b[i];
}
void scale_k(const float* x, float s, float* out, int64_t n) {
  const VecF sv = VecF::set1(s);
  int64_t i = 0;
  for (; i + N <= n; i += N) (VecF::load(x + i) * sv).store(out + i);
  for (; i < n; ++i) out[i] = x[i] * s;
}
void mul_k(const float* a, const float* b, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + N <= n; i += N) (VecF::load(a + i) * VecF::load(b + i)).store(out + i);
  for (; i < n; ++i) out[i] = a[i] * b[i];
}
float max_k(const float* x, int64_t n) {
  VecF m = VecF::set1(-INFINITY);
  int64_t i = 0;
  for (; i + N <= n; i += N) m = vmax(m, VecF::load(x + i));
  float r = m.max();
  for (; i < n; ++i) r = fmax1(r, x[i]);
  return r;
}
float exp_sum_k(const float* x, float m, float* out, int64_t n) {
  const VecF mv = VecF::set1(m);
  VecF s = VecF::zero();
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    VecF e = vexp(VecF::load(x + i) - mv);
    e.store(out + i);
    s = s + e;
  }
  if (i < n) {
    const int rest = static_cast<int>(n - i);
    vexp(VecF::load_partial(x + i, rest) - mv).store_partial(out + i, rest);
    float t = 0;
    for (int j = 0; j < rest; ++j) t += out[i + j];
    return s.sum() + t;
  }
  return s.sum();
}
double sum_squares_k(const float* x, int64_t n) {
  double total = 0;
  for (int64_t b = 0; b < n; b += 4096) {
    const int64_t e = b + 4096 < n ? b + 4096 : n;
    VecF a0 = VecF::zero(), a1 = a0;
    int64_t i = b;
    for (; i + 2 * N <= e; i += 2 * N) {
      const VecF u = VecF::load(x + i), w = VecF::load(x + i + N);
      a0 = fma(u, u, a0);
      a1 = fma(w, w, a1);
    }
    float s = (a0 + a1).sum();
    for (; i < e; ++i) s += x[i] * x[i];
    total += s;
  }
  return total;
}
float rms_norm_k(const float* x, const float* w, float eps, int64_t n, float* out) {
  const double ss = sum_squares_k(x, n);
  const float r = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  const VecF rv = VecF::set1(r);
  int64_t i = 0;
  for (; i + N <= n; i += N) (VecF::load(w + i) * (VecF::load(x + i) * rv)).store(out + i);
  for (; i < n; ++i) out[i] = w[i] * (x[i] * r);
  return r;
}
void rms_norm_backward_k(const float* dy, const float* x, const float* w, float r, int64_t n, float* dx, float* dw) {
  VecF d0 = VecF::zero();
  int64_t i = 0;
  for (; i + N <= n; i += N) d0 = fma(VecF::load(dy + i) * VecF::load(w + i), VecF::load(x + i), d0);
  double dot = d0.sum();
  for (; i < n; ++i) dot += static_cast<double>(dy[i]) * w[i] * x[i];
  const float c = static_cast<float>(dot * r * r * r / static_cast<double>(n));
  const VecF rv = VecF::set1(r), cv = VecF::set1(c);
  if (dx) {
    i = 0;
    for (; i + N <= n; i += N) {
      const VecF g = rv * VecF::load(dy + i) * VecF::load(w + i) - cv * VecF::load(x + i);
      (VecF::load(dx + i) + g).store(dx + i);
    }
    for (; i < n; ++i) dx[i] += r * dy[i] * w[i] - c * x[i];
  }
  if (dw) {
    i = 0;
    for (; i + N <= n; i += N) fma(VecF::load(dy + i) * VecF::load(x + i), rv, VecF::load(dw + i)).store(dw + i);
    for (; i < n; ++i) dw[i] += dy[i] * x[i] * r;
  }
}
void silu_mul_k(const float* g, const float* u, int64_t n, float* out) {
  const VecF one = VecF::set1(1.0f), zero = VecF::zero();
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    const VecF gv = VecF::load(g + i);
    (vdiv(gv, one + vexp(zero - gv)) * VecF::load(u + i)).store(out + i);
  }
  for (; i < n; ++i) {
    float e[N];
    vexp(VecF::set1(-g[i])).store_partial(e, 1);
    out[i] = g[i] / (1.0f + e[0]) * u[i];
  }
}
void silu_mul_backward_k(const float* d, const float* g, const float* u, int64_t n, float* dg, float* du) {
  const VecF one = VecF::set1(1.0f), zero = VecF::zero();
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    const VecF gv = VecF::load(g + i), dv = VecF::load(d + i);
    const VecF s = vdiv(one, one + vexp(zero - gv));
    if (du) fma(dv * gv, s, VecF::load(du + i)).store(du + i);
    if (dg) fma(dv * VecF::load(u + i) * s, one + gv * (one - s), VecF::load(dg + i)).store(dg + i);
  }
  for (; i < n; ++i) {
    float e[N];
    vexp(VecF::set1(-g[i])).store_partial(e, 1);
    const float s = 1.0f / (1.0f + e[0]);
    if (du) du[i] += d[i] * g[i] * s;
    if (dg) dg[i] += d[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
  }
}
void adamw_k(float* p, const float* g, float* m, float* v, int64_t n, const AdamWStep& st) {
  const VecF b1 = VecF::set1(st.b1), b2 = VecF::set1(st.b2), c1 = VecF::set1(st.one_minus_b1),
             c2 = VecF::set1(st.one_minus_b2), keep = VecF::set1(st.keep), lr = VecF::set1(st.lr_over_c1),
             sq = VecF::set1(st.sqrt_c2), eps = VecF::set1(st.eps);
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    const VecF gv = VecF::load(g + i);
    const VecF mv = b1 * VecF::load(m + i) + c1 * gv;
    const VecF vv = b2 * VecF::load(v + i) + c2 * gv * gv;
    mv.store(m + i);
    vv.store(v + i);
    const VecF pv = VecF::load(p + i) * keep;
    (pv - lr * vdiv(mv, vdiv(vsqrt(vv), sq) + eps)).store(p + i);
  }
  for (; i < n; ++i) {
    m[i] = st.b1 * m[i] + st.one_minus_b1 * g[i];
    v[i] = st.b2 * v[i] + st.one_minus_b2 * g[i] * g[i];
    p[i] *= st.keep;
    p[i] -= st.lr_over_c1 * m[i] / (std::sqrt(v[i]) / st.sqrt_c2 + st.eps);
  }
}

// q·k for one query row against keys of a tile, 4 rows at a time so each key chunk is loaded
// once; then the online-softmax update and P·V with the accumulators in registers.
template <typename L>
void attn_tile_t(const AttnTile& t) {
  using KT = typename L::T;
  const KT* K = static_cast<const KT*>(t.k);
  const KT* V = static_cast<const KT*>(t.v);
  const int hd = t.hd, n = t.n;
  const int full = hd / N * N;
  // Many rows (prefill, training) share the tile: transpose its keys once so that the scores
  // come from broadcast FMAs over whole vectors of keys instead of one reduction per key.
  constexpr int kMaxKeys = 64, kMaxHd = 256;
  alignas(64) float kt_buf[N > 1 ? kMaxHd * kMaxKeys : 1];
  const int np = (n + N - 1) / N * N;
  float* kt = nullptr;
  if (N > 1 && t.rows >= 8 && n <= kMaxKeys && hd <= kMaxHd) {
    kt = kt_buf;
    for (int j = 0; j < n; ++j) {
      const KT* kj = K + j * t.ldk;
      for (int d = 0; d < hd; ++d) kt[d * np + j] = L::one(kj + d);
    }
    for (int d = 0; d < hd; ++d)
      for (int j = n; j < np; ++j) kt[d * np + j] = 0.0f;
  }
  for (int r0 = 0; r0 < t.rows; r0 += 4) {
    const int rows = t.rows - r0 < 4 ? t.rows - r0 : 4;
    float* S[4];
    for (int a = 0; a < rows; ++a) S[a] = t.scratch + (r0 + a) * n;
    int jlo = n, jhi = 0;
    for (int a = 0; a < rows; ++a) {
      if (t.lo[r0 + a] < jlo) jlo = t.lo[r0 + a];
      if (t.hi[r0 + a] > jhi) jhi = t.hi[r0 + a];
    }
    if (kt) {  // keys in vector lanes: S[a][j0 .. j0 + N) = sum_d q[a][d] * kt[d][j0 ..]
      for (int j0 = jlo / N * N; j0 < jhi; j0 += N) {
        VecF acc[4] = {VecF::zero(), VecF::zero(), VecF::zero(), VecF::zero()};
        for (int d = 0; d < hd; ++d) {
          const VecF kv = VecF::load(kt + d * np + j0);
          for (int a = 0; a < rows; ++a) acc[a] = fma(VecF::set1(t.q[(r0 + a) * t.ldq + d]), kv, acc[a]);
        }
        const int w = np - j0 < N ? np - j0 : N;
        for (int a = 0; a < rows; ++a) acc[a].store_partial(S[a] + j0, w < n - j0 ? w : n - j0);
      }
    } else {
      for (int j = jlo; j < jhi; ++j) {
        const KT* kj = K + j * t.ldk;
        VecF acc[4] = {VecF::zero(), VecF::zero(), VecF::zero(), VecF::zero()};
        for (int c = 0; c < full; c += N) {
          const VecF kv = L::vec(kj + c);
          for (int a = 0; a < rows; ++a) acc[a] = fma(VecF::load(t.q + (r0 + a) * t.ldq + c), kv, acc[a]);
        }
        for (int a = 0; a < rows; ++a) {
          float s = acc[a].sum();
          for (int c = full; c < hd; ++c) s += t.q[(r0 + a) * t.ldq + c] * L::one(kj + c);
          S[a][j] = s;
        }
      }
    }
    for (int a = 0; a < rows; ++a) {
      const int r = r0 + a, lo = t.lo[r], hi = t.hi[r];
      if (lo >= hi) {
        for (int j = 0; j < n; ++j) S[a][j] = 0.0f;
        continue;
      }
      float mx = t.m[r];
      for (int j = lo; j < hi; ++j) mx = fmax1(mx, S[a][j]);
      const float corr = t.m[r] == -INFINITY ? 0.0f : std::exp(t.m[r] - mx);
      for (int j = 0; j < lo; ++j) S[a][j] = 0.0f;
      for (int j = hi; j < n; ++j) S[a][j] = 0.0f;
      const float sum = exp_sum_k(S[a] + lo, mx, S[a] + lo, hi - lo);
      t.l[r] = t.l[r] * corr + sum;
      t.m[r] = mx;
      float* acc = t.acc + r * hd;
      if (corr != 1.0f) scale_k(acc, corr, acc, hd);
    }
    // P·V: each value chunk loaded once for the row group.
    for (int c = 0; c < full; c += N) {
      VecF o[4];
      for (int a = 0; a < rows; ++a) o[a] = VecF::load(t.acc + (r0 + a) * hd + c);
      for (int j = jlo; j < jhi; ++j) {
        const VecF vv = L::vec(V + j * t.ldk + c);
        for (int a = 0; a < rows; ++a) o[a] = fma(VecF::set1(S[a][j]), vv, o[a]);
      }
      for (int a = 0; a < rows; ++a) o[a].store(t.acc + (r0 + a) * hd + c);
    }
    for (int c = full; c < hd; ++c)
      for (int a = 0; a < rows; ++a) {
        float s = t.acc[(r0 + a) * hd + c];
        for (int j = jlo; j < jhi; ++j) s += S[a][j] * L::one(V + j * t.ldk + c);
        t.acc[(r0 + a) * hd + c] = s;
      }
  }
}

// S = a b^T, four rows of a at a time so each row of b is loaded once per group.
void abt_k(const float* a, int64_t lda, int rows, const float* b, int64_t ldb, int n, int hd, float* S, int64_t lds) {
  const int full = hd / N * N;
  for (int r0 = 0; r0 < rows; r0 += 4) {
    const int m = rows - r0 < 4 ? rows - r0 : 4;
    for (int j = 0; j < n; ++j) {
      const float* bj = b + j * ldb;
      VecF acc[4] = {VecF::zero(), VecF::zero(), VecF::zero(), VecF::zero()};
      for (int c = 0; c < full; c += N) {
        const VecF bv = VecF::load(bj + c);
        for (int k = 0; k < m; ++k) acc[k] = fma(VecF::load(a + (r0 + k) * lda + c), bv, acc[k]);
      }
      for (int k = 0; k < m; ++k) {
        float s = acc[k].sum();
        for (int c = full; c < hd; ++c) s += a[(r0 + k) * lda + c] * bj[c];
        S[(r0 + k) * lds + j] = s;
      }
    }
  }
}

// C += A B: per row, the output chunk stays in a register while the keys stream by.
void ab_acc_k(const float* A, int64_t lda, int rows, int n, const float* B, int64_t ldb, int hd, float* C,
              int64_t ldc) {
  const int full = hd / N * N;
  for (int r = 0; r < rows; ++r) {
    const float* ar = A + r * lda;
    float* cr = C + r * ldc;
    for (int c = 0; c < full; c += N) {
      VecF o = VecF::load(cr + c);
      for (int j = 0; j < n; ++j)
        if (ar[j] != 0.0f) o = fma(VecF::set1(ar[j]), VecF::load(B + j * ldb + c), o);
      o.store(cr + c);
    }
    for (int c = full; c < hd; ++c) {
      float o = cr[c];
      for (int j = 0; j < n; ++j) o += ar[j] * B[j * ldb + c];
      cr[c] = o;
    }
  }
}

// C += A^T B: per output row j (a key), sum over the rows r of A's column j times B's row r.
void atb_acc_k(const float* A, int64_t lda, int rows, int n, const float* B, int64_t ldb, int hd, float* C,
               int64_t ldc) {
  const int full = hd / N * N;
  for (int j = 0; j < n; ++j) {
    float* cj = C + j * ldc;
    for (int c = 0; c < full; c += N) {
      VecF o = VecF::load(cj + c);
      for (int r = 0; r < rows; ++r) {
        const float w = A[r * lda + j];
        if (w != 0.0f) o = fma(VecF::set1(w), VecF::load(B + r * ldb + c), o);
      }
      o.store(cj + c);
    }
    for (int c = full; c < hd; ++c) {
      float o = cj[c];
      for (int r = 0; r < rows; ++r) o += A[r * lda + j] * B[r * ldb + c];
      cj[c] = o;
    }
  }
}

float fma_probe_k(int64_t iters) {
  VecF a[12];
  for (int k = 0; k < 12; ++k) a[k] = VecF::set1(0.001f * static_cast<float>(k));
  const VecF m = VecF::set1(0.999f), c = VecF::set1(0.0001f);
  for (int64_t i = 0; i < iters; ++i)
    for (int k = 0; k < 12; ++k) a[k] = fma(a[k], m, c);
  VecF s = VecF::zero();
  for (int k = 0; k < 12; ++k) s = s + a[k];
  return s.sum();
}

float read_probe_k(const float* p, int64_t n) {
  VecF a[8];
  for (auto& v : a) v = VecF::zero();
  int64_t i = 0;
  for (; i + 8 * N <= n; i += 8 * N) {
    prefetch(p + i + 2 * kAhead);
    for (int k = 0; k < 8; ++k) a[k] = a[k] + VecF::load(p + i + k * N);
  }
  VecF s = VecF::zero();
  for (auto& v : a) s = s + v;
  float r = s.sum();
  for (; i < n; ++i) r += p[i];
  return r;
}

void attn_tile_f32(const AttnTile& t) {
  attn_tile_t<LF32>(t);
}
void attn_tile_bf16(const AttnTile& t) {
  attn_tile_t<LBf16>(t);
}
void attn_tile_f16(const AttnTile& t) {
  attn_tile_t<LF16>(t);
}

}  // namespace
}  // namespace yak::ops::cpu::YAK_KNS

#include "yak/ops/cpu/quant_kernels_impl.h"

namespace yak::ops::cpu::YAK_KNS {

const KernelTable kTable = {
    .isa = YAK_KISA,
    .amx = nullptr,
    .bf16_to_f32 = bf16_to_f32_k,
    .f16_to_f32 = f16_to_f32_k,
    .f32_to_bf16 = f32_to_bf16_k,
    .f32_to_f16 = f32_to_f16_k,
    .dot_f32 = dot_f32_k,
    .dot_bf16 = dot_bf16_k,
    .dot_f16 = dot_f16_k,
    .gemv_f32 = gemv_f32_k,
    .prep_bf16 = prep_bf16_k,
    .gemv_bf16 = gemv_bf16_k,
    .gemv_f16 = gemv_f16_k,
    .axpy = axpy_k,
    .add = add_k,
    .scale = scale_k,
    .mul = mul_k,
    .max = max_k,
    .exp_sum = exp_sum_k,
    .sum_squares = sum_squares_k,
    .rms_norm = rms_norm_k,
    .rms_norm_backward = rms_norm_backward_k,
    .silu_mul = silu_mul_k,
    .silu_mul_backward = silu_mul_backward_k,
    .adamw = adamw_k,
    .abt = abt_k,
    .ab_acc = ab_acc_k,
    .atb_acc = atb_acc_k,
    .fma_probe = fma_probe_k,
    .read_probe = read_probe_k,
    .lanes = N,
    .attn_tile = {attn_tile_f32, attn_tile_bf16, attn_tile_f16},
    .vec_dot_q = {vec_dot_q8_0_k, vec_dot_q4_0_k, vec_dot_q4_1_k, vec_dot_q5_0_k, vec_dot_q5_1_k, vec_dot_q2_k_k,
                  vec_dot_q3_k_k, vec_dot_q4_k_k, vec_dot_q5_k_k, vec_dot_q6_k_k},
    .vec_dot4_q = {vec_dot_legacy_rows<Q8_0Levels>, vec_dot_legacy_rows<Q4_0Levels>, vec_dot_legacy_rows<Q4_1Levels>,
                   vec_dot_legacy_rows<Q5_0Levels>, vec_dot_legacy_rows<Q5_1Levels>, vec_dot4_generic<vec_dot_q2_k_k>,
                   vec_dot4_generic<vec_dot_q3_k_k>, vec_dot4_generic<vec_dot_q4_k_k>, vec_dot4_generic<vec_dot_q5_k_k>,
                   vec_dot4_generic<vec_dot_q6_k_k>},
    .dequant_q = {dequant_q8_0_k, dequant_q4_0_k, quant::dequantize_q4_1, dequant_q5_0_k, quant::dequantize_q5_1,
                  quant::dequantize_q2_k, quant::dequantize_q3_k, dequant_q4_k_k, dequant_q5_k_k, dequant_q6_k_k},
};

}  // namespace yak::ops::cpu::YAK_KNS
