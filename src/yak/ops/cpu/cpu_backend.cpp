// The CPU backend's row-wise and elementwise ops, forward and backward side by side. Matrix
// products live in gemm.cpp, attention in attention.cpp.
#include "yak/ops/cpu/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "yak/base/error.h"
#include "yak/ops/cpu/kernels.h"
#include "yak/ops/cpu/thread_pool.h"
#include "yak/ops/cpu/type_traits.h"

namespace yak::ops::cpu {
namespace {

// A tensor as rows of contiguous floats (a 1-D tensor is one row).
struct Rows {
  float* p;
  int64_t rows, cols, ld;
  float* row(int64_t r) const { return p + r * ld; }
};
Rows rows_of(const Tensor& t) {
  float* p = const_cast<float*>(t.data<float>());
  if (t.ndim() <= 1) return {p, 1, t.numel(), t.numel()};
  return {p, t.dim(0), t.row_size(), t.row_stride()};
}
// Two same-shaped tensors as rows; contiguous pairs become one long row.
bool flat_pair(const Tensor& a, const Tensor& b) {
  return a.is_contiguous() && b.is_contiguous();
}

// Work of n rows of `cols` elements: parallel only when there is enough of it.
template <typename F>
void for_rows(int64_t n, int64_t cols, F&& fn) {
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1));
  parallel_for(n, grain, [&](int64_t a, int64_t b) {
    for (int64_t r = a; r < b; ++r) fn(r);
  });
}
// Flat work over n elements in chunks.
template <typename F>
void for_chunks(int64_t n, F&& fn) {
  parallel_for(n, 1 << 15, [&](int64_t a, int64_t b) { fn(a, b - a); });
}

}  // namespace

bool CpuBackend::supports(Op op, DType dtype) const {
  switch (op) {
    case Op::Linear:
    case Op::LinearBackward:
    case Op::Embedding:
      return cpu_traits(dtype) != nullptr;
    case Op::KvWrite:
    case Op::Attention:
    case Op::Convert:
      return dtype == DType::F32 || dtype == DType::BF16 || dtype == DType::F16;
    default:
      return dtype == DType::F32;
  }
}

void CpuBackend::embedding(const Tensor& E, std::span<const int32_t> ids, Tensor& out) {
  const int64_t D = E.dim(1);
  const CpuTypeTraits* tr = cpu_traits(E.dtype());
  if (!(tr != nullptr)) [[unlikely]]
    throw Error(std::string("embedding: dtype ") + dtype_name(E.dtype()) + " is not supported on the CPU");
  const auto* base = static_cast<const uint8_t*>(E.raw());
  const size_t row = dtype_bytes(E.dtype(), E.row_stride());
  Rows o = rows_of(out);
  for_rows(static_cast<int64_t>(ids.size()), D, [&](int64_t i) { tr->to_f32(base + ids[i] * row, o.row(i), D); });
}

void CpuBackend::embedding_backward(const Tensor& dout, std::span<const int32_t> ids, Tensor& dE) {
  const int64_t D = dE.dim(1);
  Rows d = rows_of(dout), g = rows_of(dE);
  const KernelTable& k = kernels();
  // Serial over ids: two ids may name the same row.
  for (size_t i = 0; i < ids.size(); ++i) k.add(g.row(ids[i]), d.row(static_cast<int64_t>(i)), g.row(ids[i]), D);
}

void CpuBackend::rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& out) {
  const int64_t n = w.numel();
  const float* wp = w.data<float>();
  Rows xr = rows_of(x), o = rows_of(out);
  const int64_t per_row = xr.cols / n;  // groups per row (heads when w is [head_dim])
  const KernelTable& k = kernels();
  for_rows(xr.rows * per_row, n, [&](int64_t g) {
    const int64_t r = g / per_row, c = (g % per_row) * n;
    k.rms_norm(xr.row(r) + c, wp, eps, n, o.row(r) + c);
  });
}

