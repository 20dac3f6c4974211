// Checks each op's operands once, for every backend, then dispatches on their device.
#include "yak/ops/ops.h"

#include <atomic>
#include <cstdlib>
#include <string>

#include "yak/base/error.h"
#include "yak/ops/cpu/thread_pool.h"

namespace yak::ops {
namespace {

[[noreturn]] void fail(const char* op, const std::string& what) {
  throw Error(std::string(op) + ": " + what);
}

// The one device of an op's tensors (undefined / null ones are skipped).
Backend& on(const char* op, std::initializer_list<const Tensor*> ts) {
  const Tensor* first = nullptr;
  for (const Tensor* t : ts) {
    if (!t || !t->defined()) continue;
    if (!first) {
      first = t;
    } else if (!(t->device() == first->device())) [[unlikely]] {
      fail(op, "operands are on different devices (" + first->device().str() + " and " + t->device().str() + ")");
    }
  }
  return backend_for(first ? first->device() : Device{});
}

void want_f32(const char* op, const Tensor& t, const char* name) {
  if (t.dtype() != DType::F32) [[unlikely]]
    fail(op, std::string(name) + " must be f32, got " + dtype_name(t.dtype()));
}
void want_shape(const char* op, const Tensor& t, const Shape& s, const char* name) {
  if (!(t.shape() == s)) [[unlikely]]
    fail(op, std::string(name) + " has shape " + shape_str(t.shape()) + ", expected " + shape_str(s));
}
void want_numel(const char* op, const Tensor& t, int64_t n, const char* name) {
  if (t.numel() != n) [[unlikely]]
    fail(op, std::string(name) + " has " + std::to_string(t.numel()) + " elements, expected " + std::to_string(n));
}
void want_contiguous(const char* op, const Tensor& t, const char* name) {
  if (!t.is_contiguous()) [[unlikely]]
    fail(op, std::string(name) + " must be contiguous");
}
void want_2d(const char* op, const Tensor& t, const char* name) {
  if (t.ndim() != 2) [[unlikely]]
    fail(op, std::string(name) + " must be 2-D, got " + shape_str(t.shape()));
}
void want_ids(const char* op, std::span<const int32_t> ids, int64_t n, int64_t limit, const char* what) {
  if (static_cast<int64_t>(ids.size()) != n) [[unlikely]]
    fail(op, "expected " + std::to_string(n) + " " + what + ", got " + std::to_string(ids.size()));
  for (auto i : ids)
    if (i < 0 || i >= limit) [[unlikely]]
      fail(op, std::string(what) + " " + std::to_string(i) + " is outside [0, " + std::to_string(limit) + ")");
}

}  // namespace

namespace {
// YAK_MATMUL_PRECISION=highest|high|medium sets the start-up value (the CLI's
// --matmul-precision sets it too).
std::atomic<MatmulPrecision>& precision() {
  static std::atomic<MatmulPrecision> p{[] {
    const char* env = std::getenv("YAK_MATMUL_PRECISION");
    return env && *env ? parse_matmul_precision(env, "YAK_MATMUL_PRECISION") : MatmulPrecision::High;
  }()};
  return p;
}
}  // namespace

void set_matmul_precision(MatmulPrecision p) {
  precision().store(p);
}
MatmulPrecision matmul_precision() {
  return precision().load(std::memory_order_relaxed);
}
MatmulPrecision parse_matmul_precision(const std::string& s, const std::string& what) {
  if (s == "highest") return MatmulPrecision::Highest;
  if (s == "high") return MatmulPrecision::High;
  if (s == "medium") return MatmulPrecision::Medium;
  throw Error(what + ": unknown matmul precision '" + s + "' (expected highest, high or medium)");
}

void set_num_threads(int n) {
  cpu::set_num_threads(n);
}
int num_threads() {
  return cpu::num_threads();
}

void linear(const Tensor& x, const Tensor& W, const Tensor* b, Tensor& y) {
  const char* op = "linear";
  want_2d(op, x, "input");
  want_2d(op, W, "weight");
  want_f32(op, x, "input");
  want_f32(op, y, "output");
  if (W.dim(1) != x.dim(1)) [[unlikely]]
    fail(op, "input has " + std::to_string(x.dim(1)) + " features but the weight expects " + std::to_string(W.dim(1)));
  want_shape(op, y, {x.dim(0), W.dim(0)}, "output");
  if (b && b->defined() && b->numel() > 0) {
    want_f32(op, *b, "bias");
    want_numel(op, *b, W.dim(0), "bias");
  }
  on(op, {&x, &W, b, &y}).linear(x, W, b, y);
}

void linear_group(const Tensor& x, std::span<const LinearTarget> targets) {
  const char* op = "linear_group";
  want_2d(op, x, "input");
  want_f32(op, x, "input");
  for (const LinearTarget& t : targets) {
    want_2d(op, *t.W, "weight");
    want_f32(op, *t.y, "output");
    if (t.W->dim(1) != x.dim(1)) [[unlikely]]
      fail(op,
           "input has " + std::to_string(x.dim(1)) + " features but a weight expects " + std::to_string(t.W->dim(1)));
    want_shape(op, *t.y, {x.dim(0), t.W->dim(0)}, "output");
    if (t.b && t.b->defined() && t.b->numel() > 0) {
      want_f32(op, *t.b, "bias");
      want_numel(op, *t.b, t.W->dim(0), "bias");
    }
    if (!(t.W->device() == x.device()) || !(t.y->device() == x.device())) [[unlikely]]
      fail(op, "operands are on different devices");
  }
  on(op, {&x}).linear_group(x, targets);
}

void linear_backward(const Tensor& dy, const Tensor& x, const Tensor& W, Tensor* dx, Tensor* dW, Tensor* db) {
  const char* op = "linear_backward";
  want_2d(op, x, "input");
  want_2d(op, W, "weight");
  if (W.dim(1) != x.dim(1)) [[unlikely]]
    fail(op, "input has " + std::to_string(x.dim(1)) + " features but the weight expects " + std::to_string(W.dim(1)));
  want_shape(op, dy, {x.dim(0), W.dim(0)}, "output gradient");
  if (dx) want_shape(op, *dx, x.shape(), "input gradient");
  if (dW) want_shape(op, *dW, W.shape(), "weight gradient");
  if (db) want_numel(op, *db, W.dim(0), "bias gradient");
  on(op, {&dy, &x, &W, dx, dW, db}).linear_backward(dy, x, W, dx, dW, db);
}

void embedding(const Tensor& E, std::span<const int32_t> ids, Tensor& out) {
  const char* op = "embedding";
  want_2d(op, E, "table");
  want_f32(op, out, "output");
  want_shape(op, out, {static_cast<int64_t>(ids.size()), E.dim(1)}, "output");
  for (auto i : ids)
    if (i < 0 || i >= E.dim(0)) [[unlikely]]
      fail(op, "token id " + std::to_string(i) + " is outside the vocabulary of " + std::to_string(E.dim(0)));
  on(op, {&E, &out}).embedding(E, ids, out);
}

void embedding_backward(const Tensor& dout, std::span<const int32_t> ids, Tensor& dE) {
  const char* op = "embedding_backward";
  want_shape(op, dout, {static_cast<int64_t>(ids.size()), dE.dim(1)}, "output gradient");
  want_ids(op, ids, dout.dim(0), dE.dim(0), "token ids");
  on(op, {&dout, &dE}).embedding_backward(dout, ids, dE);
}

void rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& out) {
  const char* op = "rms_norm";
  want_f32(op, x, "input");
  want_f32(op, w, "weight");
  if (w.numel() == 0 || x.row_size() % w.numel() != 0) [[unlikely]]
    fail(op, "rows of " + std::to_string(x.row_size()) + " are not groups of " + std::to_string(w.numel()));
  want_shape(op, out, x.shape(), "output");
  on(op, {&x, &w, &out}).rms_norm(x, w, eps, out);
}

