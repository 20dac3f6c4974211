// The tokenizer interface every family implements (byte-level BPE, SentencePiece, GGUF vocabularies),
// and the loader that picks one from a model folder or a tokenizer file.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace yak::tok {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Token ids for text. Added/special tokens written in the text are matched first and never
  // split. add_special adds what the tokenizer's config says (BOS for LLaMA, nothing for Qwen2).
  // Throws yak::Error when text is not valid UTF-8.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special) const = 0;

  // Text for ids; skip_special drops special tokens (BOS/EOS/<|im_end|>...).
  virtual std::string decode(std::span<const int32_t> ids, bool skip_special) const = 0;

  virtual int32_t vocab_size() const = 0;
  virtual std::optional<int32_t> token_to_id(std::string_view token) const = 0;
  virtual std::string id_to_token(int32_t id) const = 0;  // the vocabulary's spelling of the piece
  virtual bool is_special(int32_t id) const = 0;
  // The bytes a token adds to the text in the middle of a sequence (no stripped leading space,
  // byte pieces as their byte), for matching tokens against a grammar; nullopt for special and
  // control tokens, which are not text. The default reads SentencePiece-style pieces
  // (U+2581 for a space, <0xHH> for a byte).
  virtual std::optional<std::string> token_bytes(int32_t id) const;

  std::optional<int32_t> bos_id() const { return bos_id_; }
  std::optional<int32_t> eos_id() const { return eos_id_; }
  std::optional<int32_t> pad_id() const { return pad_id_; }
  // Jinja chat template text from tokenizer_config.json, when present (informational).
  const std::string& chat_template_source() const { return chat_template_; }
  // Short description for `yak info`, e.g. "byte-level BPE (tokenizer.json), 151665 tokens".
  virtual std::string describe() const = 0;

 protected:
  std::optional<int32_t> bos_id_, eos_id_, pad_id_;
  std::string chat_template_;
};

// Loads from a model folder (tokenizer.json, or vocab.json + merges.txt, or tokenizer.model,
// with tokenizer_config.json / special_tokens_map.json beside) or from a single tokenizer file.
// Throws yak::Error naming the path and what was expected.
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& path);

// Streaming detokenizer: feed ids one at a time, get back only text that is final
// (never half of a multi-byte UTF-8 character, SentencePiece leading spaces right).
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool skip_special = true);
  std::string push(int32_t id);  // newly final text (maybe empty)
  std::string flush();           // whatever is left, at end of generation
  void reset();

 private:
  const Tokenizer& tok_;
  bool skip_special_;
  std::vector<int32_t> ids_;
  size_t prefix_ = 0, read_ = 0;
};

}  // namespace yak::tok