void CpuBackend::rms_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, float eps, Tensor* dx,
                                   Tensor* dw) {
  const int64_t n = w.numel();
  const float* wp = w.data<float>();
  Rows xr = rows_of(x), d = rows_of(dy);
  const int64_t per_row = xr.cols / n, groups = xr.rows * per_row;
  const KernelTable& k = kernels();
  Rows gx = dx ? rows_of(*dx) : Rows{nullptr, 0, 0, 0};
  auto rstd = [&](const float* xp) {
    return static_cast<float>(1.0 / std::sqrt(k.sum_squares(xp, n) / static_cast<double>(n) + eps));
  };
  if (dx)
    for_rows(groups, n, [&](int64_t g) {
      const int64_t r = g / per_row, c = (g % per_row) * n;
      const float* xp = xr.row(r) + c;
      k.rms_norm_backward(d.row(r) + c, xp, wp, rstd(xp), n, gx.row(r) + c, nullptr);
    });
  if (dw) {
    float* gw = dw->data<float>();
    for (int64_t g = 0; g < groups; ++g) {  // serial: every group adds into the same dw
      const int64_t r = g / per_row, c = (g % per_row) * n;
      const float* xp = xr.row(r) + c;
      const float* dp = d.row(r) + c;
      const float rs = rstd(xp);
      for (int64_t i = 0; i < n; ++i) gw[i] += dp[i] * xp[i] * rs;
    }
  }
}

void CpuBackend::rope(const Tensor& x, const Tensor& cs, int64_t hd, Tensor& out) {
  Rows xr = rows_of(x), o = rows_of(out);
  const float* c = cs.data<float>();
  const int64_t heads = xr.cols / hd, h = hd / 2;
  for_rows(xr.rows, xr.cols, [&](int64_t t) {
    const float* cos = c + t * hd;
    const float* sin = cos + h;
    for (int64_t k = 0; k < heads; ++k) {
      const float* a = xr.row(t) + k * hd;
      float* y = o.row(t) + k * hd;
      for (int64_t i = 0; i < h; ++i) {
        const float u = a[i], v = a[i + h];
        y[i] = u * cos[i] - v * sin[i];
        y[i + h] = v * cos[i] + u * sin[i];
      }
    }
  });
}

void CpuBackend::rope_backward(const Tensor& dy, const Tensor& cs, int64_t hd, Tensor& dx) {
  Rows d = rows_of(dy), g = rows_of(dx);
  const float* c = cs.data<float>();
  const int64_t heads = d.cols / hd, h = hd / 2;
  for_rows(d.rows, d.cols, [&](int64_t t) {
    const float* cos = c + t * hd;
    const float* sin = cos + h;
    for (int64_t k = 0; k < heads; ++k) {
      const float* a = d.row(t) + k * hd;
      float* o = g.row(t) + k * hd;
      for (int64_t i = 0; i < h; ++i) {  // the transposed rotation
        o[i] += a[i] * cos[i] + a[i + h] * sin[i];
        o[i + h] += -a[i] * sin[i] + a[i + h] * cos[i];
      }
    }
  });
}

void CpuBackend::swiglu(const Tensor& gate, const Tensor& up, Tensor& out) {
  Rows g = rows_of(gate), u = rows_of(up), o = rows_of(out);
  const KernelTable& k = kernels();
  for_rows(g.rows, g.cols, [&](int64_t r) { k.silu_mul(g.row(r), u.row(r), g.cols, o.row(r)); });
}

void CpuBackend::swiglu_backward(const Tensor& dout, const Tensor& gate, const Tensor& up, Tensor* dgate, Tensor* dup) {
  Rows d = rows_of(dout), g = rows_of(gate), u = rows_of(up);
  Rows dg = dgate ? rows_of(*dgate) : Rows{nullptr, 0, 0, 0}, du = dup ? rows_of(*dup) : Rows{nullptr, 0, 0, 0};
  const KernelTable& k = kernels();
  for_rows(g.rows, g.cols, [&](int64_t r) {
    k.silu_mul_backward(d.row(r), g.row(r), u.row(r), g.cols, dgate ? dg.row(r) : nullptr, dup ? du.row(r) : nullptr);
  });
}

