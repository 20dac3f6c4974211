#include "common.h"

#include <filesystem>
#include <iostream>
#include <sstream>

#include "yak/base/error.h"
#include "yak/base/mmap.h"
#include "yak/io/gguf_model.h"
#include "yak/ops/ops.h"

namespace yak::cli {
namespace fs = std::filesystem;

void add_matmul_precision_flag(CLI::App& app, std::string& value) {
  app.add_option("--matmul-precision", value,
                 "f32 matrix products: high (default; f32-accurate; bf16 weights run on AMX tiles where present), "
                 "highest (f32 FMA only), medium (activations rounded to bf16: faster, bf16 numerics)");
}

void add_ntk_alpha_flag(CLI::App& app, std::string& value) {
  app.add_option("--alpha", value,
                 "NTK rope scaling as Chinese-LLaMA-Alpaca-2's scripts: a number a (rope base x a^(d/(d-2)) at every "
                 "length) or auto (rescaled past the trained context: transformers' dynamic NTK, factor 2)");
}

void apply_ntk_alpha(model::DecoderModel& model, const std::string& value) {
  if (!value.empty()) model.set_rope(model::with_ntk_alpha(model.config().rope, value, model.config().head_dim));
}

void apply_matmul_precision(const std::string& value) {
  if (!value.empty()) ops::set_matmul_precision(ops::parse_matmul_precision(value, "--matmul-precision"));
}

tok::ChatTemplate pick_chat_template(const std::string& name, const std::string& model_dir, const io::ModelConfig& cfg) {
  if (name.empty() || name == "auto")
    return tok::ChatTemplate::from_config(load_tokenizer_config(model_dir), io::arch_name(cfg.arch));
  // Jinja: a file, or the template text itself (OpenRLHF's --tokenizer_chat_template passes text).
  const bool text = name.find("{%") != std::string::npos || name.find("{{") != std::string::npos;
  const bool file = !text && (name.size() > 6 && name.compare(name.size() - 6, 6, ".jinja") == 0 ||
                              name.find('/') != std::string::npos || fs::is_regular_file(name));
  if (text || file) {
    if (file && !fs::is_regular_file(name)) throw Error("--chat-template " + name + ": no such file");
    return tok::ChatTemplate::from_jinja(text ? name : read_text_file(name), text ? "chat_template" : name,
                                         load_tokenizer_config(model_dir));
  }
  return tok::ChatTemplate::by_name(name);
}

DType parse_cache_type(const std::string& name) {
  auto t = dtype_from_name(name);
  if (!t || (*t != DType::F32 && *t != DType::F16 && *t != DType::BF16))
    throw Error("--cache-type: unknown type '" + name + "' (expected f32, f16 or bf16)");
  return *t;
}

void SamplingFlags::add(CLI::App& app) {
  app.add_option("--temp,--temperature", temperature, "Sampling temperature; 0 = greedy");
  app.add_option("--top-k", top_k, "Keep the k most likely tokens (0 = off)");
  app.add_option("--top-p", top_p, "Nucleus sampling mass (1 = off)");
  app.add_option("--min-p", min_p, "Drop tokens below min_p x the top probability (0 = off)");
  app.add_option("--repeat-penalty,--repetition-penalty", repetition_penalty,
                 "transformers repetition penalty over prompt and output (1 = off)");
  app.add_option("--frequency-penalty", frequency_penalty, "OpenAI frequency penalty (0 = off)");
  app.add_option("--presence-penalty", presence_penalty, "OpenAI presence penalty (0 = off)");
  app.add_option("--seed", seed, "Random seed for reproducible sampling");
}

infer::SamplingParams SamplingFlags::resolve(const io::GenerationDefaults& d) const {
  infer::SamplingParams p = infer::sampling_defaults(d);
  if (temperature) {
    p.temperature = *temperature;
    p.do_sample = *temperature > 0;
  }
  if (top_k) p.top_k = *top_k;
  if (top_p) p.top_p = *top_p;
  if (min_p) p.min_p = *min_p;
  if (repetition_penalty) p.repetition_penalty = *repetition_penalty;
  p.frequency_penalty = frequency_penalty;
  p.presence_penalty = presence_penalty;
  p.seed = seed.value_or(std::random_device{}());
  check(p.top_p > 0 && p.top_p <= 1, "--top-p must be in (0, 1]");
  check(p.min_p >= 0 && p.min_p <= 1, "--min-p must be in [0, 1]");
  check(p.top_k >= 0, "--top-k must be >= 0");
  check(p.repetition_penalty > 0, "--repeat-penalty must be > 0");
  return p;
}

std::unique_ptr<tok::Tokenizer> load_model_tokenizer(const std::string& model_dir, const std::string& tokenizer_path) {
  if (!tokenizer_path.empty()) return tok::load_tokenizer(tokenizer_path);
  fs::path d(model_dir);
  if (io::is_gguf_path(d)) return tok::load_tokenizer(d);  // the vocabulary inside the file
  for (const char* f : {"tokenizer.json", "vocab.json", "tokenizer.model"})
    if (fs::exists(d / f)) return tok::load_tokenizer(d);
  return nullptr;
}

Json load_tokenizer_config(const std::string& model_dir) {
  fs::path d(model_dir);
  Json tc = Json::object();
  if (io::is_gguf_path(d)) {  // the chat template and special tokens stored in the file
    const auto g = io::GgufFile::open(d);
    if (auto t = io::gguf_chat_template(g); !t.empty()) tc["chat_template"] = t;
    if (g.has("tokenizer.ggml.tokens")) {
      const auto tokens = g.get_string_array("tokenizer.ggml.tokens");
      auto name = [&](const char* key, const char* field) {
        if (auto id = g.get_int_opt(key); id && *id >= 0 && static_cast<size_t>(*id) < tokens.size())
          tc[field] = tokens[static_cast<size_t>(*id)];
      };
      name("tokenizer.ggml.bos_token_id", "bos_token");
      name("tokenizer.ggml.eos_token_id", "eos_token");
    }
    if (auto add = g.get_bool_opt("tokenizer.ggml.add_bos_token")) tc["add_bos_token"] = *add;
    return tc;
  }
  return tok::load_tokenizer_config(d);
}

std::string read_input(const std::string& path) {
  if (path == "-") {
    std::ostringstream ss;
    ss << std::cin.rdbuf();
    return ss.str();
  }
  return read_text_file(path);
}

std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  std::string s = text;
  for (char& c : s)
    if (c == ',' || c == '[' || c == ']') c = ' ';
  std::istringstream in(s);
  std::string word;
  while (in >> word) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != word.size() || v < 0 || v > INT32_MAX)
      throw Error("token ids: '" + word + "' is not a non-negative integer id");
    ids.push_back(static_cast<int32_t>(v));
  }
  return ids;
}

}  // namespace yak::cli
