#include <algorithm>

#include "yak/base/error.h"
#include "yak/tokenizer/bpe.h"
#include "yak/tokenizer/gguf_vocab.h"
#include "yak/tokenizer/sentencepiece_tokenizer.h"
#include "yak/tokenizer/text_split.h"
#include "yak/tokenizer/tokenizer.h"

namespace yak::tok {

namespace fs = std::filesystem;

std::unique_ptr<Tokenizer> load_tokenizer(const fs::path& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    if (fs::exists(path / "tokenizer.json")) return BpeTokenizer::from_tokenizer_json(path / "tokenizer.json");
    if (fs::exists(path / "vocab.json") && fs::exists(path / "merges.txt"))
      return BpeTokenizer::from_vocab_merges(path);
    if (fs::exists(path / "tokenizer.model")) return SentencePieceTokenizer::from_file(path / "tokenizer.model");
    throw Error(path.string() +
                ": no tokenizer found (expected tokenizer.json, vocab.json + merges.txt, or tokenizer.model)");
  }
  if (!fs::exists(path, ec)) throw Error(path.string() + ": no such file or directory");
  std::string name = path.filename().string(), ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  if (ext == ".json") {
    if (name == "vocab.json") return BpeTokenizer::from_vocab_merges(path.parent_path());
    return BpeTokenizer::from_tokenizer_json(path);
  }
  if (ext == ".model") return SentencePieceTokenizer::from_file(path);
  if (ext == ".gguf") return load_gguf_tokenizer(path);
  if (name == "merges.txt") return BpeTokenizer::from_vocab_merges(path.parent_path());
  throw Error(path.string() + ": unknown tokenizer file (expected tokenizer.json, *.model or *.gguf)");
}

std::optional<std::string> Tokenizer::token_bytes(int32_t id) const {
  if (id < 0 || id >= vocab_size() || is_special(id)) return std::nullopt;
  const std::string p = id_to_token(id);
  auto hex = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1; };
  if (p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>' && hex(p[3]) >= 0 && hex(p[4]) >= 0)
    return std::string(1, static_cast<char>(hex(p[3]) * 16 + hex(p[4])));
  std::string out;
  append_sp_piece(p, out);
  return out;
}

}  // namespace yak::tok