namespace {
// A row's mean and 1 / sqrt(biased variance + eps), accumulated in double.
std::pair<double, double> row_moments(const float* x, int64_t n, float eps) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += x[i];
  const double mean = s / static_cast<double>(n);
  double v = 0;
  for (int64_t i = 0; i < n; ++i) v += (x[i] - mean) * (x[i] - mean);
  return {mean, 1.0 / std::sqrt(v / static_cast<double>(n) + eps)};
}
}  // namespace

void CpuBackend::layer_norm(const Tensor& x, const Tensor& w, const Tensor* b, float eps, Tensor& out) {
  Rows xr = rows_of(x), o = rows_of(out);
  const float* wp = w.data<float>();
  const float* bp = b && b->defined() ? b->data<float>() : nullptr;
  const int64_t n = xr.cols;
  for_rows(xr.rows, n, [&](int64_t r) {
    const float* a = xr.row(r);
    float* y = o.row(r);
    const auto [mean, rstd] = row_moments(a, n, eps);
    for (int64_t i = 0; i < n; ++i)
      y[i] = static_cast<float>((a[i] - mean) * rstd) * wp[i] + (bp ? bp[i] : 0.0f);
  });
}

// With xh = (x - mean) rstd and g = dy w:  dx = rstd (g - mean(g) - xh mean(g xh));
// dw = Σ_rows dy xh; db = Σ_rows dy.
void CpuBackend::layer_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, float eps, Tensor* dx,
                                     Tensor* dw, Tensor* db) {
  Rows xr = rows_of(x), d = rows_of(dy);
  const float* wp = w.data<float>();
  const int64_t n = xr.cols;
  if (dx) {
    Rows gx = rows_of(*dx);
    for_rows(xr.rows, n, [&](int64_t r) {
      const float* a = xr.row(r);
      const float* g = d.row(r);
      const auto [mean, rstd] = row_moments(a, n, eps);
      double sg = 0, sgx = 0;
      for (int64_t i = 0; i < n; ++i) {
        const double gi = static_cast<double>(g[i]) * wp[i];
        sg += gi;
        sgx += gi * (a[i] - mean) * rstd;
      }
      sg /= static_cast<double>(n);
      sgx /= static_cast<double>(n);
      float* o = gx.row(r);
      for (int64_t i = 0; i < n; ++i) {
        const double xh = (a[i] - mean) * rstd;
        o[i] += static_cast<float>(rstd * (static_cast<double>(g[i]) * wp[i] - sg - xh * sgx));
      }
    });
  }
  if (dw || db) {  // serial over rows: every row adds into the same dw, db
    float* gw = dw ? dw->data<float>() : nullptr;
    float* gb = db ? db->data<float>() : nullptr;
    for (int64_t r = 0; r < xr.rows; ++r) {
      const float* a = xr.row(r);
      const float* g = d.row(r);
      const auto [mean, rstd] = row_moments(a, n, eps);
      for (int64_t i = 0; i < n; ++i) {
        if (gw) gw[i] += g[i] * static_cast<float>((a[i] - mean) * rstd);
        if (gb) gb[i] += g[i];
      }
    }
  }
}

