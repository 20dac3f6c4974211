// SentencePiece tokenizer.model (LLaMA, Chinese-LLaMA-2) through libsentencepiece, with
// transformers' LlamaTokenizer rules for special tokens written in the text and for decoding.
#pragma once
#include <filesystem>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "yak/base/json.h"
#include "yak/tokenizer/text_split.h"
#include "yak/tokenizer/tokenizer.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace yak::tok {

class SentencePieceTokenizer : public Tokenizer {
 public:
  // model_bytes: the serialized tokenizer.model; config: tokenizer_config.json (may be null),
  // special_map: special_tokens_map.json (may be null).
  SentencePieceTokenizer(const std::string& model_bytes, const std::string& where, const Json* config,
                         const Json* special_map);
  ~SentencePieceTokenizer() override;
  static std::unique_ptr<SentencePieceTokenizer> from_file(const std::filesystem::path& model_path);

  std::vector<int32_t> encode(std::string_view text, bool add_special) const override;
  std::string decode(std::span<const int32_t> ids, bool skip_special) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(pieces_.size()); }
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  std::string id_to_token(int32_t id) const override;
  bool is_special(int32_t id) const override;
  std::string describe() const override;

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_, sp_noprefix_;
  std::vector<std::string> pieces_;
  std::vector<uint8_t> kind_;  // 0 normal, 1 byte <0xNN>, 2 special/control, 3 unknown
  std::vector<uint8_t> byte_of_;
  std::unordered_map<std::string, int32_t> piece_id_;
  AddedTokenMatcher specials_;
  bool add_bos_ = true, add_eos_ = false;
  std::string where_;
};

}  // namespace yak::tok
