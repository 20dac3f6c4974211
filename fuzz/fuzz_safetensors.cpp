// Fuzzes the safetensors header parser: any bytes must give a tensor table or a yak::Error.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "yak/base/error.h"
#include "yak/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    std::map<std::string, std::string> meta;
    auto entries = yak::io::SafetensorsFile::parse_header(data, size, "fuzz", &meta);
    // Every accepted entry must lie inside the buffer.
    uint64_t n = 0;
    std::memcpy(&n, data, 8);
    for (auto& [name, e] : entries)
      if (8 + n + e.end > size) __builtin_trap();
  } catch (const yak::Error&) {
  }
  return 0;
}
