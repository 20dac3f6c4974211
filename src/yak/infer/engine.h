// Generation on top of the decoder: batched prefill and decode with a KV cache, sampling, EOS and
// stop strings, streaming text, timing. A Session keeps its cache between calls (chat turns reuse
// the common prefix instead of recomputing it).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "yak/infer/grammar.h"
#include "yak/infer/sampler.h"
#include "yak/model/decoder.h"
#include "yak/tokenizer/tokenizer.h"

namespace yak::infer {

struct GenerateRequest {
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  int64_t max_new_tokens = 128;
  std::vector<std::string> stop;  // stop strings; the text returned ends before the first one
  bool ignore_eos = false;
  // When set, every token keeps the text a prefix of a sentence of the grammar, and the sequence
  // ends (Stop) as soon as the grammar allows nothing more.
  std::optional<TokenConstraint> constraint;
  // Vision-language models: the prompt's images (model::make_visual_prompt). Such a prompt is
  // prefilled on its own and never shares KV pages with another.
  std::shared_ptr<const model::VisualPrompt> visual;
};

// Why a sequence ended: an EOS token or a stop string (Stop), or max_new_tokens (Length).
// ToolCalls: yak serve's name for a Stop whose reply called tools.
enum class FinishReason : uint8_t { None, Stop, Length, ToolCalls };
// OpenAI's spelling: "stop", "length" ("" while running).
inline const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::Stop:
      return "stop";
    case FinishReason::Length:
      return "length";
    case FinishReason::ToolCalls:
      return "tool_calls";
    case FinishReason::None:
      break;
  }
  return "";
}

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids (EOS excluded)
  std::string text;             // detokenized, stop string excluded
  FinishReason finish_reason = FinishReason::None;
  int32_t eos_token = -1;  // the EOS id that ended the sequence (-1: none)
};

struct GenerateStats {
  int64_t prefill_tokens = 0, decode_tokens = 0;
  double prefill_seconds = 0, decode_seconds = 0;
  double prefill_tps() const { return prefill_seconds > 0 ? prefill_tokens / prefill_seconds : 0; }
  double decode_tps() const { return decode_seconds > 0 ? decode_tokens / decode_seconds : 0; }
};

// One sequence's life after its prompt: picks tokens from logits rows with its own Sampler,
// stops at EOS, a stop string or max_new_tokens, and turns tokens into text that is final
// (never half a character, never the start of a stop string that the next token might finish).
// The engine runs one per sequence; yak serve's scheduler does too.
class Continuation {
 public:
  // eos: sorted ids that end the sequence (unless req.ignore_eos). tok may be null (ids only).
  Continuation(const GenerateRequest& req, const tok::Tokenizer* tok, std::span<const int32_t> eos);
  // Samples from a logits row (processed in place, see Sampler::sample) and accepts the token.
  int32_t step(std::span<float> logits);
  void accept(int32_t id);
  // Text that became final since the last call (everything left once done()).
  std::string take_text();
  bool done() const { return finish_ != FinishReason::None; }
  FinishReason finish() const { return finish_; }
  // Prompt followed by every accepted token (EOS included when it ended the sequence).
  const std::vector<int32_t>& tokens() const { return tokens_; }
  const std::vector<int32_t>& generated() const { return generated_; }  // EOS excluded
  size_t prompt_len() const { return prompt_len_; }
  const std::string& text() const { return text_; }
  int32_t eos_token() const { return eos_token_; }
  const GenerateRequest& request() const { return *req_; }
  GenerateResult result() const { return {generated_, text_, finish_, eos_token_}; }

  // For speculative decoding (speculative.h): the distribution the next token would be drawn
  // from if the `drafted` tokens followed the accepted ones (the row is processed in place as
  // step() processes it; penalties see the drafted tokens as generated). Unconstrained only.
  std::span<const SamplerCandidate> distribution(std::span<float> logits, std::span<const int32_t> drafted);
  Sampler& sampler() { return sampler_; }
  bool constrained() const { return matcher_ != nullptr; }
  int64_t remaining() const {
    return done() ? 0 : req_->max_new_tokens - static_cast<int64_t>(generated_.size());
  }