namespace {
constexpr double kSqrt2OverPi = 0.79788456080286535588, kGeluCubic = 0.044715;
// GELU and its derivative at one point (double inside, as the reference formulas).
inline double gelu_value(double x, GeluKind kind) {
  if (kind == GeluKind::Erf) return 0.5 * x * (1.0 + std::erf(x * 0.70710678118654752440));
  return 0.5 * x * (1.0 + std::tanh(kSqrt2OverPi * (x + kGeluCubic * x * x * x)));
}
inline double gelu_slope(double x, GeluKind kind) {
  if (kind == GeluKind::Erf)
    return 0.5 * (1.0 + std::erf(x * 0.70710678118654752440)) + x * 0.39894228040143267794 * std::exp(-0.5 * x * x);
  const double u = kSqrt2OverPi * (x + kGeluCubic * x * x * x), t = std::tanh(u);
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * kSqrt2OverPi * (1.0 + 3.0 * kGeluCubic * x * x);
}
}  // namespace

void CpuBackend::gelu(const Tensor& x, GeluKind kind, Tensor& out) {
  Rows xr = rows_of(x), o = rows_of(out);
  for_rows(xr.rows, xr.cols, [&](int64_t r) {
    const float* a = xr.row(r);
    float* y = o.row(r);
    for (int64_t i = 0; i < xr.cols; ++i) y[i] = static_cast<float>(gelu_value(a[i], kind));
  });
}

void CpuBackend::gelu_backward(const Tensor& dout, const Tensor& x, GeluKind kind, Tensor& dx) {
  Rows xr = rows_of(x), d = rows_of(dout), g = rows_of(dx);
  for_rows(xr.rows, xr.cols, [&](int64_t r) {
    const float* a = xr.row(r);
    const float* dp = d.row(r);
    float* o = g.row(r);
    for (int64_t i = 0; i < xr.cols; ++i) o[i] += static_cast<float>(dp[i] * gelu_slope(a[i], kind));
  });
}

void CpuBackend::softmax(const Tensor& x, Tensor& out) {
  Rows xr = rows_of(x), o = rows_of(out);
  const KernelTable& k = kernels();
  for_rows(xr.rows, xr.cols, [&](int64_t r) {
    const float m = k.max(xr.row(r), xr.cols);
    if (m == -INFINITY) {
      std::fill(o.row(r), o.row(r) + xr.cols, 0.0f);
      return;
    }
    const float s = k.exp_sum(xr.row(r), m, o.row(r), xr.cols);
    k.scale(o.row(r), 1.0f / s, o.row(r), xr.cols);
  });
}

void CpuBackend::softmax_backward(const Tensor& dy, const Tensor& y, Tensor& dx) {
  Rows d = rows_of(dy), yr = rows_of(y), g = rows_of(dx);
  const KernelTable& k = kernels();
  for_rows(yr.rows, yr.cols, [&](int64_t r) {
    const float dot = k.dot_f32(d.row(r), yr.row(r), yr.cols);
    float* o = g.row(r);
    const float* a = d.row(r);
    const float* p = yr.row(r);
    for (int64_t j = 0; j < yr.cols; ++j) o[j] += p[j] * (a[j] - dot);
  });
}

namespace {

// A row's softmax pieces: its max m and log Σ exp(z - m), kept apart so that z - lse is taken as
// (z - m) - log_sum without the rounding of a large lse. p (optional, V floats) gets exp(z - m).
struct RowSoftmax {
  float m, log_sum, sum;
};
RowSoftmax row_softmax(const KernelTable& k, const float* row, int64_t V, float* p) {
  const float m = k.max(row, V);
  if (m == -INFINITY) return {m, 0.0f, 0.0f};
  thread_local std::vector<float> tmp;
  if (!p) {
    if (tmp.size() < static_cast<size_t>(V)) tmp.resize(static_cast<size_t>(V));
    p = tmp.data();
  }
  const float s = k.exp_sum(row, m, p, V);
  return {m, std::log(s), s};
}

float* row_scratch(int64_t V) {
  thread_local std::vector<float> p;
  if (p.size() < static_cast<size_t>(V)) p.resize(static_cast<size_t>(V));
  return p.data();
}

}  // namespace

