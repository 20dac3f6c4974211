#include "yak/ops/cpu/type_traits.h"

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

const CpuTypeTraits kTraits[] = {
    {DType::F32, f32_to_f32, f32_from_f32, nullptr, gemv_f32, DType::F32},
    {DType::F16, f16_to, f16_from, nullptr, gemv_f16, DType::F32},
    {DType::BF16, bf16_to, bf16_from, prep_bf16, gemv_bf16, DType::F32},
};

}  // namespace

const CpuTypeTraits* cpu_traits(DType t) {
  for (auto& tr : kTraits)
    if (tr.type == t) return &tr;
  return nullptr;
}

}  // namespace yak::ops::cpu
