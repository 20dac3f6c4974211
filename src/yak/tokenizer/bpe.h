// Byte-level BPE (GPT-2 / Qwen2 / Llama-3 style): loads HF tokenizer.json or the two-file form
// (vocab.json + merges.txt), and is the engine behind GGUF "gpt2" vocabularies.
#pragma once
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "yak/base/json.h"
#include "yak/tokenizer/text_split.h"
#include "yak/tokenizer/tokenizer.h"

namespace yak::tok {

// Pre-tokenizer regexes learnt from the reference implementations.
extern const char* const kGpt2Pattern;
extern const char* const kQwen2Pattern;
extern const char* const kLlama3Pattern;

// Everything a byte-level BPE needs, however it was stored.
struct BpeSpec {
  std::vector<std::string> vocab;                           // id -> token text (byte-level alphabet); "" for holes
  std::vector<std::pair<std::string, std::string>> merges;  // in rank order
  std::vector<AddedToken> added;                            // matched in the text before pre-tokenization
  bool nfc = false;
  std::vector<std::string> split_regexes;  // applied in sequence, Isolated behaviour
  bool add_prefix_space = false;
  bool ignore_merges = false;                   // Llama-3: a word already in the vocab is one token
  std::vector<int32_t> prefix_ids, suffix_ids;  // what add_special puts around the ids
  std::optional<int32_t> bos, eos, pad;
  std::string chat_template;
  std::string source;  // for describe() and error messages
};

class BpeTokenizer : public Tokenizer {
 public:
  explicit BpeTokenizer(BpeSpec spec);

  // tokenizer.json as text; `where` names it in errors. tokenizer_config (may be null) adds
  // bos/eos/pad and the chat template.
  static std::unique_ptr<BpeTokenizer> from_json_string(const std::string& text, const std::string& where,
                                                        const Json* tokenizer_config = nullptr);
  static std::unique_ptr<BpeTokenizer> from_tokenizer_json(const std::filesystem::path& path);
  // The parsed description from_json_string builds the tokenizer from (GGUF export reads it).
  static BpeSpec spec_from_json_string(const std::string& text, const std::string& where,
                                       const Json* tokenizer_config = nullptr);
  // vocab.json + merges.txt (+ tokenizer_config.json, special_tokens_map.json, added_tokens.json).
  static std::unique_ptr<BpeTokenizer> from_vocab_merges(const std::filesystem::path& dir);

  std::vector<int32_t> encode(std::string_view text, bool add_special) const override;
  std::string decode(std::span<const int32_t> ids, bool skip_special) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(id_to_tok_.size()); }
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  std::string id_to_token(int32_t id) const override;
  bool is_special(int32_t id) const override;
  std::optional<std::string> token_bytes(int32_t id) const override;
  std::string describe() const override;

 private:
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;
  void bpe(const std::string& mapped, std::vector<int32_t>& out) const;

  std::vector<std::string> id_to_tok_;
  std::vector<uint8_t> kind_;  // 0 regular, 1 added non-special, 2 special
  std::unordered_map<std::string, int32_t> tok_to_id_;
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;  // (left,right) -> (rank, merged id)
  std::array<int32_t, 256> byte_id_{};
  AddedTokenMatcher added_;
  std::vector<std::unique_ptr<Regex>> regexes_;
  bool nfc_ = false, add_prefix_space_ = false, ignore_merges_ = false;
  std::vector<int32_t> prefix_ids_, suffix_ids_;
  std::string source_;
  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace yak::tok