 private:
  const GenerateRequest* req_;
  std::span<const int32_t> eos_;
  Sampler sampler_;
  std::unique_ptr<GrammarMatcher> matcher_;
  std::unique_ptr<tok::StreamDecoder> decoder_;
  std::vector<int32_t> tokens_, generated_;
  std::vector<int32_t> history_;  // tokens_ + drafted tokens (distribution's scratch)
  size_t prompt_len_;
  std::string text_;
  size_t emitted_ = 0;
  FinishReason finish_ = FinishReason::None;
  int32_t eos_token_ = -1;
};

// Called with (request index, newly final text) as text becomes final.
using TextCallback = std::function<void(size_t, const std::string&)>;

class Session;

class Engine {
 public:
  // tok may be null: then no text, no stop strings, ids only.
  Engine(model::DecoderModel& model, const tok::Tokenizer* tok);

  // All requests run together: one forward per step covers every live sequence.
  std::vector<GenerateResult> generate(const std::vector<GenerateRequest>& requests, const TextCallback& on_text = {});
  // generate() over at most `chunk` requests at a time (bounds the KV cache); results in request
  // order. last_stats() then covers the last chunk.
  std::vector<GenerateResult> generate_in_chunks(const std::vector<GenerateRequest>& requests, int64_t chunk);
  const GenerateStats& last_stats() const { return stats_; }
  const std::vector<int32_t>& eos_ids() const { return eos_; }
  void set_eos_ids(std::vector<int32_t> ids);
  model::DecoderModel& model() { return model_; }
  const tok::Tokenizer* tokenizer() const { return tok_; }
  // Tokens of prefill per forward call (bounds activation memory on long prompts).
  int64_t prefill_chunk = 512;
  // Element type of the KV cache (f32, f16 or bf16; --cache-type). f32 keeps transformers'
  // logits; 16-bit halves the cache's memory and reads.
  DType cache_type = DType::F32;
  // A KV cache for `slots` sequences of `capacity` positions, of cache_type on the model's device.
  model::KVCache make_cache(int64_t slots, int64_t capacity) const;
  // Requests of one generate() call with the same prompt (the n samples of one prompt in RL
  // rollouts) share the KV pages of the prompt's full pages: those positions are computed once,
  // by the first of them, and only the rest of each prompt is prefilled per request. false: every
  // request computes its whole prompt.
  bool share_prompts = true;

 private:
  friend class Session;
  struct Seq;
  std::vector<GenerateResult> run(std::vector<Seq>& seqs, model::KVCache& cache, const TextCallback& on_text);
  // A paged cache in which sequences with the same prompt map its full pages to the same
  // physical pages (their `cached` set past them); a plain cache when none share.
  model::KVCache prompt_sharing_cache(std::vector<Seq>& seqs, int64_t capacity) const;

  model::DecoderModel& model_;
  const tok::Tokenizer* tok_;
  bool mrope_ = false;  // the model takes 3 rotary positions per token (Qwen3-VL)
  std::vector<int32_t> eos_;
  GenerateStats stats_;
};

// A single conversation whose KV cache persists: each call prefills only the tokens after the
// longest prefix shared with what the cache already holds.
class Session {
 public:
  Session(Engine& engine, int64_t capacity);
  GenerateResult generate(const GenerateRequest& request, const TextCallback& on_text = {});
  void reset() {
    cached_.clear();
    cached_images_.clear();
  }
  int64_t capacity() const { return cache_.capacity(); }

 private:
  Engine& engine_;
  model::KVCache cache_;
  std::vector<int32_t> cached_;  // tokens whose K/V are in the cache, in order
  std::vector<uint64_t> cached_images_;  // the pictures behind the cached image tokens, in order
};

}  // namespace yak::infer
