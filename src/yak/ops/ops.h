// The operations of the decoder and its trainers, forward and backward side by side. Each call
// checks its operands (shapes, dtypes, one device) and runs on the backend of that device
// (backend.h). Outputs are written; gradients (d...) are accumulated. Everything above ops
// computes through these functions only.
#pragma once
#include <cstdint>
#include <span>
#include <string>

#include "yak/ops/backend.h"

namespace yak::ops {

// Threads of the CPU backend (and of OpenBLAS). n <= 0 means all cores.
void set_num_threads(int n);
int num_threads();

// How f32 matrix products may be computed, as torch.set_float32_matmul_precision names it:
// Highest = f32 multiply-adds; High (the default) = bf16 parts summed to f32 accuracy where the
// CPU has tile units (AMX), else f32; Medium = activations and f32 weights rounded to bf16 once
// (the speed and numerics of bf16 compute, as llama.cpp and torch.autocast use).
enum class MatmulPrecision : uint8_t { Highest, High, Medium };
void set_matmul_precision(MatmulPrecision p);
MatmulPrecision matmul_precision();
// "highest", "high", "medium"; throws yak::Error naming `what` otherwise.
MatmulPrecision parse_matmul_precision(const std::string& s, const std::string& what);

// y = x W^T (+ b): x [M, K] f32, W [N, K] (f32, bf16, f16), b [N] f32, y [M, N] f32.
void linear(const Tensor& x, const Tensor& W, const Tensor* b, Tensor& y);
// Several products of one input at once, y_i = x W_i^T (+ b_i) (a decode step's q/k/v or gate/up:
// one pass over the threads instead of one per weight). Every W_i has x's features.
void linear_group(const Tensor& x, std::span<const LinearTarget> targets);
// dx += dy W, dW += dy^T x, db += Σ dy (each optional; W may be 16-bit when dW is null).
void linear_backward(const Tensor& dy, const Tensor& x, const Tensor& W, Tensor* dx, Tensor* dW, Tensor* db);

// out[i] = E[ids[i]] as f32.
void embedding(const Tensor& E, std::span<const int32_t> ids, Tensor& out);
void embedding_backward(const Tensor& dout, std::span<const int32_t> ids, Tensor& dE);

// RMSNorm over groups of w.numel() values (per row, or per head when w is [head_dim]).
void rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& out);
void rms_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, float eps, Tensor* dx, Tensor* dw);

// Rotate-half RoPE; cs [T, head_dim] holds cos[hd/2] then sin[hd/2] for each row's position.
void rope(const Tensor& x, const Tensor& cs, int64_t head_dim, Tensor& out);
void rope_backward(const Tensor& dy, const Tensor& cs, int64_t head_dim, Tensor& dx);

// out = silu(gate) * up
void swiglu(const Tensor& gate, const Tensor& up, Tensor& out);
void swiglu_backward(const Tensor& dout, const Tensor& gate, const Tensor& up, Tensor* dgate, Tensor* dup);

// LayerNorm over each row of x (w and b [row size]; b optional): (x - mean) / sqrt(var + eps) w + b.
void layer_norm(const Tensor& x, const Tensor& w, const Tensor* b, float eps, Tensor& out);
void layer_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, float eps, Tensor* dx, Tensor* dw,
                         Tensor* db);

// GELU elementwise: x Φ(x) exactly (erf) or with the tanh approximation.
void gelu(const Tensor& x, GeluKind kind, Tensor& out);
void gelu_backward(const Tensor& dout, const Tensor& x, GeluKind kind, Tensor& dx);

// Attention over a paged KV cache (see KvPages, AttentionArgs).
void kv_write(const Tensor& k, const Tensor& v, const AttentionArgs& a, KvPages& cache);
void attention(const Tensor& q, const KvPages& cache, const AttentionArgs& a, Tensor& out, Tensor* lse);
void attention_backward(const Tensor& dout, const Tensor& q, const Tensor& out, const Tensor& lse, const KvPages& cache,
                        const AttentionArgs& a, Tensor* dq, Tensor* dk, Tensor* dv);

// Row softmax and its backward: dx += y (dy - Σ dy y).
void softmax(const Tensor& x, Tensor& out);
void softmax_backward(const Tensor& dy, const Tensor& y, Tensor& dx);

// Token log-probabilities of targets (0 where ignored) and the rows' log-sum-exp; the backward
// accumulates dlp (onehot - softmax). Cross-entropy is -Σ lp.
void token_logprobs(const Tensor& logits, std::span<const int32_t> targets, int32_t ignore, Tensor& lp, Tensor& lse);
void token_logprobs_backward(const Tensor& dlp, const Tensor& logits, const Tensor& lse,
                             std::span<const int32_t> targets, int32_t ignore, Tensor& dlogits);
// Entropy of each row's softmax.
void entropy(const Tensor& logits, Tensor& H, Tensor& lse);
void entropy_backward(const Tensor& dH, const Tensor& logits, const Tensor& lse, const Tensor& H, Tensor& dlogits);

// Elementwise (f32, same element counts; out may be an input).
void add(const Tensor& a, const Tensor& b, Tensor& out);
void scale(const Tensor& x, float s, Tensor& out);
void axpy(float alpha, const Tensor& x, Tensor& y);  // y += alpha x
void mul(const Tensor& a, const Tensor& b, Tensor& out);
void fill(Tensor& t, float value);
void convert(const Tensor& src, Tensor& dst);  // dtype conversion, same shape
void gather_rows(const Tensor& x, std::span<const int32_t> rows, Tensor& out);
void scatter_add_rows(const Tensor& d, std::span<const int32_t> rows, Tensor& dx);
void segment_sum(const Tensor& x, std::span<const int32_t> segment, Tensor& out);
void dropout(const Tensor& x, float p, uint64_t seed, Tensor& out);
// Σ x² in double.
double sum_squares(const Tensor& x);
// One AdamW update of param from grad with moments m, v (torch.optim.AdamW's formula).
void adamw(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const AdamWArgs& a);

// A new f32 tensor of a given shape on a device (for op outputs).
inline Tensor new_f32(const Shape& shape, Device device) {
  return Tensor::empty(shape, DType::F32, device);
}

}  // namespace yak::ops
