#include "yak/tokenizer/gguf_vocab.h"

#include <utf8proc.h>

#include <functional>
#include <map>
#include <queue>
#include <unordered_map>

#include "yak/base/error.h"
#include "yak/base/utf8.h"
#include "yak/tokenizer/bpe.h"
#include "yak/tokenizer/text_split.h"

namespace yak::tok {

namespace {

// llama.cpp token types (tokenizer.ggml.token_type).
enum TokenType : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

const char* const kSpace = "\xE2\x96\x81";  // "▁"

// Shared vocabulary data for the non-BPE GGUF tokenizers.
struct GgufTable {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  std::unordered_map<std::string, int32_t> ids;
  AddedTokenMatcher specials;
  std::string where;

  void load(const io::GgufFile& g) {
    where = g.where();
    tokens = g.get_string_array("tokenizer.ggml.tokens");
    check(!tokens.empty(), where + ": metadata 'tokenizer.ggml.tokens' is empty");
    if (g.has("tokenizer.ggml.scores")) {
      auto s = g.get_number_array("tokenizer.ggml.scores");
      check(s.size() == tokens.size(), where + ": 'tokenizer.ggml.scores' length differs from tokenizer.ggml.tokens");
      scores.assign(s.begin(), s.end());
    } else {
      scores.assign(tokens.size(), 0.f);
    }
    if (g.has("tokenizer.ggml.token_type")) {
      auto t = g.get_number_array("tokenizer.ggml.token_type");
      check(t.size() == tokens.size(),
            where + ": 'tokenizer.ggml.token_type' length differs from tokenizer.ggml.tokens");
      types.resize(t.size());
      for (size_t i = 0; i < t.size(); ++i) types[i] = static_cast<int32_t>(t[i]);
    } else {
      types.assign(tokens.size(), kNormal);
    }
    ids.reserve(tokens.size() * 2);
    for (size_t i = 0; i < tokens.size(); ++i) {
      ids.emplace(tokens[i], static_cast<int32_t>(i));
      if (types[i] == kControl || types[i] == kUserDefined || types[i] == kUnknown)
        specials.add({tokens[i], static_cast<int32_t>(i), types[i] != kUserDefined});
    }
  }
  bool special(int32_t id) const { return types[id] == kControl || types[id] == kUnknown; }
  void check_id(int32_t id) const {
    if (id < 0 || id >= static_cast<int32_t>(tokens.size()))
      throw Error("decode: token id " + std::to_string(id) + " is out of range");
  }
};

void set_special_ids(const io::GgufFile& g, int32_t n, std::optional<int32_t>& bos, std::optional<int32_t>& eos,
                     std::optional<int32_t>& pad) {
  auto get = [&](const char* key) -> std::optional<int32_t> {
    auto v = g.get_int_opt(key);
    if (!v || *v < 0 || *v >= n) return std::nullopt;
    return static_cast<int32_t>(*v);
  };
  bos = get("tokenizer.ggml.bos_token_id");
  eos = get("tokenizer.ggml.eos_token_id");
  pad = get("tokenizer.ggml.padding_token_id");
}

// The vocabulary table and the lookups every GGUF-vocabulary tokenizer shares.
class GgufTableTokenizer : public Tokenizer {
 public:
  int32_t vocab_size() const override { return static_cast<int32_t>(t_.tokens.size()); }
  std::optional<int32_t> token_to_id(std::string_view token) const override {
    auto it = t_.ids.find(std::string(token));
    if (it == t_.ids.end()) return std::nullopt;
    return it->second;
  }
  std::string id_to_token(int32_t id) const override {
    t_.check_id(id);
    return t_.tokens[id];
  }
  bool is_special(int32_t id) const override { return id >= 0 && id < vocab_size() && t_.special(id); }
  std::string describe() const override {
    return kind_ + " (GGUF " + t_.where + "), " + std::to_string(vocab_size()) + " tokens";
  }

 protected:
  GgufTableTokenizer(const io::GgufFile& g, std::string kind) : kind_(std::move(kind)) { t_.load(g); }
  GgufTable t_;