void CpuBackend::token_logprobs(const Tensor& logits, std::span<const int32_t> targets, int32_t ignore, Tensor& lp,
                                Tensor& lse) {
  Rows L = rows_of(logits);
  float* out = lp.data<float>();
  float* ls = lse.data<float>();
  const KernelTable& k = kernels();
  for_rows(L.rows, L.cols, [&](int64_t r) {
    if (targets[r] == ignore) {
      out[r] = 0.0f;
      ls[r] = 0.0f;
      return;
    }
    const RowSoftmax s = row_softmax(k, L.row(r), L.cols, nullptr);
    ls[r] = s.m + s.log_sum;
    out[r] = (L.row(r)[targets[r]] - s.m) - s.log_sum;
  });
}

void CpuBackend::token_logprobs_backward(const Tensor& dlp, const Tensor& logits, const Tensor& /*lse*/,
                                         std::span<const int32_t> targets, int32_t ignore, Tensor& dlogits) {
  Rows L = rows_of(logits), G = rows_of(dlogits);
  const float* d = dlp.data<float>();
  const KernelTable& k = kernels();
  for_rows(L.rows, L.cols, [&](int64_t r) {
    if (targets[r] == ignore || d[r] == 0.0f) return;
    // d/dz of (z_t - lse) = onehot(t) - softmax; softmax recomputed as exp(z - m) / Σ
    float* p = row_scratch(L.cols);
    const RowSoftmax s = row_softmax(k, L.row(r), L.cols, p);
    k.axpy(-d[r] / s.sum, p, G.row(r), L.cols);
    G.row(r)[targets[r]] += d[r];
  });
}

void CpuBackend::entropy(const Tensor& logits, Tensor& H, Tensor& lse) {
  Rows L = rows_of(logits);
  float* h = H.data<float>();
  float* ls = lse.data<float>();
  const KernelTable& k = kernels();
  for_rows(L.rows, L.cols, [&](int64_t r) {
    float* p = row_scratch(L.cols);
    const RowSoftmax s = row_softmax(k, L.row(r), L.cols, p);
    ls[r] = s.m + s.log_sum;
    // H = lse - Σ p z = log_sum - Σ p (z - m)
    const float* z = L.row(r);
    double pz = 0;
    for (int64_t j = 0; j < L.cols; ++j) pz += static_cast<double>(p[j]) * (z[j] - s.m);
    h[r] = static_cast<float>(s.log_sum - pz / s.sum);
  });
}

void CpuBackend::entropy_backward(const Tensor& dH, const Tensor& logits, const Tensor& /*lse*/, const Tensor& H,
                                  Tensor& dlogits) {
  Rows L = rows_of(logits), G = rows_of(dlogits);
  const float* d = dH.data<float>();
  const float* h = H.data<float>();
  const KernelTable& k = kernels();
  for_rows(L.rows, L.cols, [&](int64_t r) {
    if (d[r] == 0.0f) return;
    float* p = row_scratch(L.cols);
    const RowSoftmax s = row_softmax(k, L.row(r), L.cols, p);
    const float* z = L.row(r);
    float* g = G.row(r);
    const float inv = 1.0f / s.sum;
    // dH/dz_j = -p_j (log p_j + H)
    for (int64_t j = 0; j < L.cols; ++j) g[j] += -d[r] * (p[j] * inv) * (((z[j] - s.m) - s.log_sum) + h[r]);
  });
}

void CpuBackend::add(const Tensor& a, const Tensor& b, Tensor& out) {
  const KernelTable& k = kernels();
  if (flat_pair(a, b) && out.is_contiguous()) {
    const float* ap = a.data<float>();
    const float* bp = b.data<float>();
    float* o = out.data<float>();
    for_chunks(a.numel(), [&](int64_t i, int64_t n) { k.add(ap + i, bp + i, o + i, n); });
    return;
  }
  Rows A = rows_of(a), B = rows_of(b), O = rows_of(out);
  for_rows(A.rows, A.cols, [&](int64_t r) { k.add(A.row(r), B.row(r), O.row(r), A.cols); });
}

