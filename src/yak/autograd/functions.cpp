#include "yak/autograd/functions.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "yak/base/error.h"
#include "yak/base/thread_pool.h"
#include "yak/ops/cpu/kernels.h"
#include "yak/ops/linear.h"

namespace yak::ag {

namespace {

Var make_out(Shape shape, bool rec) {
  return Var(Tensor::empty(std::move(shape)), rec);
}

void rows_parallel(int64_t n, const std::function<void(int64_t)>& fn) {
  parallel_for(n, 8, [&](int64_t a, int64_t b) {
    for (int64_t i = a; i < b; ++i) fn(i);
  });
}

const Tensor& f32_weight(const Var& W, Tensor& scratch) {
  if (W.value().dtype() == DType::F32) return W.value();
  scratch = W.value().to_f32();
  return scratch;
}

}  // namespace

Var embedding(const Var& E, std::span<const int32_t> ids) {
  const Tensor& t = E.value();
  const int64_t V = t.dim(0), D = t.dim(1), n = static_cast<int64_t>(ids.size());
  const bool rec = recording({&E});
  Var out = make_out({n, D}, rec);
  const size_t row = dtype_bytes(t.dtype(), D);
  for (int64_t i = 0; i < n; ++i) {
    check(ids[i] >= 0 && ids[i] < V,
          "embedding: token id " + std::to_string(ids[i]) + " is outside the vocabulary of " + std::to_string(V));
    convert_to_f32(t.dtype(), static_cast<const uint8_t*>(t.raw()) + ids[i] * row, out.f32() + i * D, D);
  }
  if (rec) {
    std::vector<int32_t> keep(ids.begin(), ids.end());
    active_tape()->push([E, out, keep, D]() mutable {
      if (!out.has_grad()) return;
      float* g = E.grad_f32();
      const float* go = out.grad_f32();
      for (size_t i = 0; i < keep.size(); ++i)
        for (int64_t d = 0; d < D; ++d) g[keep[i] * D + d] += go[i * D + d];
    });
  }
  return out;
}

Var linear(const Var& x, const Var& W, const Var* bias) {
  const int64_t M = x.dim(0), K = x.dim(1), N = W.dim(0);
  check(W.dim(1) == K,
        "linear: input has " + std::to_string(K) + " features but the weight expects " + std::to_string(W.dim(1)));
  const bool rec = recording({&x, &W, bias});
  Var out = make_out({M, N}, rec);
  ops::linear(x.f32(), M, W.value(), bias ? &bias->value() : nullptr, out.f32());
  if (rec) {
    Var b = bias ? *bias : Var();
    active_tape()->push([x, W, b, out, M, K, N]() mutable {
      if (!out.has_grad()) return;
      const float* dy = out.grad_f32();
      if (x.requires_grad()) {
        Tensor scratch;
        const Tensor& w = f32_weight(W, scratch);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, N, 1.0f, dy, N, w.data<float>(), K, 1.0f,
                    x.grad_f32(), K);
      }
      if (W.requires_grad()) {
        check(W.value().dtype() == DType::F32, "linear: a trained weight must be f32 (master weights)");
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, K, M, 1.0f, dy, N, x.f32(), K, 1.0f, W.grad_f32(), K);
      }
      if (b.defined() && b.requires_grad()) {
        float* db = b.grad_f32();
        for (int64_t m = 0; m < M; ++m)
          for (int64_t n = 0; n < N; ++n) db[n] += dy[m * N + n];
      }
    });
  }
  return out;
}

Var rms_norm(const Var& x, const Var& w, float eps) {
  const int64_t n = w.numel(), groups = x.numel() / n;
  check(x.numel() % n == 0,
        "rms_norm: size " + std::to_string(x.numel()) + " is not a multiple of " + std::to_string(n));
  const bool rec = recording({&x, &w});
  Var out = make_out(x.value().shape(), rec);
  const float* wp = w.f32();
  rows_parallel(groups, [&](int64_t g) { ops::cpu::rms_norm(x.f32() + g * n, wp, eps, n, out.f32() + g * n); });
  if (rec) {
    active_tape()->push([x, w, out, n, groups, eps]() mutable {
      if (!out.has_grad()) return;
      const float* dy = out.grad_f32();
      const float* xp = x.f32();
      const float* wp = w.f32();
      std::vector<float> r(static_cast<size_t>(groups));
      for (int64_t g = 0; g < groups; ++g) {
        double ss = 0;
        for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(xp[g * n + i]) * xp[g * n + i];
        r[g] = static_cast<float>(1.0 / std::sqrt(ss / n + eps));
      }
      if (x.requires_grad()) {
        float* dx = x.grad_f32();
        rows_parallel(groups, [&](int64_t g) {
          const float* xr = xp + g * n;
          const float* dr = dy + g * n;
          double dot = 0;
          for (int64_t i = 0; i < n; ++i) dot += static_cast<double>(dr[i]) * wp[i] * xr[i];
          const double rg = r[g], c = dot * rg * rg * rg / n;
          for (int64_t i = 0; i < n; ++i) dx[g * n + i] += static_cast<float>(rg * dr[i] * wp[i] - c * xr[i]);
        });
      }
      if (w.requires_grad()) {
        float* dw = w.grad_f32();
        for (int64_t g = 0; g < groups; ++g)
          for (int64_t i = 0; i < n; ++i) dw[i] += dy[g * n + i] * xp[g * n + i] * r[g];
      }
    });
  }
  return out;
}