 private:
  std::string kind_;
};

// ---------------------------------------------------------------- SPM ("llama")

// llama.cpp's SentencePiece-compatible BPE: merge the adjacent pair whose concatenation has the
// highest score, then split unmatched symbols back to byte tokens.
class GgufSpmTokenizer : public GgufTableTokenizer {
 public:
  explicit GgufSpmTokenizer(const io::GgufFile& g) : GgufTableTokenizer(g, "SentencePiece-style BPE") {
    add_space_prefix_ = g.get_bool_opt("tokenizer.ggml.add_space_prefix").value_or(true);
    add_bos_ = g.get_bool_opt("tokenizer.ggml.add_bos_token").value_or(true);
    add_eos_ = g.get_bool_opt("tokenizer.ggml.add_eos_token").value_or(false);
    set_special_ids(g, vocab_size(), bos_id_, eos_id_, pad_id_);
    unk_ = static_cast<int32_t>(g.get_int_opt("tokenizer.ggml.unknown_token_id").value_or(0));
    byte_tok_.fill(-1);
    char buf[8];
    for (int b = 0; b < 256; ++b) {
      std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
      auto it = t_.ids.find(buf);
      if (it != t_.ids.end()) byte_tok_[b] = it->second;
    }
    if (auto c = g.get_string_opt("tokenizer.chat_template")) chat_template_ = *c;
  }

  std::vector<int32_t> encode(std::string_view text, bool add_special) const override {
    require_utf8(text, t_.where.c_str());
    std::vector<int32_t> out;
    if (add_special && add_bos_ && bos_id_) out.push_back(*bos_id_);
    for (const auto& p : t_.specials.split(text)) {
      if (p.id >= 0) {
        out.push_back(p.id);
        continue;
      }
      std::string s;
      if (add_space_prefix_ && p.offset == 0) s = kSpace;
      for (char c : p.text) {
        if (c == ' ')
          s += kSpace;
        else
          s += c;
      }
      tokenize(s, out);
    }
    if (add_special && add_eos_ && eos_id_) out.push_back(*eos_id_);
    return out;
  }

  std::string decode(std::span<const int32_t> ids, bool skip_special) const override {
    std::string bytes;
    for (int32_t id : ids) {
      t_.check_id(id);
      if (t_.special(id) && skip_special) continue;
      const std::string& p = t_.tokens[id];
      if (t_.types[id] == kByte && p.size() == 6) {
        bytes += static_cast<char>(std::stoi(p.substr(3, 2), nullptr, 16));
      } else if (t_.types[id] == kControl || t_.types[id] == kUnknown) {
        bytes += p;
      } else {
        append_sp_piece(p, bytes);
      }
    }
    std::string out = utf8_lossy(bytes);
    if (add_space_prefix_ && !out.empty() && out[0] == ' ') out.erase(0, 1);
    return out;
  }

 private:
  struct Sym {
    int32_t prev, next;
    size_t start, n;
  };
  struct Bigram {
    float score;
    int32_t left, right;
    size_t size;
    bool operator<(const Bigram& o) const { return score != o.score ? score < o.score : left > o.left; }
  };

  void tokenize(const std::string& text, std::vector<int32_t>& out) const {
    std::vector<Sym> syms;
    for (size_t off = 0; off < text.size();) {
      size_t i = off;
      utf8::next(text, i);
      int32_t idx = static_cast<int32_t>(syms.size());
      syms.push_back({idx - 1, i >= text.size() ? -1 : idx + 1, off, i - off});
      off = i;
    }
    std::priority_queue<Bigram> q;
    std::map<std::string, std::pair<int32_t, int32_t>> rev;
    auto try_add = [&](int32_t l, int32_t r) {
      if (l < 0 || r < 0) return;
      std::string s = text.substr(syms[l].start, syms[l].n + syms[r].n);
      auto it = t_.ids.find(s);
      if (it == t_.ids.end()) return;
      q.push({t_.scores[it->second], l, r, s.size()});
      rev[s] = {l, r};
    };
    for (int32_t i = 1; i < static_cast<int32_t>(syms.size()); ++i) try_add(i - 1, i);
    while (!q.empty()) {
      Bigram b = q.top();
      q.pop();
      Sym& l = syms[b.left];
      Sym& r = syms[b.right];
      if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;
      l.n += r.n;
      r.n = 0;
      l.next = r.next;
      if (r.next >= 0) syms[r.next].prev = b.left;
      try_add(l.prev, b.left);
      try_add(b.left, l.next);
    }
    std::function<void(int32_t)> reseg = [&](int32_t i) {
      const Sym& s = syms[i];
      std::string piece = text.substr(s.start, s.n);
      auto it = t_.ids.find(piece);
      if (it != t_.ids.end()) {
        out.push_back(it->second);
        return;
      }
      auto m = rev.find(piece);
      if (m == rev.end()) {
        for (unsigned char c : piece) out.push_back(byte_tok_[c] >= 0 ? byte_tok_[c] : unk_);
        return;
      }
      reseg(m->second.first);
      reseg(m->second.second);
    };
    for (int32_t i = syms.empty() ? -1 : 0; i != -1; i = syms[i].next) reseg(i);
  }