void rms_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, float eps, Tensor* dx, Tensor* dw) {
  const char* op = "rms_norm_backward";
  if (w.numel() == 0 || x.row_size() % w.numel() != 0) [[unlikely]]
    fail(op, "rows of " + std::to_string(x.row_size()) + " are not groups of " + std::to_string(w.numel()));
  want_shape(op, dy, x.shape(), "output gradient");
  if (dx) want_shape(op, *dx, x.shape(), "input gradient");
  if (dw) want_shape(op, *dw, w.shape(), "weight gradient");
  on(op, {&dy, &x, &w, dx, dw}).rms_norm_backward(dy, x, w, eps, dx, dw);
}

void rope(const Tensor& x, const Tensor& cs, int64_t head_dim, Tensor& out) {
  const char* op = "rope";
  want_2d(op, x, "input");
  want_f32(op, x, "input");
  if (head_dim <= 0 || head_dim % 2 || x.dim(1) % head_dim) [[unlikely]]
    fail(op, "rows of " + std::to_string(x.dim(1)) + " are not heads of an even head_dim " + std::to_string(head_dim));
  want_shape(op, cs, {x.dim(0), head_dim}, "cos/sin table");
  want_contiguous(op, cs, "cos/sin table");
  want_shape(op, out, x.shape(), "output");
  on(op, {&x, &cs, &out}).rope(x, cs, head_dim, out);
}

