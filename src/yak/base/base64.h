// Base64 (RFC 4648, standard alphabet, '=' padding) for data: URLs.
#pragma once
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace yak::base64 {

// The bytes, or nullopt when `text` is not valid base64 (ASCII whitespace is skipped).
std::optional<std::vector<uint8_t>> decode(std::string_view text);

}  // namespace yak::base64
