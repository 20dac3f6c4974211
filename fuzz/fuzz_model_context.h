// What the serve-side fuzz targets parse requests against: a golden checkpoint's tokenizer, the
// ChatML template and the vocabulary trie constrained output matches over.
#pragma once
#include <memory>
#include <string>

#include "yak/serve/openai.h"

inline const yak::serve::ModelContext& fuzz_model_context() {
  static std::unique_ptr<yak::tok::Tokenizer> tok =
      yak::tok::load_tokenizer(std::string(YAK_SOURCE_DIR) + "/tests/golden/models/qwen2_chat");
  static yak::serve::ModelContext m = [] {
    yak::serve::ModelContext c;
    c.id = "fuzz";
    c.tok = tok.get();
    c.chat_template = yak::tok::ChatTemplate::by_name("chatml");
    c.ctx = 256;
    c.vocab = std::make_shared<yak::infer::VocabTrie>(*tok);
    return c;
  }();
  return m;
}
