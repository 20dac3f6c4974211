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

enum class DType : uint8_t { F32, F16, BF16, F64, I64, I32, I16, I8, U8, Bool, Q8_0, Q4_0 };
constexpr int kDTypeCount = 12;

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

}  // namespace yak
