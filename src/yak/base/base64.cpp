#include "yak/base/base64.h"

namespace yak::base64 {

std::optional<std::vector<uint8_t>> decode(std::string_view text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::vector<uint8_t> out;
  out.reserve(text.size() / 4 * 3);
  uint32_t acc = 0;
  int bits = 0, pad = 0;
  for (char c : text) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      ++pad;
      continue;
    }
    const int v = value(c);
    if (v < 0 || pad) return std::nullopt;  // a foreign character, or data after the padding
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<uint8_t>(acc >> bits));
    }
  }
  // What is left must be the zero bits of a partial group, with the padding that completes it.
  if (pad > 2 || (bits != 0 && bits != 2 && bits != 4) || (acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  if (pad && pad != bits / 2) return std::nullopt;
  return out;
}

}  // namespace yak::base64
