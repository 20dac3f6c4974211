// The tokenizer of a Hugging Face folder as GGUF metadata (tokenizer.ggml.*), as llama.cpp's
// converter writes it: byte-level BPE from tokenizer.json ("gpt2" model, the pre-tokenizer named
// by its regexes), SentencePiece from tokenizer.model ("llama" model: pieces, scores, types).
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include "yak/base/error.h"
#include "yak/base/json.h"
#include "yak/io/gguf_writer.h"
#include "yak/io/safetensors.h"
#include "yak/tokenizer/bpe.h"
#include "yak/tokenizer/chat_template.h"
#include "yak/tokenizer/gguf_vocab.h"
#include "yak/tokenizer/sp_proto.h"

namespace yak::tok {
namespace fs = std::filesystem;

namespace {

// The llama.cpp pre-tokenizer name whose regexes are exactly these (yak reads them back the same).
std::string pre_name(const std::vector<std::string>& regexes, const std::string& where) {
  for (const char* n :
       {"qwen2", "llama-bpe", "gpt-2", "default", "deepseek-llm", "deepseek-coder", "starcoder", "falcon"}) {
    bool ignore = false;
    if (gguf_pre_tokenizer_regexes(n, &ignore) == regexes) return n;
  }
  throw Error(where + ": the pre-tokenizer's regexes match none GGUF names (qwen2, llama-bpe, gpt-2, ...)");
}

void add_bpe(io::GgufWriter& w, const fs::path& dir, int64_t vocab_size, const io::ModelConfig& cfg) {
  const fs::path path = dir / "tokenizer.json";
  const Json tc = load_tokenizer_config(dir);
  BpeSpec spec = BpeTokenizer::spec_from_json_string(read_text_file(path), path.string(), &tc);
  std::vector<std::string> tokens(static_cast<size_t>(vocab_size));
  std::vector<int32_t> types(static_cast<size_t>(vocab_size), spproto::kUnused);
  for (int64_t i = 0; i < vocab_size; ++i) tokens[i] = "[PAD" + std::to_string(i) + "]";
  for (size_t i = 0; i < spec.vocab.size(); ++i) {
    if (spec.vocab[i].empty()) continue;
    if (static_cast<int64_t>(i) >= vocab_size)
      throw Error(path.string() + ": token id " + std::to_string(i) + " is beyond the model's vocab_size " +
                  std::to_string(vocab_size));
    tokens[i] = spec.vocab[i];
    types[i] = spproto::kNormal;
  }
  for (const AddedToken& a : spec.added) {
    if (a.id >= vocab_size)
      throw Error(path.string() + ": added token '" + a.content + "' has id " + std::to_string(a.id) +
                  ", beyond the model's vocab_size " + std::to_string(vocab_size));
    tokens[a.id] = a.content;
    types[a.id] = a.special ? spproto::kControl : spproto::kUserDefined;
  }
  std::vector<std::string> merges;
  merges.reserve(spec.merges.size());
  for (const auto& [l, r] : spec.merges) merges.push_back(l + " " + r);
  w.add_string("tokenizer.ggml.model", "gpt2");
  w.add_string("tokenizer.ggml.pre", pre_name(spec.split_regexes, path.string()));
  w.add_strings("tokenizer.ggml.tokens", tokens);
  w.add_i32s("tokenizer.ggml.token_type", types);
  w.add_strings("tokenizer.ggml.merges", merges);
  if (cfg.bos_token_id)
    w.add_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(*cfg.bos_token_id));
  else if (spec.bos)
    w.add_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(*spec.bos));
  if (!cfg.eos_token_ids.empty())
    w.add_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(cfg.eos_token_ids[0]));
  else if (spec.eos)
    w.add_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(*spec.eos));
  if (spec.pad) w.add_u32("tokenizer.ggml.padding_token_id", static_cast<uint32_t>(*spec.pad));
  w.add_bool("tokenizer.ggml.add_bos_token", !spec.prefix_ids.empty());
  if (!spec.chat_template.empty()) w.add_string("tokenizer.chat_template", spec.chat_template);
}

