#include "yak/model/attention.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "yak/base/error.h"
#include "yak/base/thread_pool.h"
#include "yak/model/decoder.h"
#include "yak/ops/cpu/kernels.h"

namespace yak::model {

namespace {

struct Span {
  int64_t start, n;  // cache positions [start, start + n) seen by a query at position start + n - 1
};

Span span_for(int64_t pos, int64_t window) {
  int64_t start = window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0;
  return {start, pos - start + 1};
}

// p = softmax(scale * q·K[start..start+n)) into p.
void probabilities(const float* qv, const float* K, int64_t kvd, int64_t off, const Span& s, float scale, int64_t hd,
                   std::vector<float>& p) {
  p.resize(static_cast<size_t>(s.n));
  for (int64_t j = 0; j < s.n; ++j) p[j] = ops::cpu::dot(DType::F32, K + (s.start + j) * kvd + off, qv, hd) * scale;
  ops::cpu::softmax(p.data(), s.n);
}

}  // namespace

ag::Var attention(const ag::Var& q, const ag::Var& k, const ag::Var& v, const Batch& batch, KVCache& cache,
                  int64_t layer, const AttentionShape& sh) {
  const int64_t T = q.dim(0), H = sh.heads, KV = sh.kv_heads, hd = sh.head_dim, group = H / KV;
  const int64_t kvd = KV * hd;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  for (int64_t t = 0; t < T; ++t) {
    std::copy(k.f32() + t * kvd, k.f32() + (t + 1) * kvd, cache.keys(layer, batch.slot[t]) + batch.pos[t] * kvd);
    std::copy(v.f32() + t * kvd, v.f32() + (t + 1) * kvd, cache.values(layer, batch.slot[t]) + batch.pos[t] * kvd);
  }
  const bool rec = ag::recording({&q, &k, &v});
  ag::Var out(Tensor::empty({T, H * hd}), rec);
  parallel_for(T * H, 1, [&](int64_t a, int64_t b) {
    std::vector<float> p;
    for (int64_t idx = a; idx < b; ++idx) {
      const int64_t t = idx / H, h = idx % H, off = (h / group) * hd;
      const Span s = span_for(batch.pos[t], sh.window);
      const float* V = cache.values(layer, batch.slot[t]);
      probabilities(q.f32() + t * H * hd + h * hd, cache.keys(layer, batch.slot[t]), kvd, off, s, scale, hd, p);
      float* o = out.f32() + t * H * hd + h * hd;
      std::fill(o, o + hd, 0.0f);
      for (int64_t j = 0; j < s.n; ++j) {
        const float* vv = V + (s.start + j) * kvd + off;
        for (int64_t d = 0; d < hd; ++d) o[d] += p[j] * vv[d];
      }
    }
  });
  if (!rec) return out;

  // Backward. Keys/values at cache positions written by this batch get gradients; earlier cache
  // entries (a prompt cached before this call) are constants.
  std::vector<int32_t> slot(batch.slot), pos(batch.pos);
  ag::active_tape()->push([q, k, v, out, slot, pos, &cache, layer, sh, T, H, KV, hd, group, kvd, scale]() {
    if (!out.has_grad()) return;
    const float* dout = out.grad_f32();
    std::map<std::pair<int32_t, int32_t>, int64_t> token_at;  // (slot, pos) -> batch row
    std::vector<int32_t> slots;
    for (int64_t t = 0; t < T; ++t) {
      token_at[{slot[t], pos[t]}] = t;
      slots.push_back(slot[t]);
    }
    std::sort(slots.begin(), slots.end());
    slots.erase(std::unique(slots.begin(), slots.end()), slots.end());
    // Work item = (slot, kv head): it owns the dk/dv rows of that slot and head, so no two
    // threads write the same gradient.
    const int64_t items = static_cast<int64_t>(slots.size()) * KV;
    float* dq = q.requires_grad() ? q.grad_f32() : nullptr;
    float* dk = k.requires_grad() ? k.grad_f32() : nullptr;
    float* dv = v.requires_grad() ? v.grad_f32() : nullptr;
    parallel_for(items, 1, [&](int64_t a, int64_t b) {
      std::vector<float> p, dp;
      for (int64_t it = a; it < b; ++it) {
        const int32_t sl = slots[it / KV];
        const int64_t kvh = it % KV, off = kvh * hd;
        const float* K = cache.keys(layer, sl);
        const float* V = cache.values(layer, sl);
        for (int64_t t = 0; t < T; ++t) {
          if (slot[t] != sl) continue;
          const Span s = span_for(pos[t], sh.window);
          for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
            const float* qv = q.f32() + t * H * hd + h * hd;
            const float* go = dout + t * H * hd + h * hd;
            probabilities(qv, K, kvd, off, s, scale, hd, p);
            dp.resize(p.size());
            double sum = 0;
            for (int64_t j = 0; j < s.n; ++j) {
              dp[j] = ops::cpu::dot(DType::F32, V + (s.start + j) * kvd + off, go, hd);
              sum += static_cast<double>(p[j]) * dp[j];
            }
            for (int64_t j = 0; j < s.n; ++j) {
              const float ds = p[j] * (dp[j] - static_cast<float>(sum)) * scale;
              auto src = token_at.find({sl, static_cast<int32_t>(s.start + j)});
              const int64_t row = src == token_at.end() ? -1 : src->second;
              if (dq) {
                const float* kj = K + (s.start + j) * kvd + off;
                float* g = dq + t * H * hd + h * hd;
                for (int64_t d = 0; d < hd; ++d) g[d] += ds * kj[d];
              }
              if (row < 0) continue;
              if (dk) {
                float* g = dk + row * kvd + off;
                for (int64_t d = 0; d < hd; ++d) g[d] += ds * qv[d];
              }
              if (dv) {
                float* g = dv + row * kvd + off;
                for (int64_t d = 0; d < hd; ++d) g[d] += p[j] * go[d];
              }
            }
          }
        }
      }
    });
  });
  return out;
}

}  // namespace yak::model