void CpuBackend::scale(const Tensor& x, float s, Tensor& out) {
  const KernelTable& k = kernels();
  if (flat_pair(x, out)) {
    const float* xp = x.data<float>();
    float* o = out.data<float>();
    for_chunks(x.numel(), [&](int64_t i, int64_t n) { k.scale(xp + i, s, o + i, n); });
    return;
  }
  Rows X = rows_of(x), O = rows_of(out);
  for_rows(X.rows, X.cols, [&](int64_t r) { k.scale(X.row(r), s, O.row(r), X.cols); });
}

void CpuBackend::axpy(float alpha, const Tensor& x, Tensor& y) {
  const KernelTable& k = kernels();
  if (flat_pair(x, y)) {
    const float* xp = x.data<float>();
    float* yp = y.data<float>();
    for_chunks(x.numel(), [&](int64_t i, int64_t n) { k.axpy(alpha, xp + i, yp + i, n); });
    return;
  }
  Rows X = rows_of(x), Y = rows_of(y);
  for_rows(X.rows, X.cols, [&](int64_t r) { k.axpy(alpha, X.row(r), Y.row(r), X.cols); });
}

void CpuBackend::mul(const Tensor& a, const Tensor& b, Tensor& out) {
  const KernelTable& k = kernels();
  if (flat_pair(a, b) && out.is_contiguous()) {
    const float* ap = a.data<float>();
    const float* bp = b.data<float>();
    float* o = out.data<float>();
    for_chunks(a.numel(), [&](int64_t i, int64_t n) { k.mul(ap + i, bp + i, o + i, n); });
    return;
  }
  Rows A = rows_of(a), B = rows_of(b), O = rows_of(out);
  for_rows(A.rows, A.cols, [&](int64_t r) { k.mul(A.row(r), B.row(r), O.row(r), A.cols); });
}

void CpuBackend::fill(Tensor& t, float value) {
  Rows T = rows_of(t);
  for (int64_t r = 0; r < T.rows; ++r) std::fill(T.row(r), T.row(r) + T.cols, value);
}

void CpuBackend::convert(const Tensor& src, Tensor& dst) {
  const CpuTypeTraits* from = cpu_traits(src.dtype());
  const CpuTypeTraits* to = cpu_traits(dst.dtype());
  if (!(from && to && to->from_f32)) [[unlikely]]
    throw Error(std::string("convert: ") + dtype_name(src.dtype()) + " to " + dtype_name(dst.dtype()) +
                " is not supported");
  const int64_t rows = src.ndim() ? src.dim(0) : 1, n = src.ndim() ? src.row_size() : 1;
  const auto* s = static_cast<const uint8_t*>(src.raw());
  auto* d = static_cast<uint8_t*>(dst.raw());
  const size_t ss = dtype_bytes(src.dtype(), src.ndim() ? src.row_stride() : 1);
  const size_t ds = dtype_bytes(dst.dtype(), dst.ndim() ? dst.row_stride() : 1);
  if (src.dtype() == DType::F32) {
    for_rows(rows, n, [&](int64_t r) { to->from_f32(reinterpret_cast<const float*>(s + r * ss), d + r * ds, n); });
  } else if (dst.dtype() == DType::F32) {
    for_rows(rows, n, [&](int64_t r) { from->to_f32(s + r * ss, reinterpret_cast<float*>(d + r * ds), n); });
  } else {
    for_rows(rows, n, [&](int64_t r) {
      thread_local std::vector<float> tmp;
      if (tmp.size() < static_cast<size_t>(n)) tmp.resize(static_cast<size_t>(n));
      from->to_f32(s + r * ss, tmp.data(), n);
      to->from_f32(tmp.data(), d + r * ds, n);
    });
  }
}

