// Attention of the CPU backend over the paged KV cache, flash-style: the keys are visited one
// page (tile) at a time with an online softmax, so memory stays linear in the sequence length.
// The forward saves each row's log-sum-exp; the backward recomputes the probabilities from it,
// first per key tile (gradients of the keys and values this batch wrote), then per query block
// (gradients of the queries), so no two threads ever write the same gradient.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "yak/base/error.h"
#include "yak/ops/cpu/cpu_backend.h"
#include "yak/ops/cpu/kernels.h"
#include "yak/ops/cpu/thread_pool.h"
#include "yak/ops/cpu/type_traits.h"

namespace yak::ops::cpu {
namespace {

constexpr int64_t kQueryBlock = 16;

// A batch's rows grouped by sequence: rows [row, row + n) are positions [pos0, pos0 + n) of slot.
struct Run {
  int32_t slot;
  int64_t row, n, pos0;
};

void find_runs(const AttentionArgs& a, std::vector<Run>& runs) {
  runs.clear();
  const int64_t T = static_cast<int64_t>(a.pos.size());
  for (int64_t t = 0; t < T; ++t) {
    if (!runs.empty() && runs.back().slot == a.slot[t] && runs.back().pos0 + runs.back().n == a.pos[t]) {
      ++runs.back().n;
      continue;
    }
    runs.push_back({a.slot[t], t, 1, a.pos[t]});
  }
}

KvType kv_type(DType t) {
  switch (t) {
    case DType::F32:
      return KvType::F32;
    case DType::BF16:
      return KvType::BF16;
    case DType::F16:
      return KvType::F16;
    default:
      throw Error(std::string("attention: KV cache dtype ") + dtype_name(t) + " is not supported");
  }
}

// Where (slot, position, kv head) lives in one of the cache tensors.
struct CacheMap {
  const int32_t* table;
  int64_t pages_per_slot, page, kv_heads, hd;
  size_t elem;
  int64_t index(int32_t slot, int64_t pos, int64_t g) const {
    const int64_t p = table[slot * pages_per_slot + pos / page];
    return ((p * kv_heads + g) * page + pos % page) * hd;
  }
  // First element of the page holding pos, for head g (keys of that page are rows of hd).
  int64_t page_start(int32_t slot, int64_t pos, int64_t g) const { return index(slot, pos - pos % page, g); }
};

CacheMap map_of(const KvPages& c, const AttentionArgs& a) {
  return {c.page_table.data<int32_t>(), c.page_table.dim(1), c.page_size, a.kv_heads, a.head_dim,
          dtype_bytes(c.k.dtype(), 1)};
}

int64_t first_visible(int64_t pos, int64_t window) {
  return window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0;
}
// One past the last key a row at `pos` sees; run_end is one past its run's last position.
int64_t visible_end(const AttentionArgs& a, int64_t pos, int64_t run_end) {
  return a.causal ? pos + 1 : run_end;
}

}  // namespace

void CpuBackend::kv_write(const Tensor& k, const Tensor& v, const AttentionArgs& a, KvPages& cache) {
  const CacheMap m = map_of(cache, a);
  const int64_t T = static_cast<int64_t>(a.pos.size()), hd = a.head_dim;
  const CpuTypeTraits* tr = cpu_traits(cache.k.dtype());
  const float* kp = k.data<float>();
  const float* vp = v.data<float>();
  const int64_t ldk = k.row_stride(), ldv = v.row_stride();
  auto* K = static_cast<uint8_t*>(cache.k.raw());
  auto* V = static_cast<uint8_t*>(cache.v.raw());
  for (int64_t t = 0; t < T; ++t)
    for (int64_t g = 0; g < a.kv_heads; ++g) {
      const int64_t at = m.index(a.slot[t], a.pos[t], g);
      tr->from_f32(kp + t * ldk + g * hd, K + at * m.elem, hd);
      tr->from_f32(vp + t * ldv + g * hd, V + at * m.elem, hd);
    }
}

void CpuBackend::attention(const Tensor& q, const KvPages& cache, const AttentionArgs& a, Tensor& out, Tensor* lse) {
  // The caller's scratch, named through references: a thread_local named inside the worker
  // lambda would be the worker's own (empty) copy.
  thread_local std::vector<Run> runs_tl;
  thread_local std::vector<int64_t> start_tl;
  std::vector<Run>& runs = runs_tl;
  std::vector<int64_t>& item_start = start_tl;
  find_runs(a, runs);
  const int64_t H = a.heads, KV = a.kv_heads, hd = a.head_dim, group = H / KV, P = cache.page_size;
  const CacheMap m = map_of(cache, a);
  const KernelTable& kt = kernels();
  auto tile_fn = kt.attn_tile[static_cast<int>(kv_type(cache.k.dtype()))];
  const auto* Kb = static_cast<const uint8_t*>(cache.k.raw());
  const auto* Vb = static_cast<const uint8_t*>(cache.v.raw());
  const float* qp = q.data<float>();
  float* op = out.data<float>();
  float* lp = lse ? lse->data<float>() : nullptr;
  const int64_t ldq = q.row_stride(), ldo = out.row_stride();
  // Work items: (run, kv head, block of queries).
  item_start.assign(1, 0);
  for (auto& r : runs) item_start.push_back(item_start.back() + KV * ((r.n + kQueryBlock - 1) / kQueryBlock));
  const int64_t items = item_start.back();
  const int64_t max_rows = kQueryBlock * group;
  const size_t floats = static_cast<size_t>(max_rows * (2 * hd + 2 + P)), ints = static_cast<size_t>(2 * max_rows);
  parallel_for_scratch(items, 1, floats * 4 + ints * 4, [&](int64_t i0, int64_t i1, void* scratch) {
    float* qs = static_cast<float*>(scratch);  // rows ordered (query, head within the group)
    float* acc = qs + max_rows * hd;
    float* mx = acc + max_rows * hd;
    float* l = mx + max_rows;
    float* S = l + max_rows;
    int* slo = reinterpret_cast<int*>(S + max_rows * P);
    int* shi = slo + max_rows;
    for (int64_t it = i0; it < i1; ++it) {
      const size_t ri = std::upper_bound(item_start.begin(), item_start.end(), it) - item_start.begin() - 1;
      const Run& run = runs[ri];
      const int64_t local = it - item_start[ri];
      const int64_t blocks = (run.n + kQueryBlock - 1) / kQueryBlock;
      const int64_t g = local / blocks, b = local % blocks;
      const int64_t t0 = run.row + b * kQueryBlock, nq = std::min(kQueryBlock, run.row + run.n - t0);
      const int rows = static_cast<int>(nq * group);
      for (int64_t i = 0; i < nq; ++i)
        for (int64_t h = 0; h < group; ++h)
          kt.scale(qp + (t0 + i) * ldq + (g * group + h) * hd, a.scale, qs + (i * group + h) * hd, hd);
      std::fill(acc, acc + rows * hd, 0.0f);
      std::fill(mx, mx + rows, -INFINITY);
      std::fill(l, l + rows, 0.0f);
      const int64_t p_first = a.pos[t0], run_end = run.pos0 + run.n;
      const int64_t k_end = a.causal ? a.pos[t0 + nq - 1] + 1 : run_end;
      const int64_t k_lo = first_visible(p_first, a.window);
      for (int64_t start = k_lo - k_lo % P; start < k_end; start += P) {
        const int n = static_cast<int>(std::min<int64_t>(P, k_end - start));
        for (int64_t i = 0; i < nq; ++i) {
          const int64_t p = a.pos[t0 + i];
          const int lo = static_cast<int>(std::clamp<int64_t>(first_visible(p, a.window) - start, 0, n));
          const int hi = static_cast<int>(std::clamp<int64_t>(visible_end(a, p, run_end) - start, 0, n));
          for (int64_t h = 0; h < group; ++h) slo[i * group + h] = lo, shi[i * group + h] = hi;
        }
        const int64_t at = m.page_start(run.slot, start, g);
        AttnTile tile{qs, hd,  rows, Kb + at * m.elem, Vb + at * m.elem, hd, n, slo, shi, static_cast<int>(hd), mx,
                      l,  acc, S};
        tile_fn(tile);
      }
      for (int64_t i = 0; i < nq; ++i)
        for (int64_t h = 0; h < group; ++h) {
          const int64_t r = i * group + h, head = g * group + h;
          const float inv = l[r] > 0 ? 1.0f / l[r] : 0.0f;
          kt.scale(acc + r * hd, inv, op + (t0 + i) * ldo + head * hd, hd);
          if (lp) lp[(t0 + i) * H + head] = mx[r] + std::log(l[r]);
        }
    }
  });
}

void CpuBackend::attention_backward(const Tensor& dout, const Tensor& q, const Tensor& out, const Tensor& lse,
                                    const KvPages& cache, const AttentionArgs& a, Tensor* dq, Tensor* dk, Tensor* dv) {
  if (cache.k.dtype() != DType::F32) [[unlikely]]
    throw Error("attention backward: the KV cache must be f32 while training");
  thread_local std::vector<Run> runs_tl;
  std::vector<Run>& runs = runs_tl;
  find_runs(a, runs);
  for (size_t i = 0; i < runs.size(); ++i)
    for (size_t j = i + 1; j < runs.size(); ++j)
      if (runs[i].slot == runs[j].slot) [[unlikely]]
        throw Error("attention backward: the rows of a sequence slot must be consecutive with consecutive positions");
  const int64_t T = static_cast<int64_t>(a.pos.size());
  const int64_t H = a.heads, KV = a.kv_heads, hd = a.head_dim, group = H / KV, P = cache.page_size;
  const CacheMap m = map_of(cache, a);
  const KernelTable& kt = kernels();
  const float* K = cache.k.data<float>();
  const float* V = cache.v.data<float>();
  const float* qp = q.data<float>();
  const float* dop = dout.data<float>();
  const float* ls = lse.data<float>();
  const int64_t ldq = q.row_stride(), ldd = dout.row_stride(), ldo = out.row_stride();
  // D[t, h] = dout · out (the softmax backward's row term)
  Tensor Dt = Tensor::empty({T, H});
  float* D = Dt.data<float>();
  {
    const float* o = out.data<float>();
    parallel_for(T, 8, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t)
        for (int64_t h = 0; h < H; ++h) D[t * H + h] = kt.dot_f32(dop + t * ldd + h * hd, o + t * ldo + h * hd, hd);
    });
  }
  const int64_t max_rows = kQueryBlock * group;
  // Rows (query i, head h of kv group g) of queries [t0, t0 + nq) gathered into a block.
  auto gather = [&](const float* src, int64_t ld, int64_t t0, int64_t nq, int64_t g, float* dst) {
    for (int64_t i = 0; i < nq; ++i)
      for (int64_t h = 0; h < group; ++h)
        std::memcpy(dst + (i * group + h) * hd, src + (t0 + i) * ld + (g * group + h) * hd,
                    static_cast<size_t>(hd) * sizeof(float));
  };
  // For a block of rows against keys [j0, j0 + n) of one page: Pm = softmax probabilities,
  // dS = Pm (dP - D) scale; masked keys get 0 in both.
  auto probs = [&](const float* qs, const float* dos, int64_t t0, int64_t nq, int64_t g, const float* kt_rows,
                   const float* vt_rows, int64_t j0, int n, int64_t run_end, float* Pm, float* dS) {
    const int rows = static_cast<int>(nq * group);
    kt.abt(qs, hd, rows, kt_rows, hd, n, static_cast<int>(hd), Pm, P);
    kt.abt(dos, hd, rows, vt_rows, hd, n, static_cast<int>(hd), dS, P);
    for (int64_t i = 0; i < nq; ++i) {
      const int64_t p = a.pos[t0 + i];
      const int lo = static_cast<int>(std::clamp<int64_t>(first_visible(p, a.window) - j0, 0, n));
      const int hi = static_cast<int>(std::clamp<int64_t>(visible_end(a, p, run_end) - j0, 0, n));
      for (int64_t h = 0; h < group; ++h) {
        const int64_t r = i * group + h, head = g * group + h;
        float* pr = Pm + r * P;
        float* dr = dS + r * P;
        const float l = ls[(t0 + i) * H + head], d = D[(t0 + i) * H + head];
        if (hi > lo) {
          kt.scale(pr + lo, a.scale, pr + lo, hi - lo);
          kt.exp_sum(pr + lo, l, pr + lo, hi - lo);
          for (int j = lo; j < hi; ++j) dr[j] = pr[j] * (dr[j] - d) * a.scale;
        }
        for (int j = 0; j < lo; ++j) pr[j] = dr[j] = 0.0f;
        for (int j = std::max(hi, lo); j < n; ++j) pr[j] = dr[j] = 0.0f;
      }
    }
  };
  const size_t block_floats = static_cast<size_t>(max_rows * (2 * hd + 2 * P));
  // Pass A: tiles of the keys this batch wrote -> dk, dv.
  if (dk || dv) {
    float* gk = dk ? dk->data<float>() : nullptr;
    float* gv = dv ? dv->data<float>() : nullptr;
    const int64_t ldgk = dk ? dk->row_stride() : 0, ldgv = dv ? dv->row_stride() : 0;
    struct Tile {
      size_t run;
      int64_t g, j0, j1;
    };
    thread_local std::vector<Tile> tiles_tl;
    std::vector<Tile>& tiles = tiles_tl;
    tiles.clear();
    for (size_t ri = 0; ri < runs.size(); ++ri) {
      const Run& r = runs[ri];
      for (int64_t g = 0; g < KV; ++g)
        for (int64_t j0 = r.pos0; j0 < r.pos0 + r.n; j0 = (j0 / P + 1) * P)
          tiles.push_back({ri, g, j0, std::min(r.pos0 + r.n, (j0 / P + 1) * P)});
    }
    const size_t floats = block_floats + static_cast<size_t>(2 * P * hd);
    parallel_for_scratch(
        static_cast<int64_t>(tiles.size()), 1, floats * sizeof(float), [&](int64_t i0, int64_t i1, void* scratch) {
          float* qs = static_cast<float*>(scratch);
          float* dos = qs + max_rows * hd;
          float* Pm = dos + max_rows * hd;
          float* dS = Pm + max_rows * P;
          float* tk = dS + max_rows * P;
          float* tv = tk + P * hd;
          for (int64_t it = i0; it < i1; ++it) {
            const Tile& tl = tiles[static_cast<size_t>(it)];
            const Run& run = runs[tl.run];
            const int n = static_cast<int>(tl.j1 - tl.j0);
            const float* krows = K + m.index(run.slot, tl.j0, tl.g);
            const float* vrows = V + m.index(run.slot, tl.j0, tl.g);
            std::fill(tk, tk + n * hd, 0.0f);
            std::fill(tv, tv + n * hd, 0.0f);
            // queries that can see a key of this tile: positions j0 .. j1 - 1 + window - 1
            const int64_t last_pos = run.pos0 + run.n - 1;
            const int64_t p_hi = a.window > 0 ? std::min(last_pos, tl.j1 - 1 + a.window - 1) : last_pos;
            for (int64_t p0 = a.causal ? tl.j0 : run.pos0; p0 <= p_hi; p0 += kQueryBlock) {
              const int64_t t0 = run.row + (p0 - run.pos0), nq = std::min(kQueryBlock, p_hi - p0 + 1);
              const int rows = static_cast<int>(nq * group);
              gather(qp, ldq, t0, nq, tl.g, qs);
              gather(dop, ldd, t0, nq, tl.g, dos);
              probs(qs, dos, t0, nq, tl.g, krows, vrows, tl.j0, n, last_pos + 1, Pm, dS);
              kt.atb_acc(Pm, P, rows, n, dos, hd, static_cast<int>(hd), tv, hd);  // dV += P^T dO
              kt.atb_acc(dS, P, rows, n, qs, hd, static_cast<int>(hd), tk, hd);   // dK += dS^T Q
            }
            for (int j = 0; j < n; ++j) {
              const int64_t row = run.row + (tl.j0 + j - run.pos0);
              if (gk) kt.add(gk + row * ldgk + tl.g * hd, tk + j * hd, gk + row * ldgk + tl.g * hd, hd);
              if (gv) kt.add(gv + row * ldgv + tl.g * hd, tv + j * hd, gv + row * ldgv + tl.g * hd, hd);
            }
          }
        });
  }
  // Pass B: query blocks -> dq, over every key they saw (cached ones included).
  if (dq) {
    float* g = dq->data<float>();
    const int64_t ldg = dq->row_stride();
    std::vector<int64_t>& item_start = [&]() -> std::vector<int64_t>& {
      thread_local std::vector<int64_t> v;
      return v;
    }();
    item_start.assign(1, 0);
    for (auto& r : runs) item_start.push_back(item_start.back() + KV * ((r.n + kQueryBlock - 1) / kQueryBlock));
    const size_t floats = block_floats + static_cast<size_t>(max_rows * hd);
    parallel_for_scratch(item_start.back(), 1, floats * sizeof(float), [&](int64_t i0, int64_t i1, void* scratch) {
      float* qs = static_cast<float*>(scratch);
      float* dos = qs + max_rows * hd;
      float* Pm = dos + max_rows * hd;
      float* dS = Pm + max_rows * P;
      float* gq = dS + max_rows * P;
      for (int64_t it = i0; it < i1; ++it) {
        const size_t ri = std::upper_bound(item_start.begin(), item_start.end(), it) - item_start.begin() - 1;
        const Run& run = runs[ri];
        const int64_t local = it - item_start[ri], blocks = (run.n + kQueryBlock - 1) / kQueryBlock;
        const int64_t kvh = local / blocks, b = local % blocks;
        const int64_t t0 = run.row + b * kQueryBlock, nq = std::min(kQueryBlock, run.row + run.n - t0);
        const int rows = static_cast<int>(nq * group);
        gather(qp, ldq, t0, nq, kvh, qs);
        gather(dop, ldd, t0, nq, kvh, dos);
        std::fill(gq, gq + rows * hd, 0.0f);
        const int64_t k_lo = first_visible(a.pos[t0], a.window);
        const int64_t k_hi = a.causal ? a.pos[t0 + nq - 1] : run.pos0 + run.n - 1;
        for (int64_t j0 = k_lo; j0 <= k_hi; j0 = (j0 / P + 1) * P) {
          const int n = static_cast<int>(std::min((j0 / P + 1) * P, k_hi + 1) - j0);
          const float* krows = K + m.index(run.slot, j0, kvh);
          probs(qs, dos, t0, nq, kvh, krows, V + m.index(run.slot, j0, kvh), j0, n, run.pos0 + run.n, Pm, dS);
          kt.ab_acc(dS, P, rows, n, krows, hd, static_cast<int>(hd), gq, hd);  // dQ += dS K
        }
        for (int64_t i = 0; i < nq; ++i)
          for (int64_t h = 0; h < group; ++h) {
            float* dst = g + (t0 + i) * ldg + (kvh * group + h) * hd;
            kt.add(dst, gq + (i * group + h) * hd, dst, hd);
          }
      }
    });
  }
}

}  // namespace yak::ops::cpu