void rope_backward(const Tensor& dy, const Tensor& cs, int64_t head_dim, Tensor& dx) {
  const char* op = "rope_backward";
  want_2d(op, dy, "output gradient");
  if (head_dim <= 0 || head_dim % 2 || dy.dim(1) % head_dim) [[unlikely]]
    fail(op, "rows of " + std::to_string(dy.dim(1)) + " are not heads of an even head_dim " + std::to_string(head_dim));
  want_shape(op, dx, dy.shape(), "input gradient");
  want_shape(op, cs, {dy.dim(0), head_dim}, "cos/sin table");
  want_contiguous(op, cs, "cos/sin table");
  on(op, {&dy, &cs, &dx}).rope_backward(dy, cs, head_dim, dx);
}

void swiglu(const Tensor& gate, const Tensor& up, Tensor& out) {
  const char* op = "swiglu";
  want_f32(op, gate, "gate");
  want_shape(op, up, gate.shape(), "up");
  want_shape(op, out, gate.shape(), "output");
  on(op, {&gate, &up, &out}).swiglu(gate, up, out);
}

void swiglu_backward(const Tensor& dout, const Tensor& gate, const Tensor& up, Tensor* dgate, Tensor* dup) {
  const char* op = "swiglu_backward";
  want_shape(op, dout, gate.shape(), "output gradient");
  if (dgate) want_shape(op, *dgate, gate.shape(), "gate gradient");
  if (dup) want_shape(op, *dup, up.shape(), "up gradient");
  on(op, {&dout, &gate, &up, dgate, dup}).swiglu_backward(dout, gate, up, dgate, dup);
}

void layer_norm(const Tensor& x, const Tensor& w, const Tensor* b, float eps, Tensor& out) {
  const char* op = "layer_norm";
  want_f32(op, x, "input");
  want_f32(op, w, "weight");
  want_numel(op, w, x.row_size(), "weight");
  if (b) {
    want_f32(op, *b, "bias");
    want_numel(op, *b, x.row_size(), "bias");
  }
  want_shape(op, out, x.shape(), "output");
  on(op, {&x, &w, b, &out}).layer_norm(x, w, b, eps, out);
}

void layer_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, float eps, Tensor* dx, Tensor* dw,
                         Tensor* db) {
  const char* op = "layer_norm_backward";
  want_numel(op, w, x.row_size(), "weight");
  want_shape(op, dy, x.shape(), "output gradient");
  if (dx) want_shape(op, *dx, x.shape(), "input gradient");
  if (dw) want_shape(op, *dw, w.shape(), "weight gradient");
  if (db) want_numel(op, *db, x.row_size(), "bias gradient");
  on(op, {&dy, &x, &w, dx, dw, db}).layer_norm_backward(dy, x, w, eps, dx, dw, db);
}

void gelu(const Tensor& x, GeluKind kind, Tensor& out) {
  const char* op = "gelu";
  want_f32(op, x, "input");
  want_shape(op, out, x.shape(), "output");
  on(op, {&x, &out}).gelu(x, kind, out);
}

