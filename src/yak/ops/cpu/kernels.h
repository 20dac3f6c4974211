// CPU kernels: plain functions over pointers and sizes, one computation each, so each can be
// tested and benchmarked alone. Activations are f32; weights may be f32, bf16 or f16.
#pragma once
#include <cstdint>

#include "yak/tensor/dtype.h"

namespace yak::ops::cpu {

// dot(w[0..n), x[0..n)) with w of dtype wt (F32, BF16, F16), x f32. SIMD when built for AVX2.
float dot(DType wt, const void* w, const float* x, int64_t n);

// For weight rows r in [r0, r1) of W (row-major [*, K], dtype wt):
//   y[m * ldy + r] = dot(W[r], x[m * ldx .. + K]) for m in [0, M).
// Each weight row is read once for all M inputs: the decode path (memory bound).
void gemv_rows(DType wt, const void* W, int64_t K, int64_t r0, int64_t r1, const float* x, int64_t M, int64_t ldx,
               float* y, int64_t ldy);

// Converts rows [r0, r1) of W (dtype wt, row length K) to f32 at dst (row-major, K per row).
void rows_to_f32(DType wt, const void* W, int64_t K, int64_t r0, int64_t r1, float* dst);

// out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i], for one row of n.
void rms_norm(const float* x, const float* w, float eps, int64_t n, float* out);

// out[i] = silu(gate[i]) * up[i]
void silu_mul(const float* gate, const float* up, int64_t n, float* out);

// In-place rotate-half RoPE on one head vector of size d with per-pair cos/sin of size d/2.
void rope_rotate_half(float* x, const float* cos, const float* sin, int64_t d);

// Numerically stable softmax in place over n values.
void softmax(float* x, int64_t n);

}  // namespace yak::ops::cpu
