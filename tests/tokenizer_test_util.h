// Helpers shared by the tokenizer tests: golden files, shared-data paths and skip messages.
// Goldens come from tools/golden/make_tokenizer_goldens.py; tests never regenerate them.
#pragma once
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "yak/base/json.h"
#include "yak/base/mmap.h"

namespace yak::tok::testing {

inline std::filesystem::path golden(const std::string& name) {
  return std::filesystem::path(YAK_GOLDEN_DIR) / "tokenizer" / name;
}
inline std::filesystem::path shared(const std::string& rel) {
  return std::filesystem::path(YAK_SHARED_DATA) / rel;
}
inline Json golden_json(const std::string& name) {
  return read_json_file(golden(name));
}
inline std::vector<int32_t> ids_of(const Json& j) {
  return j.get<std::vector<int32_t>>();
}

// Printable form of a text for failure messages (escapes control characters).
inline std::string show(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '\n')
      o += "\\n";
    else if (c == '\r')
      o += "\\r";
    else if (c == '\t')
      o += "\\t";
    else
      o += c;
  }
  return o;
}

}  // namespace yak::tok::testing

#define YAK_SKIP_UNLESS_SHARED(rel)                                                                 \
  do {                                                                                              \
    if (!std::filesystem::exists(::yak::tok::testing::shared(rel)))                                 \
      GTEST_SKIP() << "shared data " << (rel) << " not found beside the checkout (../shared/data)"; \
  } while (0)
