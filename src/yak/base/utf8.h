// UTF-8 helpers: validation (prompts must be valid UTF-8) and incomplete-tail detection
// (streaming output never prints half a character).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace yak::utf8 {

// Byte offset of the first invalid sequence, or npos when the whole string is valid.
size_t find_invalid(std::string_view s);
inline bool is_valid(std::string_view s) {
  return find_invalid(s) == std::string_view::npos;
}

// Length of a trailing prefix of a multi-byte character that is still missing bytes (0..3).
size_t incomplete_tail(std::string_view s);

// Appends the UTF-8 encoding of code point cp.
void append(std::string& out, uint32_t cp);

// Whether Python's str.isspace() holds for cp: the whitespace str.split() and str.strip() use.
bool is_python_space(uint32_t cp);

// Decodes one code point at s[i]; advances i. Invalid bytes decode as U+FFFD, one byte each.
uint32_t next(std::string_view s, size_t& i);

}  // namespace yak::utf8