void gelu_backward(const Tensor& dout, const Tensor& x, GeluKind kind, Tensor& dx) {
  const char* op = "gelu_backward";
  want_shape(op, dout, x.shape(), "output gradient");
  want_shape(op, dx, x.shape(), "input gradient");
  on(op, {&dout, &x, &dx}).gelu_backward(dout, x, kind, dx);
}

namespace {
void check_attention(const char* op, const KvPages& c, const AttentionArgs& a, int64_t rows) {
  if (a.heads <= 0 || a.kv_heads <= 0 || a.heads % a.kv_heads != 0 || a.head_dim <= 0) [[unlikely]]
    fail(op, "heads must be a positive multiple of kv_heads");
  if (!a.causal && a.window > 0) [[unlikely]]
    fail(op, "a sliding window applies to causal attention only");
  if (static_cast<int64_t>(a.pos.size()) != rows || a.slot.size() != a.pos.size()) [[unlikely]]
    fail(op, "one position and one slot per row expected");
  if (c.page_size <= 0 || c.k.ndim() != 4 || c.k.dim(1) != a.kv_heads || c.k.dim(2) != c.page_size ||
      c.k.dim(3) != a.head_dim || !(c.v.shape() == c.k.shape()) || c.v.dtype() != c.k.dtype()) [[unlikely]]
    fail(op, "the KV cache pages " + shape_str(c.k.shape()) + " do not fit kv_heads " + std::to_string(a.kv_heads) +
                 ", head_dim " + std::to_string(a.head_dim) + ", page " + std::to_string(c.page_size));
  if (c.k.dtype() != DType::F32 && c.k.dtype() != DType::BF16 && c.k.dtype() != DType::F16) [[unlikely]]
    fail(op, std::string("KV cache dtype ") + dtype_name(c.k.dtype()) + " is not supported (f32, bf16, f16)");
  if (c.page_table.dtype() != DType::I32 || c.page_table.ndim() != 2) [[unlikely]]
    fail(op, "the page table must be i32 [slots, pages]");
  if (c.page_table.device() != c.k.device()) [[unlikely]]
    fail(op, "the page table and the cache are on different devices");
  if (c.page_table.is_host()) {  // every entry names an existing page
    const int32_t* pt = c.page_table.data<int32_t>();
    for (int64_t i = 0; i < c.page_table.numel(); ++i)
      if (pt[i] < 0 || pt[i] >= c.k.dim(0)) [[unlikely]]
        fail(op, "page table entry " + std::to_string(pt[i]) + " is outside the " + std::to_string(c.k.dim(0)) +
                     " pages of the cache");
  }
  const int64_t slots = c.page_table.dim(0), cap = c.page_table.dim(1) * c.page_size;
  for (size_t t = 0; t < a.pos.size(); ++t)
    if (a.slot[t] < 0 || a.slot[t] >= slots || a.pos[t] < 0 || a.pos[t] >= cap) [[unlikely]]
      fail(op, "position " + std::to_string(a.pos[t]) + " of slot " + std::to_string(a.slot[t]) +
                   " is outside the cache (" + std::to_string(slots) + " slots of " + std::to_string(cap) +
                   " positions)");
}
}  // namespace

void kv_write(const Tensor& k, const Tensor& v, const AttentionArgs& a, KvPages& cache) {
  const char* op = "kv_write";
  check_attention(op, cache, a, k.dim(0));
  want_f32(op, k, "keys");
  want_shape(op, k, {k.dim(0), a.kv_heads * a.head_dim}, "keys");
  want_shape(op, v, k.shape(), "values");
  on(op, {&k, &v, &cache.k, &cache.v, &cache.page_table}).kv_write(k, v, a, cache);
}

void attention(const Tensor& q, const KvPages& cache, const AttentionArgs& a, Tensor& out, Tensor* lse) {
  const char* op = "attention";
  check_attention(op, cache, a, q.dim(0));
  want_f32(op, q, "queries");
  want_shape(op, q, {q.dim(0), a.heads * a.head_dim}, "queries");
  want_shape(op, out, q.shape(), "output");
  if (lse) want_shape(op, *lse, {q.dim(0), a.heads}, "log-sum-exp");
  on(op, {&q, &cache.k, &cache.v, &cache.page_table, &out, lse}).attention(q, cache, a, out, lse);
}

