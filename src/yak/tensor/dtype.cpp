#include "yak/tensor/dtype.h"

#include <cstring>

#include "yak/base/error.h"
#include "yak/tensor/half.h"
#include "yak/tensor/quant.h"

namespace yak {
namespace {

template <typename T>
void plain_to_float(const void* src, float* dst, int64_t n) {
  auto s = static_cast<const T*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(s[i]);
}
template <typename T>
void plain_from_float(const float* src, void* dst, int64_t n) {
  auto d = static_cast<T*>(dst);
  for (int64_t i = 0; i < n; ++i) d[i] = static_cast<T>(src[i]);
}
void f32_to_float(const void* src, float* dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * 4);
}
void f32_from_float(const float* src, void* dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * 4);
}
void bf16_to_float(const void* src, float* dst, int64_t n) {
  auto s = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
}
void bf16_from_float(const float* src, void* dst, int64_t n) {
  auto d = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
}
void f16_to_float(const void* src, float* dst, int64_t n) {
  auto s = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]);
}
void f16_from_float(const float* src, void* dst, int64_t n) {
  auto d = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) d[i] = f32_to_f16(src[i]);
}

// Indexed by DType.
const DTypeInfo kInfos[kDTypeCount] = {
    {DType::F32, "f32", 1, 4, true, f32_to_float, f32_from_float, "F32", 0},
    {DType::F16, "f16", 1, 2, true, f16_to_float, f16_from_float, "F16", 1},
    {DType::BF16, "bf16", 1, 2, true, bf16_to_float, bf16_from_float, "BF16", 30},
    {DType::F64, "f64", 1, 8, true, plain_to_float<double>, plain_from_float<double>, "F64", 28},
    {DType::I64, "i64", 1, 8, false, plain_to_float<int64_t>, nullptr, "I64", 27},
    {DType::I32, "i32", 1, 4, false, plain_to_float<int32_t>, nullptr, "I32", 26},
    {DType::I16, "i16", 1, 2, false, plain_to_float<int16_t>, nullptr, "I16", 25},
    {DType::I8, "i8", 1, 1, false, plain_to_float<int8_t>, nullptr, "I8", 24},
    {DType::U8, "u8", 1, 1, false, plain_to_float<uint8_t>, nullptr, "U8", -1},
    {DType::Bool, "bool", 1, 1, false, plain_to_float<uint8_t>, nullptr, "BOOL", -1},
    {DType::Q8_0, "q8_0", 32, 34, true, quant::dequantize_q8_0, quant::quantize_q8_0, nullptr, 8},
    {DType::Q4_0, "q4_0", 32, 18, true, quant::dequantize_q4_0, quant::quantize_q4_0, nullptr, 2},
    {DType::Q4_1, "q4_1", 32, 20, true, quant::dequantize_q4_1, quant::quantize_q4_1, nullptr, 3},
    {DType::Q5_0, "q5_0", 32, 22, true, quant::dequantize_q5_0, quant::quantize_q5_0, nullptr, 6},
    {DType::Q5_1, "q5_1", 32, 24, true, quant::dequantize_q5_1, quant::quantize_q5_1, nullptr, 7},
    {DType::Q8_1, "q8_1", 32, 36, true, quant::dequantize_q8_1, quant::quantize_q8_1, nullptr, 9},
    {DType::Q2_K, "q2_k", 256, 84, true, quant::dequantize_q2_k, quant::quantize_q2_k, nullptr, 10},
    {DType::Q3_K, "q3_k", 256, 110, true, quant::dequantize_q3_k, quant::quantize_q3_k, nullptr, 11},
    {DType::Q4_K, "q4_k", 256, 144, true, quant::dequantize_q4_k, quant::quantize_q4_k, nullptr, 12},
    {DType::Q5_K, "q5_k", 256, 176, true, quant::dequantize_q5_k, quant::quantize_q5_k, nullptr, 13},
    {DType::Q6_K, "q6_k", 256, 210, true, quant::dequantize_q6_k, quant::quantize_q6_k, nullptr, 14},
    {DType::Q8_K, "q8_k", 256, 292, true, quant::dequantize_q8_k, quant::quantize_q8_k, nullptr, 15},
};

}  // namespace

const DTypeInfo& dtype_info(DType t) {
  return kInfos[static_cast<int>(t)];
}

size_t dtype_bytes(DType t, int64_t n) {
  const auto& info = dtype_info(t);
  if (n % info.block != 0) [[unlikely]]
    throw Error("element count " + std::to_string(n) + " is not a multiple of the " + info.name + " block size");
  return static_cast<size_t>(n / info.block) * info.block_bytes;
}

std::optional<DType> dtype_from_safetensors(std::string_view s) {
  for (auto& i : kInfos)
    if (i.safetensors && s == i.safetensors) return i.type;
  return std::nullopt;
}

std::string dtype_to_safetensors(DType t) {
  const char* s = dtype_info(t).safetensors;
  if (!s) throw Error(std::string("dtype ") + dtype_name(t) + " has no safetensors spelling");
  return s;
}

std::optional<DType> dtype_from_name(std::string_view s) {
  for (auto& i : kInfos)
    if (s == i.name) return i.type;
  return std::nullopt;
}

std::optional<DType> dtype_from_ggml(uint32_t g) {
  for (auto& i : kInfos)
    if (i.ggml == static_cast<int>(g)) return i.type;
  return std::nullopt;
}

}  // namespace yak
