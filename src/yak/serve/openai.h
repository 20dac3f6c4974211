// The OpenAI API's request and response shapes for yak serve: every field of a chat or
// completion request checked (OpenAI-style errors naming the field), turned into token prompts
// and sampling settings; replies, stream chunks and errors written as OpenAI writes them.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "yak/base/json.h"
#include "yak/infer/engine.h"
#include "yak/infer/grammar.h"
#include "yak/infer/vision_prompt.h"
#include "yak/io/hf_config.h"
#include "yak/serve/scheduler.h"
#include "yak/tokenizer/chat_template.h"
#include "yak/tokenizer/tokenizer.h"

namespace yak::serve {

// An error the client caused (or a refusal): HTTP status and OpenAI's error object.
struct ApiError : std::runtime_error {
  ApiError(int status, const std::string& message, std::string param = "", std::string code = "",
           std::string type = "");
  int status;
  std::string type, param, code;
};
// {"error": {"message", "type", "param", "code"}}
std::string error_body(int status, const std::string& message, const std::string& type = "",
                       const std::string& param = "", const std::string& code = "");
std::string error_body(const ApiError& e);

enum class Endpoint : uint8_t { Chat, Completion };

// What the server knows of the model it serves, for turning requests into prompts.
struct ModelContext {
  std::string id;  // the name /v1/models lists
  const tok::Tokenizer* tok = nullptr;
  std::optional<tok::ChatTemplate> chat_template;
  io::GenerationDefaults defaults;
  int64_t ctx = 0;  // largest prompt + completion
  int max_n = 16;   // largest `n`
  std::shared_ptr<const infer::VocabTrie> vocab;  // for constrained output (set when tok is)
  // Vision-language models: the tower's settings and the image preprocessing (unset: the model
  // cannot see, and image parts are refused).
  std::optional<io::VisionConfig> vision;
  std::optional<model::ImageProcessorConfig> image_processor;
  // Image parts may name files under this folder (file:// URLs or paths relative to it); empty:
  // data: URLs only. Paths that lead outside it (.., links) are refused.
  std::filesystem::path media_dir;
};

struct ApiRequest {
  Endpoint endpoint = Endpoint::Chat;
  std::string model;
  std::vector<std::vector<int32_t>> prompts;  // completions may send several; chat one
  infer::SamplingParams sampling;
  int64_t max_tokens = 0;  // resolved: the request's, or what is left of the context
  std::vector<std::string> stop;
  int n = 1;
  bool stream = false, include_usage = false, echo = false;
  int logprobs = -1;  // alternatives per token (-1: no logprobs)
  bool ignore_eos = false;
  std::optional<infer::TokenConstraint> constraint;  // response_format json_*, grammar, or tool_choice
  bool tool_calls = false;  // tools offered (tool_choice not "none"): replies are searched for calls
  // A chat with pictures: the one prompt's images, read and preprocessed (the vision tower runs
  // on the model's thread).
  std::shared_ptr<const infer::PromptImages> images;
};

// A reply split into its text and the <tool_call> blocks the model wrote (OpenAI's tool_calls
// entries: id, type "function", function {name, arguments as JSON text}). Blocks that are not a
// JSON object with a string "name" stay in the text.
struct ToolCallSplit {
  std::string content;
  Json calls = Json::array();
};
ToolCallSplit split_tool_calls(const std::string& text);
// How much of a streamed reply's end may be the start of a "<tool_call>" (held back).
size_t tool_call_holdback(const std::string& text);

// Throw ApiError on anything wrong, naming the field. raw: the body's text, when there is one
// (a JSON schema's properties keep its order).
ApiRequest parse_chat_request(const Json& body, const ModelContext& m, std::string_view raw = {});
ApiRequest parse_completion_request(const Json& body, const ModelContext& m, std::string_view raw = {});
// A prompt field as OpenAI takes it (a string, token ids, or an array of either) -> token ids;
// ids must be below `vocab`, at most max_items entries. ApiError names `field`.
std::vector<std::vector<int32_t>> parse_prompts(const Json& value, const ModelContext& m, const std::string& field,
                                                size_t max_items, int64_t vocab);
// Parses the body as JSON (400 when it is not an object).
Json parse_body(const std::string& body);

// One choice's result, gathered from its events.
struct ChoiceResult {
  std::string text;
  std::vector<TokenLogprob> logprobs;
  infer::FinishReason finish = infer::FinishReason::None;
  int64_t prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0;
};

// The whole reply of a non-streamed request (choices in order: prompt-major, then sample).
Json completion_reply(const ApiRequest& r, const ModelContext& m, const std::string& id, int64_t created,
                      const std::vector<ChoiceResult>& choices);
// One stream chunk for choice `index`: text delta (+ logprobs), or the finish (finish != None).
Json stream_chunk(const ApiRequest& r, const ModelContext& m, const std::string& id, int64_t created, int index,
                  const std::string& text, const std::vector<TokenLogprob>& logprobs, infer::FinishReason finish,
                  bool first);
// The final usage chunk ("choices": []) of stream_options.include_usage.
Json usage_chunk(const ApiRequest& r, const ModelContext& m, const std::string& id, int64_t created,
                 int64_t prompt_tokens, int64_t completion_tokens, int64_t cached_tokens);
Json usage_json(int64_t prompt_tokens, int64_t completion_tokens, int64_t cached_tokens);

}  // namespace yak::serve
