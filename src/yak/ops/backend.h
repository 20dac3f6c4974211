// The backend seam. A Backend owns a device type's memory and kernels; ops (ops.h) dispatch
// each call to the backend of its inputs' device. Every kernel has a default here that copies
// the operands to the host, runs the CPU backend (the reference) and copies the results back,
// so a new backend starts working with only an allocator and adds kernels one by one;
// supports(op, dtype) says which ones it runs natively.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "yak/tensor/tensor.h"

namespace yak::ops {

enum class Op : uint8_t {
  Linear,
  LinearGroup,
  LinearBackward,
  Embedding,
  EmbeddingBackward,
  RmsNorm,
  RmsNormBackward,
  Rope,
  RopeBackward,
  SwiGlu,
  SwiGluBackward,
  LayerNorm,
  LayerNormBackward,
  Gelu,
  GeluBackward,
  KvWrite,
  Attention,
  AttentionBackward,
  Softmax,
  SoftmaxBackward,
  TokenLogprobs,
  TokenLogprobsBackward,
  Entropy,
  EntropyBackward,
  Add,
  Scale,
  Axpy,
  Mul,
  Fill,
  Convert,
  GatherRows,
  ScatterAddRows,
  SegmentSum,
  Dropout,
  SumSquares,
  AdamW,
  Count
};
const char* op_name(Op op);

// One layer's KV cache as attention reads it: pages of page_size positions, each holding every
// kv head's keys for those positions ([pages, kv_heads, page_size, head_dim], f32/bf16/f16);
// page_table[slot, p] is the physical page of the slot's positions [p * page_size, ...).
struct KvPages {
  Tensor k, v;
  Tensor page_table;  // i32 [slots, pages_per_slot]
  int64_t page_size = 0;
};

// The shape of an attention call; pos/slot give each query row's position and sequence slot.
// A slot's rows must be consecutive in the batch with consecutive positions.
struct AttentionArgs {
  int64_t heads = 0, kv_heads = 0, head_dim = 0;
  int64_t window = 0;  // sliding window in tokens; 0 = the whole prefix
  float scale = 1.0f;
  std::span<const int32_t> pos, slot;
  // false: every row sees all keys of its slot up to the last position of its run in this batch
  // (bidirectional attention within a segment, e.g. one image in a vision tower).
  bool causal = true;
};

// GELU: the exact form x Φ(x) (erf), or the tanh approximation (gelu_pytorch_tanh).
enum class GeluKind : uint8_t { Erf, Tanh };

// One product of a linear_group: y = x W^T (+ b when b is non-null and defined).
struct LinearTarget {
  const Tensor* W;
  const Tensor* b;
  Tensor* y;
};

struct AdamWArgs {
  double lr = 0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  int64_t step = 1;  // 1-based, for bias correction
  bool decay = true;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  virtual DeviceType device_type() const = 0;
  // True when this backend computes `op` for tensors of `dtype` itself (false: host fallback).
  virtual bool supports(Op op, DType dtype) const = 0;
  // Waits until queued work on the device finished (no-op on the CPU).
  virtual void synchronize() {}