  bool add_space_prefix_ = true, add_bos_ = true, add_eos_ = false;
  int32_t unk_ = 0;
  std::array<int32_t, 256> byte_tok_{};
};

// ---------------------------------------------------------------- WordPiece ("bert")

bool is_cjk(uint32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// HF BertTokenizer's basic tokenizer (lowercase, strip accents, split punctuation and CJK), then
// greedy longest-match WordPiece. GGUF stores word-initial pieces with a "▁" prefix instead of
// marking continuations with "##".
class GgufWordPieceTokenizer : public GgufTableTokenizer {
 public:
  explicit GgufWordPieceTokenizer(const io::GgufFile& g) : GgufTableTokenizer(g, "WordPiece") {
    set_special_ids(g, vocab_size(), bos_id_, eos_id_, pad_id_);
    auto unk = g.get_int_opt("tokenizer.ggml.unknown_token_id");
    if (unk && *unk >= 0 && *unk < vocab_size()) {
      unk_ = static_cast<int32_t>(*unk);
    } else if (auto it = t_.ids.find("[UNK]"); it != t_.ids.end()) {
      unk_ = it->second;
    }
    auto cls = g.get_int_opt("tokenizer.ggml.cls_token_id");
    auto sep = g.get_int_opt("tokenizer.ggml.seperator_token_id");
    if (cls && *cls >= 0 && *cls < vocab_size()) bos_id_ = static_cast<int32_t>(*cls);
    if (sep && *sep >= 0 && *sep < vocab_size()) eos_id_ = static_cast<int32_t>(*sep);
    for (const auto& tk : t_.tokens) max_len_ = std::max(max_len_, tk.size());
  }

  std::vector<int32_t> encode(std::string_view text, bool add_special) const override {
    require_utf8(text, t_.where.c_str());
    std::vector<int32_t> out;
    if (add_special && bos_id_) out.push_back(*bos_id_);
    for (const auto& p : t_.specials.split(text)) {
      if (p.id >= 0) {
        out.push_back(p.id);
        continue;
      }
      for (const auto& w : words(p.text)) wordpiece(w, out);
    }
    if (add_special && eos_id_) out.push_back(*eos_id_);
    return out;
  }

  std::string decode(std::span<const int32_t> ids, bool skip_special) const override {
    std::string out;
    for (int32_t id : ids) {
      t_.check_id(id);
      if (t_.special(id) && skip_special) continue;
      const std::string& p = t_.tokens[id];
      if (p.compare(0, 3, kSpace) == 0) {
        out += ' ';
        out.append(p, 3);
      } else if (t_.special(id)) {
        out += ' ';
        out += p;
      } else {
        out += p;
      }
    }
    if (!out.empty() && out[0] == ' ') out.erase(0, 1);
    return out;
  }

 private:
  static std::vector<std::string> words(std::string_view text) {
    std::vector<std::string> ws(1);
    auto finish = [&] {
      if (!ws.back().empty()) ws.emplace_back();
    };
    for (size_t i = 0; i < text.size();) {
      uint32_t cp = utf8::next(text, i);
      auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
      if (cp == 0 || cp == 0xFFFD) continue;
      bool ws_char = cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cat == UTF8PROC_CATEGORY_ZS;
      if (ws_char) {
        finish();
        continue;
      }
      if (cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF) continue;
      // Lowercase, then NFD and drop combining marks (BERT's strip_accents).
      auto lower = utf8proc_tolower(static_cast<utf8proc_int32_t>(cp));
      utf8proc_int32_t dec[16];
      int options = UTF8PROC_DECOMPOSE;
      auto n = utf8proc_decompose_char(lower, dec, 16, static_cast<utf8proc_option_t>(options), nullptr);
      if (n < 0 || n > 16) {
        dec[0] = lower;
        n = 1;
      }
      bool punct = (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
                   (cp >= 123 && cp <= 126) || (cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO);
      std::string s;
      for (int k = 0; k < n; ++k)
        if (utf8proc_category(dec[k]) != UTF8PROC_CATEGORY_MN) utf8::append(s, static_cast<uint32_t>(dec[k]));
      if (punct || is_cjk(cp)) {
        finish();
        ws.back() = s;
        ws.emplace_back();
      } else {
        ws.back() += s;
      }
    }
    if (ws.back().empty()) ws.pop_back();
    return ws;
  }

  void wordpiece(const std::string& word, std::vector<int32_t>& out) const {
    if (word.empty()) return;
    size_t n_chars = 0;
    for (size_t i = 0; i < word.size(); utf8::next(word, i)) ++n_chars;
    if (n_chars > 100) {
      out.push_back(unk_);
      return;
    }
    std::string w = std::string(kSpace) + word;
    size_t mark = out.size();
    for (size_t i = 0; i < w.size();) {
      bool found = false;
      for (size_t j = std::min(w.size(), i + max_len_); j > i; --j) {
        // Only cut at character boundaries.
        if (j < w.size() && (static_cast<unsigned char>(w[j]) & 0xC0) == 0x80) continue;
        auto it = t_.ids.find(w.substr(i, j - i));
        if (it != t_.ids.end()) {
          out.push_back(it->second);
          i = j;
          found = true;
          break;
        }
      }
      if (!found) {
        out.resize(mark);
        out.push_back(unk_);
        return;
      }
    }
  }

  int32_t unk_ = 0;
  size_t max_len_ = 1;
};

}  // namespace

std::vector<std::string> gguf_pre_tokenizer_regexes(const std::string& pre, bool* ignore_merges) {
  const std::string gpt2_noext = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";
  if (ignore_merges) *ignore_merges = false;
  if (pre == "gpt-2" || pre == "gpt2" || pre == "mpt" || pre == "olmo" || pre == "jais") return {kGpt2Pattern};
  if (pre == "llama3" || pre == "llama-v3" || pre == "llama-bpe" || pre == "dbrx" || pre == "smaug-bpe") {
    if (ignore_merges) *ignore_merges = pre != "dbrx" && pre != "smaug-bpe";
    return {kLlama3Pattern};
  }
  if (pre == "chatglm-bpe") return {kLlama3Pattern};
  if (pre == "qwen2" || pre == "stablelm2") return {kQwen2Pattern};
  if (pre == "starcoder" || pre == "refact" || pre == "command-r" || pre == "smollm" || pre == "codeshell" ||
      pre == "exaone" || pre == "minerva-7b")
    return {R"(\p{N})", gpt2_noext};
  // Code points that NFC would rewrite are escaped so the pattern survives any editor.
  if (pre == "deepseek-llm")
    return {"[\r\n]",
            "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-"
            "ᶚḀ-"
            "ἕἘ-"
            "Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-\\x{1F7D}ᾀ-ᾴᾶ-ᾼ\\x{1FBE}ῂ-ῄῆ-ῌῐ-\\x{1FD3}ῖ-\\x{1FDB}ῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\\x{2126}ℨ\\x{212A}-"
            "ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-"
            "𐓻𐲀-"
            "𐲲𐳀-"
            "𐳲𑢠-𑣟𞤀-𞥃]+",
            "\\s?[!-/:-~！-／：-～‘-‟　-。]+",
            "\\s+$",
            "[一-龥ࠀ-一가-퟿]+",
            "\\p{N}+"};
  if (pre == "deepseek-coder") return {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[一-龥ࠀ-一가-퟿]+", "\\p{N}"};
  if (pre == "falcon") return {R"([\p{P}\$\+<=>\^~\|`]+)", gpt2_noext, "[0-9][0-9][0-9]"};
  if (pre == "default") return {R"([\p{P}\$\+<=>\^~\|]+)", gpt2_noext, R"(\p{N}+)", "[0-9][0-9][0-9]"};
  throw Error("tokenizer.ggml.pre '" + pre +
              "' is not supported (known: default, gpt-2, llama-bpe, qwen2, starcoder, deepseek-llm, "
              "deepseek-coder, falcon, ...)");
}

std::unique_ptr<Tokenizer> tokenizer_from_gguf(const io::GgufFile& g) {
  const std::string& where = g.where();
  std::string model = g.get_string("tokenizer.ggml.model");
  if (model == "llama") return std::make_unique<GgufSpmTokenizer>(g);
  if (model == "bert") return std::make_unique<GgufWordPieceTokenizer>(g);
  if (model != "gpt2")
    throw Error(where + ": metadata 'tokenizer.ggml.model' is '" + model + "' (supported: gpt2, llama, bert)");
  return std::make_unique<BpeTokenizer>(bpe_spec_from_gguf(g));
}

BpeSpec bpe_spec_from_gguf(const io::GgufFile& g) {
  const std::string where = g.where();
  BpeSpec spec;
  spec.source = "GGUF " + where;
  spec.vocab = g.get_string_array("tokenizer.ggml.tokens");
  for (const auto& m : g.get_string_array("tokenizer.ggml.merges")) {
    size_t sp = m.find(' ', 1);
    if (sp == std::string::npos || sp + 1 >= m.size())
      throw Error(where + ": metadata 'tokenizer.ggml.merges' has an entry without a space: '" + m + "'");
    spec.merges.emplace_back(m.substr(0, sp), m.substr(sp + 1));
  }
  std::vector<double> types;
  if (g.has("tokenizer.ggml.token_type")) {
    types = g.get_number_array("tokenizer.ggml.token_type");
    if (types.size() != spec.vocab.size())
      throw Error(where + ": 'tokenizer.ggml.token_type' length differs from tokenizer.ggml.tokens");
  }
  std::unordered_map<std::string, int> seen;
  for (size_t i = 0; i < spec.vocab.size(); ++i) {
    if (spec.vocab[i].empty())
      throw Error(where + ": metadata 'tokenizer.ggml.tokens' has an empty token at " + std::to_string(i));
    if (!seen.emplace(spec.vocab[i], 1).second) continue;  // later duplicates keep the first id
    int32_t t = types.empty() ? kNormal : static_cast<int32_t>(types[i]);
    if (t == kControl || t == kUserDefined) {
      AddedToken a{spec.vocab[i], static_cast<int32_t>(i), t == kControl};
      spec.added.push_back(a);
    }
  }
  std::string pre = g.get_string_opt("tokenizer.ggml.pre").value_or("default");
  try {
    spec.split_regexes = gguf_pre_tokenizer_regexes(pre, &spec.ignore_merges);
  } catch (const Error& e) {
    throw Error(where + ": " + e.what());
  }
  set_special_ids(g, static_cast<int32_t>(spec.vocab.size()), spec.bos, spec.eos, spec.pad);
  if (g.get_bool_opt("tokenizer.ggml.add_bos_token").value_or(false) && spec.bos) spec.prefix_ids = {*spec.bos};
  if (g.get_bool_opt("tokenizer.ggml.add_eos_token").value_or(false) && spec.eos) spec.suffix_ids = {*spec.eos};
  if (auto c = g.get_string_opt("tokenizer.chat_template")) spec.chat_template = *c;
  return spec;
}

std::unique_ptr<Tokenizer> load_gguf_tokenizer(const std::filesystem::path& path) {
  return tokenizer_from_gguf(io::GgufFile::open(path));
}

}  // namespace yak::tok