Var rope(const Var& x, const std::vector<float>& cs, int64_t hd) {
  const int64_t T = x.dim(0), row = x.dim(1), heads = row / hd, h = hd / 2;
  const bool rec = recording({&x});
  Var out(x.value().clone(), rec);
  rows_parallel(T, [&](int64_t t) {
    for (int64_t k = 0; k < heads; ++k)
      ops::cpu::rope_rotate_half(out.f32() + t * row + k * hd, &cs[t * hd], &cs[t * hd + h], hd);
  });
  if (rec) {
    active_tape()->push([x, out, cs, T, row, heads, hd, h]() mutable {
      if (!out.has_grad()) return;
      const float* dy = out.grad_f32();
      float* dx = x.grad_f32();
      rows_parallel(T, [&](int64_t t) {
        const float* c = &cs[t * hd];
        const float* s = &cs[t * hd + h];
        for (int64_t k = 0; k < heads; ++k) {
          const float* d = dy + t * row + k * hd;
          float* o = dx + t * row + k * hd;
          for (int64_t i = 0; i < h; ++i) {  // transpose of the rotation
            o[i] += d[i] * c[i] + d[i + h] * s[i];
            o[i + h] += -d[i] * s[i] + d[i + h] * c[i];
          }
        }
      });
    });
  }
  return out;
}

Var swiglu(const Var& gate, const Var& up) {
  check(gate.numel() == up.numel(), "swiglu: gate and up differ in size");
  const bool rec = recording({&gate, &up});
  Var out = make_out(gate.value().shape(), rec);
  const int64_t n = gate.numel();
  const int64_t cols = gate.dim(-1), rows = n / cols;
  rows_parallel(rows, [&](int64_t r) {
    ops::cpu::silu_mul(gate.f32() + r * cols, up.f32() + r * cols, cols, out.f32() + r * cols);
  });
  if (rec) {
    active_tape()->push([gate, up, out, n]() mutable {
      if (!out.has_grad()) return;
      const float* d = out.grad_f32();
      const float* g = gate.f32();
      const float* u = up.f32();
      float* dg = gate.requires_grad() ? gate.grad_f32() : nullptr;
      float* du = up.requires_grad() ? up.grad_f32() : nullptr;
      for (int64_t i = 0; i < n; ++i) {
        const float sg = 1.0f / (1.0f + std::exp(-g[i]));
        if (du) du[i] += d[i] * g[i] * sg;
        if (dg) dg[i] += d[i] * u[i] * sg * (1.0f + g[i] * (1.0f - sg));
      }
    });
  }
  return out;
}

Var add(const Var& a, const Var& b) {
  check(a.numel() == b.numel(), "add: sizes differ");
  const bool rec = recording({&a, &b});
  Var out = make_out(a.value().shape(), rec);
  const int64_t n = a.numel();
  for (int64_t i = 0; i < n; ++i) out.f32()[i] = a.f32()[i] + b.f32()[i];
  if (rec) {
    active_tape()->push([a, b, out, n]() mutable {
      if (!out.has_grad()) return;
      const float* d = out.grad_f32();
      for (const Var* v : {&a, &b})
        if (v->requires_grad()) {
          float* g = v->grad_f32();
          for (int64_t i = 0; i < n; ++i) g[i] += d[i];
        }
    });
  }
  return out;
}

