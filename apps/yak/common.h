// Shared pieces of the CLI subcommands: model/tokenizer loading and sampling flags. Only flag
// parsing and printing live in apps/yak; the work is done by the library.
#pragma once
#include <CLI/CLI.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "yak/base/json.h"
#include "yak/infer/engine.h"
#include "yak/io/hf_config.h"
#include "yak/model/decoder.h"
#include "yak/tokenizer/chat_template.h"
#include "yak/tokenizer/tokenizer.h"

namespace yak::cli {

struct SamplingFlags {
  std::optional<float> temperature, top_p, min_p, repetition_penalty;
  std::optional<int> top_k;
  float frequency_penalty = 0, presence_penalty = 0;
  std::optional<uint64_t> seed;
  void add(CLI::App& app);
  // generation_config.json defaults, then flags on top.
  infer::SamplingParams resolve(const io::GenerationDefaults& defaults) const;
};

// Loads the tokenizer of a model folder, or from --tokenizer; null when the folder has none.
std::unique_ptr<tok::Tokenizer> load_model_tokenizer(const std::string& model_dir, const std::string& tokenizer_path);

// tokenizer_config.json of a model folder ({} when absent), with the chat template from
// chat_template.jinja or chat_template.json when the JSON has none (tok::load_tokenizer_config); a
// GGUF file's chat template and special tokens.
Json load_tokenizer_config(const std::string& model_dir);

// A chat template by name, or "auto": the model's own (tokenizer_config.json, GGUF metadata),
// else its architecture's family.
tok::ChatTemplate pick_chat_template(const std::string& name, const std::string& model_dir, const io::ModelConfig& cfg);

// --matmul-precision highest|high|medium, applied by apply_matmul_precision.
void add_matmul_precision_flag(CLI::App& app, std::string& value);
void apply_matmul_precision(const std::string& value);

// --alpha A|auto: Chinese-LLaMA-Alpaca-2's NTK rope scaling (model::with_ntk_alpha);
// apply_ntk_alpha does nothing when the flag was not given.
void add_ntk_alpha_flag(CLI::App& app, std::string& value);
void apply_ntk_alpha(model::DecoderModel& model, const std::string& value);

// --cache-type: f32, f16 or bf16 (throws yak::Error otherwise).
DType parse_cache_type(const std::string& name);

// Reads a file or "-" for stdin.
std::string read_input(const std::string& path);
std::vector<int32_t> parse_ids(const std::string& text);

void register_generate(CLI::App& app);
void register_chat(CLI::App& app);
void register_info(CLI::App& app);
void register_tokenize(CLI::App& app);
void register_train(CLI::App& app);
void register_quickstart(CLI::App& app);
void register_tokenizer(CLI::App& app);
void register_model(CLI::App& app);
void register_lora(CLI::App& app);
void register_serve_rm(CLI::App& app);
void register_rejection_sample(CLI::App& app);
void register_ask(CLI::App& app);
void register_convert(CLI::App& app);
void register_eval(CLI::App& app);
void register_serve(CLI::App& app);

}  // namespace yak::cli
