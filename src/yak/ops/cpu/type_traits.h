// The CPU's half of the weight-type table (the other half, block sizes and reference
// conversions, is dtype_info in tensor/dtype.h): per dtype, the SIMD conversion to f32, the
// matrix-vector kernel over rows of that type, and the activation type its dot product pairs
// with. Code that reads a weight matrix looks its dtype up here instead of switching on it; a
// new weight type is a new row plus its kernels.
#pragma once
#include <cstdint>

#include "yak/tensor/dtype.h"

namespace yak::ops::cpu {

struct CpuTypeTraits {
  DType type;
  // n elements (a multiple of the block size) to f32, with the active instruction set.
  void (*to_f32)(const void* src, float* dst, int64_t n);
  // f32 to this type; null where the type is read-only for yak.
  void (*from_f32)(const float* src, void* dst, int64_t n);
  // Rewrites one activation row into the layout gemv reads (the vec_dot type's form); null
  // when gemv reads plain f32 rows.
  void (*prep)(const float* x, int64_t K, float* out);
  // y[m * ldy + r] = Σ_k W[r, k] x[m, k] for rows [r0, r1) (row r at W + r * ldw bytes), x
  // as prep wrote it.
  void (*gemv)(const void* W, int64_t ldw_bytes, int64_t K, int64_t r0, int64_t r1, const float* x, int64_t M,
               int64_t ldx, float* y, int64_t ldy);
  // The activation type this type's dot product reads (f32 for the float formats; Q8_0, Q8_1 or
  // Q8_K for the quantized ones, which prep writes into the float buffer's bytes).
  DType vec_dot_type;
};

// Null for dtypes the CPU backend cannot compute with.
const CpuTypeTraits* cpu_traits(DType t);

}  // namespace yak::ops::cpu