void CpuBackend::gather_rows(const Tensor& x, std::span<const int32_t> rows, Tensor& out) {
  const int64_t D = x.ndim() == 1 ? 1 : x.row_size();
  const float* xp = x.data<float>();
  float* o = out.data<float>();
  const int64_t ld = x.ndim() == 1 ? 1 : x.row_stride();
  for (size_t r = 0; r < rows.size(); ++r) std::memcpy(o + r * D, xp + rows[r] * ld, static_cast<size_t>(D) * 4);
}

void CpuBackend::scatter_add_rows(const Tensor& d, std::span<const int32_t> rows, Tensor& dx) {
  const int64_t D = dx.ndim() == 1 ? 1 : dx.row_size();
  const float* dp = d.data<float>();
  float* g = dx.data<float>();
  const int64_t ld = dx.ndim() == 1 ? 1 : dx.row_stride();
  const KernelTable& k = kernels();
  for (size_t r = 0; r < rows.size(); ++r) k.add(g + rows[r] * ld, dp + r * D, g + rows[r] * ld, D);
}

void CpuBackend::segment_sum(const Tensor& x, std::span<const int32_t> segment, Tensor& out) {
  const float* xp = x.data<float>();
  float* o = out.data<float>();
  for (size_t i = 0; i < segment.size(); ++i) o[segment[i]] += xp[i];
}

void CpuBackend::dropout(const Tensor& x, float p, uint64_t seed, Tensor& out) {
  const float* xp = x.data<float>();
  float* o = out.data<float>();
  const float keep = 1.0f / (1.0f - p);
  for_chunks(x.numel(), [&](int64_t a, int64_t n) {
    for (int64_t i = a; i < a + n; ++i) {
      uint64_t z = seed + 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(i + 1);  // splitmix64
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      z ^= z >> 31;
      o[i] = static_cast<double>(z >> 11) * 0x1.0p-53 < p ? 0.0f : xp[i] * keep;
    }
  });
}

double CpuBackend::sum_squares(const Tensor& x) {
  const float* p = x.data<float>();
  const KernelTable& k = kernels();
  const int64_t n = x.numel();
  const int64_t chunks = std::min<int64_t>(64, std::max<int64_t>(1, n / (1 << 16)));
  double part[64] = {};
  parallel_for(chunks, 1, [&](int64_t a, int64_t b) {
    for (int64_t c = a; c < b; ++c) {
      const int64_t lo = n * c / chunks, hi = n * (c + 1) / chunks;
      part[c] = k.sum_squares(p + lo, hi - lo);
    }
  });
  double s = 0;
  for (int64_t c = 0; c < chunks; ++c) s += part[c];
  return s;
}

void CpuBackend::adamw(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const AdamWArgs& a) {
  const double c1 = 1.0 - std::pow(a.beta1, static_cast<double>(a.step));
  const double c2 = 1.0 - std::pow(a.beta2, static_cast<double>(a.step));
  AdamWStep st;
  st.lr_over_c1 = static_cast<float>(a.lr / c1);
  st.b1 = static_cast<float>(a.beta1);
  st.b2 = static_cast<float>(a.beta2);
  st.sqrt_c2 = static_cast<float>(std::sqrt(c2));
  st.eps = static_cast<float>(a.eps);
  st.keep = a.decay ? static_cast<float>(1.0 - a.lr * a.weight_decay) : 1.0f;
  st.one_minus_b1 = static_cast<float>(1.0 - a.beta1);
  st.one_minus_b2 = static_cast<float>(1.0 - a.beta2);
  float* p = param.data<float>();
  const float* g = grad.data<float>();
  float* mp = m.data<float>();
  float* vp = v.data<float>();
  const KernelTable& k = kernels();
  parallel_for(param.numel(), 4096,
               [&](int64_t lo, int64_t hi) { k.adamw(p + lo, g + lo, mp + lo, vp + lo, hi - lo, st); });
}

}  // namespace yak::ops::cpu