void attention_backward(const Tensor& dout, const Tensor& q, const Tensor& out, const Tensor& lse, const KvPages& cache,
                        const AttentionArgs& a, Tensor* dq, Tensor* dk, Tensor* dv) {
  const char* op = "attention_backward";
  check_attention(op, cache, a, q.dim(0));
  want_shape(op, dout, q.shape(), "output gradient");
  want_shape(op, lse, {q.dim(0), a.heads}, "log-sum-exp");
  if (dq) want_shape(op, *dq, q.shape(), "query gradient");
  const Shape kv{q.dim(0), a.kv_heads * a.head_dim};
  if (dk) want_shape(op, *dk, kv, "key gradient");
  if (dv) want_shape(op, *dv, kv, "value gradient");
  on(op, {&dout, &q, &out, &lse, &cache.k, dq, dk, dv}).attention_backward(dout, q, out, lse, cache, a, dq, dk, dv);
}

void softmax(const Tensor& x, Tensor& out) {
  const char* op = "softmax";
  want_f32(op, x, "input");
  want_shape(op, out, x.shape(), "output");
  on(op, {&x, &out}).softmax(x, out);
}

void softmax_backward(const Tensor& dy, const Tensor& y, Tensor& dx) {
  const char* op = "softmax_backward";
  want_shape(op, dy, y.shape(), "output gradient");
  want_shape(op, dx, y.shape(), "input gradient");
  on(op, {&dy, &y, &dx}).softmax_backward(dy, y, dx);
}

void token_logprobs(const Tensor& logits, std::span<const int32_t> targets, int32_t ignore, Tensor& lp, Tensor& lse) {
  const char* op = "token_logprobs";
  want_2d(op, logits, "logits");
  want_f32(op, logits, "logits");
  if (static_cast<int64_t>(targets.size()) != logits.dim(0)) [[unlikely]]
    fail(op, "one target per logits row expected");
  for (auto t : targets)
    if (t != ignore && (t < 0 || t >= logits.dim(1))) [[unlikely]]
      fail(op, "target " + std::to_string(t) + " is outside the vocabulary of " + std::to_string(logits.dim(1)));
  want_numel(op, lp, logits.dim(0), "log-probs");
  want_numel(op, lse, logits.dim(0), "log-sum-exp");
  on(op, {&logits, &lp, &lse}).token_logprobs(logits, targets, ignore, lp, lse);
}

void token_logprobs_backward(const Tensor& dlp, const Tensor& logits, const Tensor& lse,
                             std::span<const int32_t> targets, int32_t ignore, Tensor& dlogits) {
  const char* op = "token_logprobs_backward";
  want_numel(op, dlp, logits.dim(0), "log-prob gradient");
  if (static_cast<int64_t>(targets.size()) != logits.dim(0)) [[unlikely]]
    fail(op, "one target per logits row expected");
  for (auto t : targets)
    if (t != ignore && (t < 0 || t >= logits.dim(1))) [[unlikely]]
      fail(op, "target " + std::to_string(t) + " is outside the vocabulary of " + std::to_string(logits.dim(1)));
  want_shape(op, dlogits, logits.shape(), "logits gradient");
  on(op, {&dlp, &logits, &lse, &dlogits}).token_logprobs_backward(dlp, logits, lse, targets, ignore, dlogits);
}

void entropy(const Tensor& logits, Tensor& H, Tensor& lse) {
  const char* op = "entropy";
  want_2d(op, logits, "logits");
  want_f32(op, logits, "logits");
  want_numel(op, H, logits.dim(0), "entropies");
  want_numel(op, lse, logits.dim(0), "log-sum-exp");
  on(op, {&logits, &H, &lse}).entropy(logits, H, lse);
}

void entropy_backward(const Tensor& dH, const Tensor& logits, const Tensor& lse, const Tensor& H, Tensor& dlogits) {
  const char* op = "entropy_backward";
  want_numel(op, dH, logits.dim(0), "entropy gradient");
  want_numel(op, H, logits.dim(0), "entropies");
  want_numel(op, lse, logits.dim(0), "log-sum-exp");
  want_shape(op, dlogits, logits.shape(), "logits gradient");
  on(op, {&dH, &logits, &lse, &H, &dlogits}).entropy_backward(dH, logits, lse, H, dlogits);
}

