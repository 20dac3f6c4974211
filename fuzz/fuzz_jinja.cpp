// libFuzzer target: bytes as a Jinja chat template, parsed and rendered over a small conversation
// with tools (the variables transformers passes). Bad templates may only surface as
// jinja::TemplateError (a yak::Error); runaway ones stop at the step and depth budgets.
#include <cstddef>
#include <cstdint>
#include <string>

#include "yak/base/error.h"
#include "yak/tokenizer/jinja/jinja.h"

namespace {
const yak::jinja::Value& variables() {
  static const yak::jinja::Value v = yak::jinja::Value::from_json(nlohmann::ordered_json::parse(R"({
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi <b>"},
                 {"role": "assistant", "content": "", "tool_calls": [{"type": "function",
                  "function": {"name": "f", "arguments": {"x": 1, "y": [true, null, 2.5]}}}]},
                 {"role": "tool", "content": "{\"ok\": 1}"}, {"role": "user", "content": [{"type": "text", "text": "é"}]}],
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>", "documents": null})"));
  return v;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string source(reinterpret_cast<const char*>(data), size);
  try {
    yak::jinja::Template t(source, "fuzz.jinja");
    (void)t.render(variables(), [] { return std::tm{}; });
  } catch (const yak::Error&) {
  }
  return 0;
}
