// Element types of tensors. Plain types have a block of one element; quantized block formats
// (Q8_0, Q4_0, reserved for later) pack `block` elements into `block_bytes` bytes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace yak {

enum class DType : uint8_t { F32, F16, BF16, F64, I64, I32, I16, I8, U8, Bool, Q8_0, Q4_0 };

struct DTypeInfo {
  const char* name;
  int block;        // elements per block
  int block_bytes;  // bytes per block
  bool is_float;
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

}  // namespace yak