void add(const Tensor& a, const Tensor& b, Tensor& out) {
  const char* op = "add";
  want_f32(op, a, "a");
  want_shape(op, b, a.shape(), "b");
  want_shape(op, out, a.shape(), "output");
  on(op, {&a, &b, &out}).add(a, b, out);
}

void scale(const Tensor& x, float s, Tensor& out) {
  const char* op = "scale";
  want_f32(op, x, "input");
  want_shape(op, out, x.shape(), "output");
  on(op, {&x, &out}).scale(x, s, out);
}

void axpy(float alpha, const Tensor& x, Tensor& y) {
  const char* op = "axpy";
  want_f32(op, x, "x");
  want_shape(op, y, x.shape(), "y");
  on(op, {&x, &y}).axpy(alpha, x, y);
}

void mul(const Tensor& a, const Tensor& b, Tensor& out) {
  const char* op = "mul";
  want_f32(op, a, "a");
  want_shape(op, b, a.shape(), "b");
  want_shape(op, out, a.shape(), "output");
  on(op, {&a, &b, &out}).mul(a, b, out);
}

void fill(Tensor& t, float value) {
  want_f32("fill", t, "tensor");
  on("fill", {&t}).fill(t, value);
}

void convert(const Tensor& src, Tensor& dst) {
  want_shape("convert", dst, src.shape(), "destination");
  on("convert", {&src, &dst}).convert(src, dst);
}

void gather_rows(const Tensor& x, std::span<const int32_t> rows, Tensor& out) {
  const char* op = "gather_rows";
  want_f32(op, x, "input");
  const bool flat = x.ndim() == 1;
  want_ids(op, rows, static_cast<int64_t>(rows.size()), x.dim(0), "row");
  want_shape(op, out,
             flat ? Shape{static_cast<int64_t>(rows.size())} : Shape{static_cast<int64_t>(rows.size()), x.dim(1)},
             "output");
  if (!flat) want_2d(op, x, "input");
  want_contiguous(op, out, "output");
  on(op, {&x, &out}).gather_rows(x, rows, out);
}

void scatter_add_rows(const Tensor& d, std::span<const int32_t> rows, Tensor& dx) {
  const char* op = "scatter_add_rows";
  want_ids(op, rows, d.dim(0), dx.dim(0), "row");
  want_numel(op, d, static_cast<int64_t>(rows.size()) * dx.row_size(), "gradient");
  want_contiguous(op, d, "gradient");
  on(op, {&d, &dx}).scatter_add_rows(d, rows, dx);
}

void segment_sum(const Tensor& x, std::span<const int32_t> segment, Tensor& out) {
  const char* op = "segment_sum";
  want_contiguous(op, x, "input");
  want_ids(op, segment, x.numel(), out.numel(), "segment id");
  on(op, {&x, &out}).segment_sum(x, segment, out);
}

void dropout(const Tensor& x, float p, uint64_t seed, Tensor& out) {
  const char* op = "dropout";
  want_contiguous(op, x, "input");
  want_shape(op, out, x.shape(), "output");
  want_contiguous(op, out, "output");
  if (!(p >= 0.0f && p < 1.0f)) [[unlikely]]
    fail(op, "probability must be in [0, 1)");
  on(op, {&x, &out}).dropout(x, p, seed, out);
}

double sum_squares(const Tensor& x) {
  want_f32("sum_squares", x, "input");
  want_contiguous("sum_squares", x, "input");
  return on("sum_squares", {&x}).sum_squares(x);
}

void adamw(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const AdamWArgs& a) {
  const char* op = "adamw";
  want_f32(op, param, "parameter");
  for (const Tensor* t : std::initializer_list<const Tensor*>{&grad, &m, &v}) {
    want_shape(op, *t, param.shape(), "state");
    want_f32(op, *t, "state");
  }
  for (const Tensor* t : std::initializer_list<const Tensor*>{&param, &grad, &m, &v})
    want_contiguous(op, *t, "every tensor");
  on(op, {&param, &grad, &m, &v}).adamw(param, grad, m, v, a);
}

}  // namespace yak::ops
