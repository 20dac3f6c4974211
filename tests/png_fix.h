// Recomputes the CRC of every whole chunk of a PNG in place, so that damage made on purpose
// (tests, the fuzzer) reaches the decoder behind the checksums.
#pragma once
#include <zlib.h>

#include <cstdint>
#include <vector>

namespace yak::testing {

inline void fix_png_crcs(std::vector<uint8_t>& b) {
  size_t at = 8;
  while (at + 12 <= b.size()) {
    const uint32_t len = (uint32_t{b[at]} << 24) | (uint32_t{b[at + 1]} << 16) | (uint32_t{b[at + 2]} << 8) | b[at + 3];
    if (len > b.size() - at - 12) return;
    const uint32_t c = static_cast<uint32_t>(crc32(0, b.data() + at + 4, len + 4));
    for (int k = 0; k < 4; ++k) b[at + 8 + len + k] = static_cast<uint8_t>(c >> (24 - 8 * k));
    at += 12 + len;
  }
}

}  // namespace yak::testing
