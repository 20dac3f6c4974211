// libFuzzer target: bytes as a GBNF grammar (first byte even) or a JSON schema (odd), compiled,
// then the rest of the input fed through the matcher byte by byte, with a masking step over a
// golden vocabulary. Bad input may only surface as yak::Error.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "yak/base/error.h"
#include "yak/infer/grammar.h"
#include "yak/infer/json_schema.h"
#include "yak/tokenizer/tokenizer.h"

namespace {
std::shared_ptr<const yak::infer::VocabTrie> vocab() {
  static auto tok = yak::tok::load_tokenizer(std::string(YAK_SOURCE_DIR) + "/tests/golden/models/qwen2_chat");
  static auto v = std::make_shared<yak::infer::VocabTrie>(*tok);
  return v;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  // A NUL splits the grammar from the text to match.
  std::string input;
  if (auto nul = text.find('\0'); nul != std::string::npos) {
    input = text.substr(nul + 1);
    text.resize(nul);
  }
  try {
    const std::string gbnf = (data[0] & 1) ? yak::infer::json_schema_to_gbnf(text, "schema") : text;
    auto g = yak::infer::Grammar::parse(gbnf, "grammar");
    yak::infer::GrammarMatcher m({g, vocab()});
    std::vector<float> logits(static_cast<size_t>(vocab()->vocab_size()));
    m.mask(logits, {});
    for (char c : input)
      if (!m.accept_bytes(std::string(1, c))) break;
    m.mask(logits, {});
  } catch (const yak::Error&) {
  }
  return 0;
}