  // Kernels. Outputs are written; gradients (names starting with d) are accumulated into.
  // y[M, N] = x[M, K] W[N, K]^T (+ b[N]); x f32, W any weight dtype the backend supports.
  virtual void linear(const Tensor& x, const Tensor& W, const Tensor* b, Tensor& y);
  // The products of one input with several weights (by default one linear each).
  virtual void linear_group(const Tensor& x, std::span<const LinearTarget> targets);
  // dx += dy W; dW += dy^T x; db += Σ_rows dy (each optional).
  virtual void linear_backward(const Tensor& dy, const Tensor& x, const Tensor& W, Tensor* dx, Tensor* dW, Tensor* db);
  virtual void embedding(const Tensor& E, std::span<const int32_t> ids, Tensor& out);
  virtual void embedding_backward(const Tensor& dout, std::span<const int32_t> ids, Tensor& dE);
  // Over consecutive groups of w.numel() values.
  virtual void rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& out);
  virtual void rms_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, float eps, Tensor* dx, Tensor* dw);
  // Rotate-half RoPE of every head_dim group of row t with cos/sin table cs[t] = cos[hd/2] | sin[hd/2].
  virtual void rope(const Tensor& x, const Tensor& cs, int64_t head_dim, Tensor& out);
  virtual void rope_backward(const Tensor& dy, const Tensor& cs, int64_t head_dim, Tensor& dx);
  virtual void swiglu(const Tensor& gate, const Tensor& up, Tensor& out);
  virtual void swiglu_backward(const Tensor& dout, const Tensor& gate, const Tensor& up, Tensor* dgate, Tensor* dup);
  // LayerNorm over each row: (x - mean) / sqrt(var + eps) * w + b (b optional; biased variance).
  virtual void layer_norm(const Tensor& x, const Tensor& w, const Tensor* b, float eps, Tensor& out);
  virtual void layer_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, float eps, Tensor* dx, Tensor* dw,
                                   Tensor* db);
  virtual void gelu(const Tensor& x, GeluKind kind, Tensor& out);
  virtual void gelu_backward(const Tensor& dout, const Tensor& x, GeluKind kind, Tensor& dx);
  // Writes rows of k, v [T, kv_heads * head_dim] at (slot[t], pos[t]) of the cache.
  virtual void kv_write(const Tensor& k, const Tensor& v, const AttentionArgs& a, KvPages& cache);
  // out[T, heads * head_dim] = softmax(scale q K^T + causal/window mask) V over the cache;
  // lse (optional, f32 [T, heads]) receives each row's log-sum-exp for the backward.
  virtual void attention(const Tensor& q, const KvPages& cache, const AttentionArgs& a, Tensor& out, Tensor* lse);
  // Gradients for q and for the k/v rows this batch wrote (keys cached earlier are constants).
  virtual void attention_backward(const Tensor& dout, const Tensor& q, const Tensor& out, const Tensor& lse,
                                  const KvPages& cache, const AttentionArgs& a, Tensor* dq, Tensor* dk, Tensor* dv);
  virtual void softmax(const Tensor& x, Tensor& out);
  virtual void softmax_backward(const Tensor& dy, const Tensor& y, Tensor& dx);
  // lp[r] = log softmax(logits[r])[targets[r]] (0 where targets[r] == ignore); lse[r] saved.
  virtual void token_logprobs(const Tensor& logits, std::span<const int32_t> targets, int32_t ignore, Tensor& lp,
                              Tensor& lse);
  // dlogits[r] += dlp[r] (onehot(target) - softmax(logits[r])) for counted rows.
  virtual void token_logprobs_backward(const Tensor& dlp, const Tensor& logits, const Tensor& lse,
                                       std::span<const int32_t> targets, int32_t ignore, Tensor& dlogits);
  // H[r] = -Σ p log p of softmax(logits[r]); lse[r] saved.
  virtual void entropy(const Tensor& logits, Tensor& H, Tensor& lse);
  virtual void entropy_backward(const Tensor& dH, const Tensor& logits, const Tensor& lse, const Tensor& H,
                                Tensor& dlogits);
  virtual void add(const Tensor& a, const Tensor& b, Tensor& out);
  virtual void scale(const Tensor& x, float s, Tensor& out);
  // y += alpha x
  virtual void axpy(float alpha, const Tensor& x, Tensor& y);
  virtual void mul(const Tensor& a, const Tensor& b, Tensor& out);
  virtual void fill(Tensor& t, float value);
  // Copies with a dtype conversion (same shape; float dtypes).
  virtual void convert(const Tensor& src, Tensor& dst);
  // out[i] = x[rows[i]] (rows of a matrix, or elements of a vector).
  virtual void gather_rows(const Tensor& x, std::span<const int32_t> rows, Tensor& out);
  // dx[rows[i]] += d[i]
  virtual void scatter_add_rows(const Tensor& d, std::span<const int32_t> rows, Tensor& dx);
  // out[segment[i]] += x[i] over a flat x.
  virtual void segment_sum(const Tensor& x, std::span<const int32_t> segment, Tensor& out);
  // out = x * mask / (1 - p), mask a pure function of (seed, element index).
  virtual void dropout(const Tensor& x, float p, uint64_t seed, Tensor& out);
  virtual double sum_squares(const Tensor& x);
  virtual void adamw(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const AdamWArgs& a);
};

// The registry: one backend per device type; the CPU backend is always registered.
void register_backend(std::unique_ptr<Backend> backend);
Backend& backend_for(Device device);
Backend& cpu_backend();
std::vector<Backend*> backends();

}  // namespace yak::ops