Var scale(const Var& x, float s) {
  const bool rec = recording({&x});
  Var out = make_out(x.value().shape(), rec);
  const int64_t n = x.numel();
  for (int64_t i = 0; i < n; ++i) out.f32()[i] = x.f32()[i] * s;
  if (rec) {
    active_tape()->push([x, out, n, s]() mutable {
      if (!out.has_grad()) return;
      const float* d = out.grad_f32();
      float* g = x.grad_f32();
      for (int64_t i = 0; i < n; ++i) g[i] += d[i] * s;
    });
  }
  return out;
}

Var segment_sum(const Var& x, std::span<const int32_t> segment, int64_t n) {
  check(static_cast<int64_t>(segment.size()) == x.numel(), "segment_sum: one segment id per element expected");
  const bool rec = recording({&x});
  Var out = Var(Tensor::zeros({n}), rec);
  for (size_t i = 0; i < segment.size(); ++i) {
    check(segment[i] >= 0 && segment[i] < n, "segment_sum: segment id out of range");
    out.f32()[segment[i]] += x.f32()[i];
  }
  if (rec) {
    std::vector<int32_t> seg(segment.begin(), segment.end());
    active_tape()->push([x, out, seg]() {
      if (!out.has_grad()) return;
      const float* d = out.grad_f32();
      float* g = x.grad_f32();
      for (size_t i = 0; i < seg.size(); ++i) g[i] += d[seg[i]];
    });
  }
  return out;
}

Var dropout(const Var& x, float p, uint64_t seed) {
  if (p <= 0.0f) return x;
  const bool rec = recording({&x});
  const int64_t n = x.numel();
  std::vector<float> mask(static_cast<size_t>(n));
  const float keep = 1.0f / (1.0f - p);
  for (int64_t i = 0; i < n; ++i) {
    uint64_t z = seed + 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(i + 1);  // splitmix64
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    mask[i] = static_cast<double>(z >> 11) * 0x1.0p-53 < p ? 0.0f : keep;
  }
  Var out = make_out(x.value().shape(), rec);
  for (int64_t i = 0; i < n; ++i) out.f32()[i] = x.f32()[i] * mask[i];
  if (rec) {
    active_tape()->push([x, out, mask, n]() mutable {
      if (!out.has_grad()) return;
      const float* d = out.grad_f32();
      float* g = x.grad_f32();
      for (int64_t i = 0; i < n; ++i) g[i] += d[i] * mask[i];
    });
  }
  return out;
}

Var gather_rows(const Var& x, std::span<const int32_t> rows) {
  const bool flat = x.value().ndim() == 1;  // a vector: rows are its elements
  const int64_t D = flat ? 1 : x.dim(1), T = x.dim(0), n = static_cast<int64_t>(rows.size());
  const bool rec = recording({&x});
  Var out = make_out(flat ? Shape{n} : Shape{n, D}, rec);
  for (int64_t r = 0; r < n; ++r) {
    check(rows[r] >= 0 && rows[r] < T, "gather_rows: row index out of range");
    std::copy(x.f32() + rows[r] * D, x.f32() + (rows[r] + 1) * D, out.f32() + r * D);
  }
  if (rec) {
    std::vector<int32_t> keep(rows.begin(), rows.end());
    active_tape()->push([x, out, keep, D]() mutable {
      if (!out.has_grad()) return;
      const float* d = out.grad_f32();
      float* g = x.grad_f32();
      for (size_t r = 0; r < keep.size(); ++r)
        for (int64_t k = 0; k < D; ++k) g[keep[r] * D + k] += d[r * D + k];
    });
  }
  return out;
}

namespace {

double row_logsumexp(const float* row, int64_t V) {
  float mx = -INFINITY;
  for (int64_t j = 0; j < V; ++j) mx = std::max(mx, row[j]);
  double s = 0;
  for (int64_t j = 0; j < V; ++j) s += std::exp(static_cast<double>(row[j]) - mx);
  return mx + std::log(s);
}

// dlogits[r] += coef[r] * (softmax(row r) - onehot(target r)) for every counted row.
void softmax_minus_onehot(const float* logits, const std::vector<double>& lse, std::span<const int32_t> targets,
                          const std::vector<float>& coef, int64_t V, float* dl) {
  rows_parallel(static_cast<int64_t>(targets.size()), [&](int64_t r) {
    if (coef[r] == 0.0f) return;
    const float* row = logits + r * V;
    float* d = dl + r * V;
    for (int64_t j = 0; j < V; ++j) d[j] += coef[r] * static_cast<float>(std::exp(row[j] - lse[r]));
    d[targets[r]] -= coef[r];
  });
}

}  // namespace

