// libFuzzer target: bytes as a benchmark CSV file (RFC 4180). Bad input may only surface as
// yak::Error.
#include <cstddef>
#include <cstdint>
#include <string>

#include "yak/base/error.h"
#include "yak/io/csv.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto rows = yak::io::parse_csv(std::string(reinterpret_cast<const char*>(data), size), "fuzz.csv");
    (void)rows;
  } catch (const yak::Error&) {
  }
  return 0;
}
