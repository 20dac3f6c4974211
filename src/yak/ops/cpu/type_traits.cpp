#include "yak/ops/cpu/type_traits.h"

#include <algorithm>
#include <cstring>

#include "yak/ops/cpu/kernels.h"

namespace yak::ops::cpu {
namespace {

void f32_to_f32(const void* s, float* d, int64_t n) {
  std::memcpy(d, s, static_cast<size_t>(n) * 4);
}
void f32_from_f32(const float* s, void* d, int64_t n) {
  std::memcpy(d, s, static_cast<size_t>(n) * 4);
}
void bf16_to(const void* s, float* d, int64_t n) {
  kernels().bf16_to_f32(static_cast<const uint16_t*>(s), d, n);
}
void bf16_from(const float* s, void* d, int64_t n) {
  kernels().f32_to_bf16(s, static_cast<uint16_t*>(d), n);
}
void f16_to(const void* s, float* d, int64_t n) {
  kernels().f16_to_f32(static_cast<const uint16_t*>(s), d, n);
}
void f16_from(const float* s, void* d, int64_t n) {
  kernels().f32_to_f16(s, static_cast<uint16_t*>(d), n);
}
void prep_bf16(const float* x, int64_t K, float* out) {
  kernels().prep_bf16(x, K, out);
}
void gemv_f32(const void* W, int64_t ldw, int64_t K, int64_t r0, int64_t r1, const float* x, int64_t M, int64_t ldx,
              float* y, int64_t ldy) {
  kernels().gemv_f32(static_cast<const float*>(W), ldw / 4, K, r0, r1, x, M, ldx, y, ldy);
}
void gemv_bf16(const void* W, int64_t ldw, int64_t K, int64_t r0, int64_t r1, const float* x, int64_t M, int64_t ldx,
               float* y, int64_t ldy) {
  kernels().gemv_bf16(static_cast<const uint16_t*>(W), ldw / 2, K, r0, r1, x, M, ldx, y, ldy);
}
void gemv_f16(const void* W, int64_t ldw, int64_t K, int64_t r0, int64_t r1, const float* x, int64_t M, int64_t ldx,
              float* y, int64_t ldy) {
  kernels().gemv_f16(static_cast<const uint16_t*>(W), ldw / 2, K, r0, r1, x, M, ldx, y, ldy);
}

// Quantized weights: activations are quantized once per row to the pair format (the reference
// quantizer: cheap next to reading the weights, and the same on every instruction set), then each
// weight row is read once for all M rows.
template <DType Act>
void prep_quant(const float* x, int64_t K, float* out) {
  dtype_info(Act).from_float(x, out, K);
}
template <DType W, QuantDot Q>
void gemv_quant(const void* Wp, int64_t ldw, int64_t K, int64_t r0, int64_t r1, const float* x, int64_t M, int64_t ldx,
                float* y, int64_t ldy) {
  const auto dot4 = kernels().vec_dot4_q[static_cast<int>(Q)];
  const auto* base = static_cast<const uint8_t*>(Wp);
  for (int64_t r = r0; r < r1; r += 4) {
    const int rows = static_cast<int>(std::min<int64_t>(4, r1 - r));
    for (int64_t m = 0; m < M; ++m) {
      float out[4];
      dot4(K, base + r * ldw, ldw, x + m * ldx, out, rows);
      for (int k = 0; k < rows; ++k) y[m * ldy + r + k] = out[k];
    }
  }
}
template <QuantDot Q>
void quant_to_f32(const void* s, float* d, int64_t n) {
  kernels().dequant_q[static_cast<int>(Q)](s, d, n);
}
template <DType W>
void quant_from_f32(const float* s, void* d, int64_t n) {
  dtype_info(W).from_float(s, d, n);
}
template <DType W, QuantDot Q, DType Act>
constexpr CpuTypeTraits quant_row() {
  return {W, quant_to_f32<Q>, quant_from_f32<W>, prep_quant<Act>, gemv_quant<W, Q>, Act};
}

const CpuTypeTraits kTraits[] = {
    {DType::F32, f32_to_f32, f32_from_f32, nullptr, gemv_f32, DType::F32},
    {DType::F16, f16_to, f16_from, nullptr, gemv_f16, DType::F32},
    {DType::BF16, bf16_to, bf16_from, prep_bf16, gemv_bf16, DType::F32},
    quant_row<DType::Q8_0, QuantDot::Q8_0, DType::Q8_0>(),
    quant_row<DType::Q4_0, QuantDot::Q4_0, DType::Q8_0>(),
    quant_row<DType::Q4_1, QuantDot::Q4_1, DType::Q8_1>(),
    quant_row<DType::Q5_0, QuantDot::Q5_0, DType::Q8_0>(),
    quant_row<DType::Q5_1, QuantDot::Q5_1, DType::Q8_1>(),
    quant_row<DType::Q2_K, QuantDot::Q2_K, DType::Q8_K>(),
    quant_row<DType::Q3_K, QuantDot::Q3_K, DType::Q8_K>(),
    quant_row<DType::Q4_K, QuantDot::Q4_K, DType::Q8_K>(),
    quant_row<DType::Q5_K, QuantDot::Q5_K, DType::Q8_K>(),
    quant_row<DType::Q6_K, QuantDot::Q6_K, DType::Q8_K>(),
};

}  // namespace

const CpuTypeTraits* cpu_traits(DType t) {
  for (auto& tr : kTraits)
    if (tr.type == t) return &tr;
  return nullptr;
}

}  // namespace yak::ops::cpu