Var cross_entropy_sum(const Var& logits, std::span<const int32_t> targets, int32_t ignore_index) {
  const int64_t n = logits.dim(0), V = logits.dim(1);
  check(static_cast<int64_t>(targets.size()) == n, "cross_entropy: one target per logits row expected");
  const bool rec = recording({&logits});
  std::vector<double> lse(static_cast<size_t>(n), 0.0);
  double total = 0;
  for (int64_t r = 0; r < n; ++r) {
    if (targets[r] == ignore_index) continue;
    check(targets[r] >= 0 && targets[r] < V,
          "cross_entropy: target " + std::to_string(targets[r]) + " is outside the vocabulary of " + std::to_string(V));
    lse[r] = row_logsumexp(logits.f32() + r * V, V);
    total += lse[r] - logits.f32()[r * V + targets[r]];
  }
  Var out = make_out({1}, rec);
  out.f32()[0] = static_cast<float>(total);
  if (rec) {
    std::vector<int32_t> tg(targets.begin(), targets.end());
    active_tape()->push([logits, out, tg, lse, V, ignore_index]() mutable {
      if (!out.has_grad()) return;
      const float g = out.grad_f32()[0];
      std::vector<float> coef(tg.size());
      for (size_t r = 0; r < tg.size(); ++r) coef[r] = tg[r] == ignore_index ? 0.0f : g;
      std::vector<int32_t> safe(tg);
      for (auto& t : safe)
        if (t == ignore_index) t = 0;
      softmax_minus_onehot(logits.f32(), lse, safe, coef, V, logits.grad_f32());
    });
  }
  return out;
}

Var token_logprobs(const Var& logits, std::span<const int32_t> targets, int32_t ignore_index) {
  const int64_t n = logits.dim(0), V = logits.dim(1);
  check(static_cast<int64_t>(targets.size()) == n, "token_logprobs: one target per logits row expected");
  const bool rec = recording({&logits});
  std::vector<double> lse(static_cast<size_t>(n), 0.0);
  Var out = make_out({n}, rec);
  for (int64_t r = 0; r < n; ++r) {
    if (targets[r] == ignore_index) {
      out.f32()[r] = 0.0f;
      continue;
    }
    check(targets[r] >= 0 && targets[r] < V, "token_logprobs: target outside the vocabulary");
    lse[r] = row_logsumexp(logits.f32() + r * V, V);
    out.f32()[r] = static_cast<float>(logits.f32()[r * V + targets[r]] - lse[r]);
  }
  if (rec) {
    std::vector<int32_t> tg(targets.begin(), targets.end());
    active_tape()->push([logits, out, tg, lse, V, ignore_index]() mutable {
      if (!out.has_grad()) return;
      const float* d = out.grad_f32();
      std::vector<float> coef(tg.size());
      std::vector<int32_t> safe(tg);
      for (size_t r = 0; r < tg.size(); ++r) {
        coef[r] = tg[r] == ignore_index ? 0.0f : -d[r];  // d/dlogit of (logit_t - lse) = onehot - softmax
        if (tg[r] == ignore_index) safe[r] = 0;
      }
      softmax_minus_onehot(logits.f32(), lse, safe, coef, V, logits.grad_f32());
    });
  }
  return out;
}

Var token_entropy(const Var& logits) {
  const int64_t n = logits.dim(0), V = logits.dim(1);
  const bool rec = recording({&logits});
  std::vector<double> lse(static_cast<size_t>(n)), H(static_cast<size_t>(n));
  Var out = make_out({n}, rec);
  rows_parallel(n, [&](int64_t r) {
    const float* row = logits.f32() + r * V;
    lse[r] = row_logsumexp(row, V);
    double pz = 0;  // Σ p z
    for (int64_t j = 0; j < V; ++j) pz += std::exp(row[j] - lse[r]) * row[j];
    H[r] = lse[r] - pz;
    out.f32()[r] = static_cast<float>(H[r]);
  });
  if (rec) {
    active_tape()->push([logits, out, lse, H, n, V]() mutable {
      if (!out.has_grad()) return;
      const float* d = out.grad_f32();
      float* g = logits.grad_f32();
      // dH/dz_j = -p_j (log p_j + H)
      rows_parallel(n, [&](int64_t r) {
        if (d[r] == 0.0f) return;
        const float* row = logits.f32() + r * V;
        for (int64_t j = 0; j < V; ++j) {
          const double lp = row[j] - lse[r];
          g[r * V + j] += static_cast<float>(-d[r] * std::exp(lp) * (lp + H[r]));
        }
      });
    });
  }
  return out;
}

}  // namespace yak::ag
