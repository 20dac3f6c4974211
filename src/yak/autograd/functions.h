// Differentiable ops of the decoder over f32 activations. Each runs its forward through ops
// (ops/ops.h) on the inputs' device and, when recording, pushes a closure that calls the op's
// backward; no arithmetic happens here.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "yak/autograd/var.h"
#include "yak/ops/backend.h"

namespace yak::ag {

// Rows ids of table E [V, D] (any float dtype) → [n, D] f32.
Var embedding(const Var& E, std::span<const int32_t> ids);
// x [M, K] · W[N, K]^T (+ b[N]) → [M, N]. W may be f32/bf16/f16 when it needs no gradient.
Var linear(const Var& x, const Var& W, const Var* bias = nullptr);
// linear(x, W_i, b_i) for several weights of one input; without a tape they run as one op
// (ops::linear_group), with one they are separate linears. b may hold null entries.
// out[i] receives the i-th product (out.size() == W.size() == b.size()).
void linear_group(const Var& x, std::span<const Var* const> W, std::span<const Var* const> b, std::span<Var> out);
// RMSNorm over consecutive groups of w.numel() values (per row, or per head when w is [head_dim]).
Var rms_norm(const Var& x, const Var& w, float eps);
// LayerNorm over each row (w, b [row size]; bias optional).
Var layer_norm(const Var& x, const Var& w, const Var* bias, float eps);
// GELU, exact (erf) or tanh-approximated.
Var gelu(const Var& x, ops::GeluKind kind);
// Rotate-half RoPE on every head_dim group of row t with the table cs [T, head_dim] (cos | sin).
Var rope(const Var& x, const Tensor& cs, int64_t head_dim);
// silu(gate) * up
Var swiglu(const Var& gate, const Var& up);
Var add(const Var& a, const Var& b);
// x with v[i] added to row rows[i] (rows distinct).
Var add_rows(const Var& x, std::span<const int32_t> rows, const Var& v);
// x with row rows[i] replaced by v[i] (rows distinct): image features in place of their tokens.
Var put_rows(const Var& x, std::span<const int32_t> rows, const Var& v);
// x * c elementwise for a constant c of x's shape.
Var mul_by(const Var& x, const Tensor& c);
// The same values under another shape (x contiguous).
Var reshape(const Var& x, const Shape& shape);
// Rows `rows` of x [T, D] → [rows.size(), D] (elements of a vector x [T] → [rows.size()])
Var gather_rows(const Var& x, std::span<const int32_t> rows);
// Σ over rows with target != ignore_index of (logsumexp(row) - row[target]); a one-element Var.
Var cross_entropy_sum(const Var& logits, std::span<const int32_t> targets, int32_t ignore_index = -100);
// Per-row token log-probabilities log softmax(row)[target] (0 where ignored), [n].
Var token_logprobs(const Var& logits, std::span<const int32_t> targets, int32_t ignore_index = -100);
// Per-row entropy of softmax(row): -Σ p log p, [n] (the entropy bonus of policy gradients).
Var token_entropy(const Var& logits);
Var scale(const Var& x, float s);
// out[segment[i]] += x[i] for a flat x; segment ids in [0, n). Sums per-token values per sequence.
Var segment_sum(const Var& x, std::span<const int32_t> segment, int64_t n);
// Inverted dropout: zero with probability p, scale kept values by 1/(1-p); the mask is a pure
// function of (seed, index), so a run repeats exactly.
Var dropout(const Var& x, float p, uint64_t seed);

}  // namespace yak::ag
