#include "yak/tensor/dtype.h"

#include "yak/base/error.h"

namespace yak {

const DTypeInfo& dtype_info(DType t) {
  static const DTypeInfo infos[] = {
      {"f32", 1, 4, true},  {"f16", 1, 2, true},   {"bf16", 1, 2, true},   {"f64", 1, 8, true},
      {"i64", 1, 8, false}, {"i32", 1, 4, false},  {"i16", 1, 2, false},   {"i8", 1, 1, false},
      {"u8", 1, 1, false},  {"bool", 1, 1, false}, {"q8_0", 32, 34, true}, {"q4_0", 32, 18, true},
  };
  return infos[static_cast<int>(t)];
}

size_t dtype_bytes(DType t, int64_t n) {
  const auto& info = dtype_info(t);
  check(n % info.block == 0,
        std::string("element count ") + std::to_string(n) + " is not a multiple of the " + info.name + " block size");
  return static_cast<size_t>(n / info.block) * info.block_bytes;
}

std::optional<DType> dtype_from_safetensors(std::string_view s) {
  if (s == "F32") return DType::F32;
  if (s == "F16") return DType::F16;
  if (s == "BF16") return DType::BF16;
  if (s == "F64") return DType::F64;
  if (s == "I64") return DType::I64;
  if (s == "I32") return DType::I32;
  if (s == "I16") return DType::I16;
  if (s == "I8") return DType::I8;
  if (s == "U8") return DType::U8;
  if (s == "BOOL") return DType::Bool;
  return std::nullopt;
}

std::string dtype_to_safetensors(DType t) {
  switch (t) {
    case DType::F32:
      return "F32";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
    case DType::F64:
      return "F64";
    case DType::I64:
      return "I64";
    case DType::I32:
      return "I32";
    case DType::I16:
      return "I16";
    case DType::I8:
      return "I8";
    case DType::U8:
      return "U8";
    case DType::Bool:
      return "BOOL";
    default:
      throw Error(std::string("dtype ") + dtype_name(t) + " has no safetensors spelling");
  }
}

}  // namespace yak
