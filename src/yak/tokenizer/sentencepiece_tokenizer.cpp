#include "yak/tokenizer/sentencepiece_tokenizer.h"

#include <sentencepiece_processor.h>

#include "yak/base/error.h"
#include "yak/base/mmap.h"
#include "yak/tokenizer/sp_proto.h"
#include "yak/tokenizer/text_split.h"

namespace yak::tok {

namespace {

std::string content_of(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return {};
}

}  // namespace

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& model_bytes, const std::string& where,
                                               const Json* config, const Json* special_map)
    : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()), where_(where) {
  auto st = sp_->LoadFromSerializedProto(model_bytes);
  if (!st.ok()) throw Error(where + ": not a SentencePiece model: " + st.ToString());
  // transformers' LlamaTokenizer puts the "▁" prefix only at the start of the text, not after
  // each special token: a second processor without add_dummy_prefix encodes the later parts.
  std::string patched = spproto::without_dummy_prefix(model_bytes);
  if (!patched.empty()) {
    sp_noprefix_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
    if (!sp_noprefix_->LoadFromSerializedProto(patched).ok()) sp_noprefix_.reset();
  }
  int n = sp_->GetPieceSize();
  pieces_.resize(n);
  kind_.assign(n, 0);
  byte_of_.assign(n, 0);
  for (int i = 0; i < n; ++i) {
    pieces_[i] = sp_->IdToPiece(i);
    piece_id_.emplace(pieces_[i], i);
    if (sp_->IsByte(i)) {
      kind_[i] = 1;
      byte_of_[i] = static_cast<uint8_t>(std::stoi(pieces_[i].substr(3, 2), nullptr, 16));
    } else if (sp_->IsControl(i)) {
      kind_[i] = 2;
    } else if (sp_->IsUnknown(i)) {
      kind_[i] = 3;
    }
    // transformers registers bos/eos/unk as special tokens matched in the text.
    if (kind_[i] == 2 || kind_[i] == 3) specials_.add({pieces_[i], i, true});
  }
  if (config) {
    add_bos_ = json_get_or<bool>(*config, "add_bos_token", true, where + " (tokenizer_config.json)");
    add_eos_ = json_get_or<bool>(*config, "add_eos_token", false, where + " (tokenizer_config.json)");
    auto atd = config->find("added_tokens_decoder");
    if (atd != config->end() && atd->is_object()) {
      for (auto it = atd->begin(); it != atd->end(); ++it) {
        std::string c = it->is_object() ? content_of(*it) : std::string();
        int id = -1;
        try {
          id = std::stoi(it.key());
        } catch (...) {
        }
        if (c.empty() || id < 0 || id >= (1 << 24))
          throw Error(where + ": tokenizer_config.json added_tokens_decoder." + it.key() + " is invalid");
        if (id >= static_cast<int>(pieces_.size())) {
          pieces_.resize(id + 1);
          kind_.resize(id + 1, 0);
          byte_of_.resize(id + 1, 0);
        }
        bool special = it->value("special", true);
        pieces_[id] = c;
        piece_id_[c] = id;
        if (special) kind_[id] = 2;
        AddedToken t{c, id, special};
        t.lstrip = it->value("lstrip", false);
        t.rstrip = it->value("rstrip", false);
        specials_.add(t);
      }
    }
  }
  auto find_id = [&](const char* key) -> std::optional<int32_t> {
    for (const Json* src : {config, special_map}) {
      if (!src || !src->contains(key)) continue;
      std::string c = content_of((*src)[key]);
      auto it = piece_id_.find(c);
      if (!c.empty() && it != piece_id_.end()) return it->second;
    }
    return std::nullopt;
  };
  bos_id_ = find_id("bos_token");
  eos_id_ = find_id("eos_token");
  pad_id_ = find_id("pad_token");
  if (!bos_id_ && sp_->bos_id() >= 0) bos_id_ = sp_->bos_id();
  if (!eos_id_ && sp_->eos_id() >= 0) eos_id_ = sp_->eos_id();
  if (!pad_id_ && sp_->pad_id() >= 0) pad_id_ = sp_->pad_id();
  if (config && config->contains("chat_template") && (*config)["chat_template"].is_string())
    chat_template_ = (*config)["chat_template"].get<std::string>();
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::unique_ptr<SentencePieceTokenizer> SentencePieceTokenizer::from_file(const std::filesystem::path& path) {
  std::string bytes = read_text_file(path);
  Json cfg, smap;
  const Json *cfgp = nullptr, *smapp = nullptr;
  auto dir = path.parent_path();
  if (std::filesystem::exists(dir / "tokenizer_config.json")) {
    cfg = read_json_file(dir / "tokenizer_config.json");
    if (cfg.is_object()) cfgp = &cfg;
  }
  if (std::filesystem::exists(dir / "special_tokens_map.json")) {
    smap = read_json_file(dir / "special_tokens_map.json");
    if (smap.is_object()) smapp = &smap;
  }
  return std::make_unique<SentencePieceTokenizer>(bytes, path.string(), cfgp, smapp);
}

std::vector<int32_t> SentencePieceTokenizer::encode(std::string_view text, bool add_special) const {
  require_utf8(text, where_.c_str());
  std::vector<int32_t> out;
  if (add_special && add_bos_ && bos_id_) out.push_back(*bos_id_);
  std::vector<int> ids;
  for (const auto& piece : specials_.split(text)) {
    if (piece.id >= 0) {
      out.push_back(piece.id);
      continue;
    }
    // Only text at the very start gets SentencePiece's dummy "▁" prefix.
    const auto& proc = (piece.offset == 0 || !sp_noprefix_) ? *sp_ : *sp_noprefix_;
    ids.clear();
    auto st = proc.Encode(piece.text, &ids);
    if (!st.ok()) throw Error(where_ + ": SentencePiece encode failed: " + st.ToString());
    out.insert(out.end(), ids.begin(), ids.end());
  }
  if (add_special && add_eos_ && eos_id_) out.push_back(*eos_id_);
  return out;
}

// As transformers' LlamaTokenizer decoder: "▁" -> " ", byte pieces fused (a group that is not
// valid UTF-8 becomes one U+FFFD per byte), then one leading space stripped.
std::string SentencePieceTokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string out, bytes;
  auto flush_bytes = [&]() {
    if (bytes.empty()) return;
    if (utf8_lossy(bytes) == bytes) {
      out += bytes;
    } else {
      for (size_t i = 0; i < bytes.size(); ++i) out += "\xEF\xBF\xBD";
    }
    bytes.clear();
  };
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size()) throw Error("decode: token id " + std::to_string(id) + " is out of range");
    if (kind_[id] == 1) {
      bytes += static_cast<char>(byte_of_[id]);
      continue;
    }
    flush_bytes();
    if ((kind_[id] == 2 || kind_[id] == 3) && skip_special) continue;
    const std::string& p = pieces_[id];
    if (kind_[id] != 0) {
      out += p;
      continue;
    }
    append_sp_piece(p, out);
  }
  flush_bytes();
  if (!out.empty() && out[0] == ' ') out.erase(0, 1);
  return out;
}

std::optional<int32_t> SentencePieceTokenizer::token_to_id(std::string_view token) const {
  auto it = piece_id_.find(std::string(token));
  if (it == piece_id_.end()) return std::nullopt;
  return it->second;
}

std::string SentencePieceTokenizer::id_to_token(int32_t id) const {
  if (id < 0 || id >= vocab_size()) throw Error("token id " + std::to_string(id) + " is out of range");
  return pieces_[id];
}

bool SentencePieceTokenizer::is_special(int32_t id) const {
  return id >= 0 && id < vocab_size() && (kind_[id] == 2 || kind_[id] == 3);
}

std::string SentencePieceTokenizer::describe() const {
  return "SentencePiece (" + where_ + "), " + std::to_string(vocab_size()) + " tokens";
}

}  // namespace yak::tok
