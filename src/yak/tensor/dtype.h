// Element types as data: one traits row per dtype (name, block size, bytes per block, reference
// conversions to and from f32). Plain types have a block of one element; block formats pack
// `block` elements into `block_bytes`. The CPU backend keeps a second table beside this one with
// its SIMD conversions and dot products (ops/cpu/type_traits.h); a new weight type is a row in
// each plus its kernels.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace yak {

// Q* are ggml's block formats (tensor/quant.h); Q8_1 and Q8_K hold activations only.
enum class DType : uint8_t {
  F32,
  F16,
  BF16,
  F64,
  I64,
  I32,
  I16,
  I8,
  U8,
  Bool,
  Q8_0,
  Q4_0,
  Q4_1,
  Q5_0,
  Q5_1,
  Q8_1,
  Q2_K,
  Q3_K,
  Q4_K,
  Q5_K,
  Q6_K,
  Q8_K
};
constexpr int kDTypeCount = 22;

// Row conversions over n elements (n a multiple of the block size); scalar reference code.
using ToFloatFn = void (*)(const void* src, float* dst, int64_t n);
using FromFloatFn = void (*)(const float* src, void* dst, int64_t n);

struct DTypeInfo {
  DType type;
  const char* name;
  int block;                // elements per block
  int block_bytes;          // bytes per block
  bool is_float;            // holds real numbers (float formats and quantized blocks)
  ToFloatFn to_float;       // null where yak has no conversion (yet)
  FromFloatFn from_float;   // null where yak has no conversion (yet)
  const char* safetensors;  // "F32", ...; null: no safetensors spelling
  int ggml;                 // ggml_type id in GGUF files; -1: none
};

const DTypeInfo& dtype_info(DType t);
inline const char* dtype_name(DType t) {
  return dtype_info(t).name;
}
// Bytes for n elements; n must be a multiple of the block size.
size_t dtype_bytes(DType t, int64_t n);
// safetensors spelling ("F32", "BF16", ...) to DType; nullopt for types yak does not read.
std::optional<DType> dtype_from_safetensors(std::string_view s);
std::string dtype_to_safetensors(DType t);
// "f32", "bf16", ... as yak prints them; nullopt for unknown names.
std::optional<DType> dtype_from_name(std::string_view s);
// ggml_type id (GGUF tensor info) to DType; nullopt for types yak does not read.
std::optional<DType> dtype_from_ggml(uint32_t ggml_type);
// True for the block formats (quantized: is_float with block > 1).
inline bool dtype_is_quantized(DType t) {
  return dtype_info(t).block > 1;
}

}  // namespace yak
