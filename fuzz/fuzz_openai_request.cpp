// libFuzzer target: bytes as the body of POST /v1/chat/completions and /v1/completions (first
// byte picks which) for yak serve's request parser, over a golden checkpoint's tokenizer and
// chat template, grammars and JSON schemas included. Bad input may only surface as
// serve::ApiError (an OpenAI error reply).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fuzz_model_context.h"
#include "yak/serve/openai.h"

namespace {
const yak::serve::ModelContext& context() { return fuzz_model_context(); }
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    const auto j = yak::serve::parse_body(body);
    auto r = (data[0] & 1) ? yak::serve::parse_chat_request(j, context(), body)
                           : yak::serve::parse_completion_request(j, context(), body);
    (void)yak::serve::completion_reply(r, context(), "id", 0, {});
    if (r.constraint) {  // a grammar the request brought: one masking step over the vocabulary
      yak::infer::GrammarMatcher m(*r.constraint);
      std::vector<float> logits(static_cast<size_t>(context().tok->vocab_size()));
      m.mask(logits, {});
    }
  } catch (const yak::serve::ApiError&) {
  }
  return 0;
}