void add_sentencepiece(io::GgufWriter& w, const fs::path& dir, int64_t vocab_size, const io::ModelConfig& cfg) {
  const fs::path path = dir / "tokenizer.model";
  std::ifstream f(path, std::ios::binary);
  const std::string bytes{std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
  std::vector<spproto::Field> fields;
  if (!spproto::parse_fields(bytes, fields)) throw Error(path.string() + ": not a SentencePiece model (bad protobuf)");
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  for (const auto& fl : fields) {
    if (fl.number != spproto::kPieces) continue;
    spproto::Piece p;
    if (!spproto::decode_piece(fl.payload, p))
      throw Error(path.string() + ": piece " + std::to_string(tokens.size()) + " is malformed");
    tokens.push_back(p.piece);
    scores.push_back(p.score);
    types.push_back(p.type);
  }
  if (static_cast<int64_t>(tokens.size()) > vocab_size)
    throw Error(path.string() + ": " + std::to_string(tokens.size()) + " pieces, more than the model's vocab_size " +
                std::to_string(vocab_size));
  for (auto i = static_cast<int64_t>(tokens.size()); i < vocab_size; ++i) {  // padding rows, as the converter pads
    tokens.push_back("[PAD" + std::to_string(i) + "]");
    scores.push_back(-1000.0f);
    types.push_back(spproto::kUserDefined);
  }
  const Json tc = load_tokenizer_config(dir);
  w.add_string("tokenizer.ggml.model", "llama");
  w.add_string("tokenizer.ggml.pre", "default");
  w.add_strings("tokenizer.ggml.tokens", tokens);
  w.add_f32s("tokenizer.ggml.scores", scores);
  w.add_i32s("tokenizer.ggml.token_type", types);
  w.add_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(cfg.bos_token_id.value_or(1)));
  w.add_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(cfg.eos_token_ids.empty() ? 2 : cfg.eos_token_ids[0]));
  w.add_u32("tokenizer.ggml.unknown_token_id", 0);
  if (cfg.pad_token_id) w.add_u32("tokenizer.ggml.padding_token_id", static_cast<uint32_t>(*cfg.pad_token_id));
  w.add_bool("tokenizer.ggml.add_bos_token", tc.value("add_bos_token", true));
  w.add_bool("tokenizer.ggml.add_eos_token", tc.value("add_eos_token", false));
  if (tc.contains("chat_template") && tc["chat_template"].is_string())
    w.add_string("tokenizer.chat_template", tc["chat_template"].get<std::string>());
}

}  // namespace

void add_gguf_vocab(io::GgufWriter& w, const fs::path& dir, const io::ModelConfig& cfg) {
  if (fs::exists(dir / "tokenizer.json")) return add_bpe(w, dir, cfg.vocab_size, cfg);
  if (fs::exists(dir / "tokenizer.model")) return add_sentencepiece(w, dir, cfg.vocab_size, cfg);
  throw Error(dir.string() + ": no tokenizer.json or tokenizer.model to write into the GGUF file");
}

}  // namespace yak::tok

namespace yak::tok {

void write_hf_tokenizer_from_gguf(const io::GgufFile& g, const fs::path& dir) {
  const std::string model = g.get_string_opt("tokenizer.ggml.model").value_or("");
  if (model != "gpt2")
    throw Error(g.where() +
                ": writing a tokenizer.json needs a byte-level BPE vocabulary (tokenizer.ggml.model gpt2; "
                "this file has '" +
                model + "')");
  const BpeSpec spec = bpe_spec_from_gguf(g);
  Json added = Json::array();
  for (const AddedToken& a : spec.added) {
    added.push_back({{"id", a.id},
                     {"content", a.content},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", a.special}});
  }
  // Every token is in the model's vocab, added ones too (tokenizers gives an added token missing
  // from it a new id); later duplicates of a string keep the first id, as the GGUF reader does.
  std::set<std::string> seen;
  Json vocab = Json::object();
  for (size_t i = 0; i < spec.vocab.size(); ++i)
    if (seen.insert(spec.vocab[i]).second) vocab[spec.vocab[i]] = i;
  Json merges = Json::array();
  for (const auto& [l, r] : spec.merges) merges.push_back(Json::array({l, r}));
  Json pre = Json::array();
  for (const auto& rx : spec.split_regexes)
    pre.push_back({{"type", "Split"}, {"pattern", {{"Regex", rx}}}, {"behavior", "Isolated"}, {"invert", false}});
  pre.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}});
  Json post = nullptr;
  if (!spec.prefix_ids.empty()) {  // the BOS the file says to add
    const std::string bos = spec.vocab[static_cast<size_t>(spec.prefix_ids[0])];
    post = {{"type", "TemplateProcessing"},
            {"single", Json::array({{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}},
                                    {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
            {"pair", Json::array({{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}},
                                  {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                                  {{"SpecialToken", {{"id", bos}, {"type_id", 1}}}},
                                  {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}})},
            {"special_tokens", {{bos, {{"id", bos}, {"ids", {spec.prefix_ids[0]}}, {"tokens", {bos}}}}}}};
  }
  Json tj = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", pre}}},
      {"post_processor", post},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", spec.ignore_merges},
        {"vocab", vocab},
        {"merges", merges}}}};
  io::write_file_atomic(dir / "tokenizer.json", tj.dump(1) + "\n");
  Json tc = {{"tokenizer_class", "PreTrainedTokenizerFast"},
             {"add_bos_token", !spec.prefix_ids.empty()},
             {"model_max_length", 1000000}};
  if (spec.bos) tc["bos_token"] = spec.vocab[static_cast<size_t>(*spec.bos)];
  if (spec.eos) tc["eos_token"] = spec.vocab[static_cast<size_t>(*spec.eos)];
  if (spec.pad) tc["pad_token"] = spec.vocab[static_cast<size_t>(*spec.pad)];
  if (!spec.chat_template.empty()) tc["chat_template"] = spec.chat_template;
  io::write_file_atomic(dir / "tokenizer_config.json", tc.dump(1) + "\n");
}

}  // namespace yak::tok
