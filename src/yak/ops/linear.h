// y = x W^T (+ b): the one matrix product of the decoder. Small batches stream the weights once
// through SIMD dot products (decode); larger ones use OpenBLAS sgemm, converting 16-bit weights
// to f32 tile by tile so no second copy of the model is ever held.
#pragma once
#include <cstdint>

#include "yak/tensor/tensor.h"

namespace yak::ops {

// x: M rows of K floats (row stride K); W: [N, K] f32/bf16/f16; bias: [N] f32 or undefined.
// y: M rows of N floats (row stride ldy, default N).
void linear(const float* x, int64_t M, const Tensor& W, const Tensor* bias, float* y, int64_t ldy = 0);

// Rows at or below this count take the streaming (GEMV) path.
constexpr int64_t kGemvMaxRows = 8;

}  // namespace yak::ops
