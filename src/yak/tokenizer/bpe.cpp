#include "yak/tokenizer/bpe.h"

#include <algorithm>
#include <queue>

#include "yak/base/error.h"
#include "yak/base/mmap.h"

namespace yak::tok {

const char* const kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char* const kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

namespace {

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

}  // namespace

BpeTokenizer::BpeTokenizer(BpeSpec spec)
    : nfc_(spec.nfc),
      add_prefix_space_(spec.add_prefix_space),
      ignore_merges_(spec.ignore_merges),
      prefix_ids_(std::move(spec.prefix_ids)),
      suffix_ids_(std::move(spec.suffix_ids)),
      source_(std::move(spec.source)) {
  const std::string& where = source_;
  size_t n = spec.vocab.size();
  const int64_t dense_limit = 4 * static_cast<int64_t>(spec.vocab.size() + spec.added.size()) + 65536;
  for (const auto& a : spec.added) {
    check(a.id >= 0 && a.id < dense_limit, where + ": added token '" + a.content + "' has id " + std::to_string(a.id) +
                                               ", out of range for a vocabulary of " +
                                               std::to_string(spec.vocab.size()) + " tokens");
    n = std::max(n, static_cast<size_t>(a.id) + 1);
  }
  check(n > 0, where + ": empty vocabulary");
  id_to_tok_.assign(n, "");
  kind_.assign(n, 0);
  tok_to_id_.reserve(n * 2);
  for (size_t i = 0; i < spec.vocab.size(); ++i) {
    if (spec.vocab[i].empty()) continue;
    id_to_tok_[i] = spec.vocab[i];
    tok_to_id_.emplace(spec.vocab[i], static_cast<int32_t>(i));
  }
  for (const auto& a : spec.added) {
    id_to_tok_[a.id] = a.content;
    kind_[a.id] = a.special ? 2 : 1;
    tok_to_id_[a.content] = a.id;
    added_.add(a);
  }
  const auto& table = byte_to_unicode();
  for (int b = 0; b < 256; ++b) {
    auto it = tok_to_id_.find(table[b]);
    byte_id_[b] = it == tok_to_id_.end() ? -1 : it->second;
  }
  merges_.reserve(spec.merges.size() * 2);
  for (size_t r = 0; r < spec.merges.size(); ++r) {
    const auto& [l, rt] = spec.merges[r];
    auto li = tok_to_id_.find(l), ri = tok_to_id_.find(rt), mi = tok_to_id_.find(l + rt);
    std::string idx = "merges[" + std::to_string(r) + "]";
    if (li == tok_to_id_.end()) throw Error(where + ": " + idx + " references unknown token '" + l + "'");
    if (ri == tok_to_id_.end()) throw Error(where + ": " + idx + " references unknown token '" + rt + "'");
    if (mi == tok_to_id_.end())
      throw Error(where + ": " + idx + " produces '" + l + rt + "', which is not in the vocabulary");
    merges_.emplace(pair_key(li->second, ri->second), std::make_pair(static_cast<int32_t>(r), mi->second));
  }
  for (const auto& p : spec.split_regexes) regexes_.push_back(std::make_unique<Regex>(p, where + ": pre_tokenizer"));
  bos_id_ = spec.bos;
  eos_id_ = spec.eos;
  pad_id_ = spec.pad;
  chat_template_ = std::move(spec.chat_template);
  for (auto id : prefix_ids_)
    check(id >= 0 && id < static_cast<int32_t>(n), where + ": post_processor id out of range");
  for (auto id : suffix_ids_)
    check(id >= 0 && id < static_cast<int32_t>(n), where + ": post_processor id out of range");
}

std::optional<int32_t> BpeTokenizer::token_to_id(std::string_view token) const {
  auto it = tok_to_id_.find(std::string(token));
  if (it == tok_to_id_.end()) return std::nullopt;
  return it->second;
}

std::string BpeTokenizer::id_to_token(int32_t id) const {
  if (id < 0 || id >= vocab_size()) throw Error("token id " + std::to_string(id) + " is out of range");
  return id_to_tok_[id];
}

bool BpeTokenizer::is_special(int32_t id) const {
  return id >= 0 && id < vocab_size() && kind_[id] == 2;
}

std::optional<std::string> BpeTokenizer::token_bytes(int32_t id) const {
  if (id < 0 || id >= vocab_size() || kind_[id] == 2) return std::nullopt;
  std::string out;
  if (kind_[id] != 0 || !unicode_to_bytes(id_to_tok_[id], out)) return id_to_tok_[id];  // added tokens: literal text
  return out;
}

std::string BpeTokenizer::describe() const {
  return "byte-level BPE (" + source_ + "), " + std::to_string(vocab_size()) + " tokens";
}

// The standard linked-list merge: repeatedly merge the lowest-ranked adjacent pair, using a
// heap with lazy invalidation so a word of n symbols costs O(n log n).
void BpeTokenizer::bpe(const std::string& bytes, std::vector<int32_t>& out) const {
  struct Sym {
    int32_t id;
    int32_t prev, next;
  };
  std::vector<Sym> syms;
  syms.reserve(bytes.size());
  for (unsigned char c : bytes) {
    int32_t id = byte_id_[c];
    if (id < 0) continue;  // a byte the vocabulary lacks has no token (HF drops it too)
    int32_t i = static_cast<int32_t>(syms.size());
    syms.push_back({id, i - 1, i + 1});
  }
  if (syms.empty()) return;
  syms.back().next = -1;
  struct Cand {
    int32_t rank, left;
    uint64_t key;
    bool operator<(const Cand& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  std::priority_queue<Cand> heap;
  auto push = [&](int32_t left) {
    if (left < 0) return;
    int32_t right = syms[left].next;
    if (right < 0) return;
    uint64_t k = pair_key(syms[left].id, syms[right].id);
    auto it = merges_.find(k);
    if (it != merges_.end()) heap.push({it->second.first, left, k});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(syms.size()); ++i) push(i);
  while (!heap.empty()) {
    Cand c = heap.top();
    heap.pop();
    Sym& l = syms[c.left];
    if (l.id < 0 || l.next < 0) continue;
    Sym& r = syms[l.next];
    if (pair_key(l.id, r.id) != c.key) continue;  // stale: a neighbour changed
    l.id = merges_.at(c.key).second;
    int32_t rnext = r.next;
    r.id = -1;
    l.next = rnext;
    if (rnext >= 0) syms[rnext].prev = c.left;
    push(l.prev);
    push(c.left);
  }
  for (int32_t i = 0; i >= 0; i = syms[i].next) out.push_back(syms[i].id);
}

void BpeTokenizer::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  std::string key(word);
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  bool done = false;
  if (ignore_merges_) {
    std::string mapped;
    const auto& table = byte_to_unicode();
    for (unsigned char c : word) mapped += table[c];
    auto it = tok_to_id_.find(mapped);
    if (it != tok_to_id_.end() && kind_[it->second] == 0) {
      ids.push_back(it->second);
      done = true;
    }
  }
  if (!done) bpe(key, ids);
  out.insert(out.end(), ids.begin(), ids.end());
  std::lock_guard<std::mutex> lock(cache_mu_);
  if (cache_.size() > 200000) cache_.clear();  // bound memory on adversarial input
  cache_.emplace(std::move(key), std::move(ids));
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text, bool add_special) const {
  require_utf8(text, source_.c_str());
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (add_special) out.insert(out.end(), prefix_ids_.begin(), prefix_ids_.end());
  std::string norm, prefixed;
  for (const auto& piece : added_.split(text)) {
    if (piece.id >= 0) {
      out.push_back(piece.id);
      continue;
    }
    std::string_view seg = piece.text;
    if (nfc_) {
      norm = nfc(seg);
      seg = norm;
    }
    if (add_prefix_space_ && !seg.empty() && seg[0] != ' ') {
      prefixed = " ";
      prefixed.append(seg);
      seg = prefixed;
    }
    if (regexes_.empty()) {
      encode_word(seg, out);
    } else {
      for (auto w : split_pieces(seg, regexes_)) encode_word(w, out);
    }
  }
  if (add_special) out.insert(out.end(), suffix_ids_.begin(), suffix_ids_.end());
  return out;
}

std::string BpeTokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string bytes;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size()) throw Error("decode: token id " + std::to_string(id) + " is out of range");
    if (kind_[id] == 2 && skip_special) continue;
    const std::string& t = id_to_tok_[id];
    if (kind_[id] != 0 || !unicode_to_bytes(t, bytes)) bytes += t;  // added tokens are literal text
  }
  return utf8_lossy(bytes);
}

// ---------------------------------------------------------------- loading

namespace {

std::string json_token_content(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return {};
}

// The regexes and flags of a HF pre_tokenizer object.
void parse_pre_tokenizer(const Json& pt, BpeSpec& spec, const std::string& where) {
  if (pt.is_null()) return;
  if (!pt.is_object()) throw Error(where + ": field 'pre_tokenizer' must be an object");
  std::string type = json_get<std::string>(pt, "type", where + ": pre_tokenizer");
  if (type == "Sequence") {
    auto seq = json_get<Json>(pt, "pretokenizers", where + ": pre_tokenizer");
    if (!seq.is_array()) throw Error(where + ": pre_tokenizer.pretokenizers must be an array");
    for (const auto& p : seq) parse_pre_tokenizer(p, spec, where);
  } else if (type == "ByteLevel") {
    spec.add_prefix_space = json_get_or<bool>(pt, "add_prefix_space", false, where + ": pre_tokenizer");
    if (json_get_or<bool>(pt, "use_regex", true, where + ": pre_tokenizer")) spec.split_regexes.push_back(kGpt2Pattern);
  } else if (type == "Split") {
    std::string w = where + ": pre_tokenizer.Split";
    auto pat = json_get<Json>(pt, "pattern", w);
    std::string behavior = json_get_or<std::string>(pt, "behavior", "Isolated", w);
    if (behavior != "Isolated") throw Error(w + ": behavior '" + behavior + "' is not supported (expected Isolated)");
    if (json_get_or<bool>(pt, "invert", false, w)) throw Error(w + ": invert=true is not supported");
    if (pat.is_object() && pat.contains("Regex") && pat["Regex"].is_string()) {
      spec.split_regexes.push_back(pat["Regex"].get<std::string>());
    } else if (pat.is_object() && pat.contains("String") && pat["String"].is_string()) {
      std::string lit = pat["String"].get<std::string>(), esc = "\\Q";
      for (size_t i = 0; i < lit.size(); ++i) {
        if (lit.compare(i, 2, "\\E") == 0) {
          esc += "\\E\\\\E\\Q";
          ++i;
        } else {
          esc += lit[i];
        }
      }
      spec.split_regexes.push_back(esc + "\\E");
    } else {
      throw Error(w + ": field 'pattern' must be {\"Regex\": ...} or {\"String\": ...}");
    }
  } else {
    throw Error(where + ": pre_tokenizer type '" + type + "' is not supported (expected ByteLevel, Split or Sequence)");
  }
}

void parse_normalizer(const Json& n, BpeSpec& spec, const std::string& where) {
  if (n.is_null()) return;
  if (!n.is_object()) throw Error(where + ": field 'normalizer' must be an object or null");
  std::string type = json_get<std::string>(n, "type", where + ": normalizer");
  if (type == "NFC") {
    spec.nfc = true;
  } else if (type == "Sequence") {
    auto seq = json_get<Json>(n, "normalizers", where + ": normalizer");
    if (!seq.is_array()) throw Error(where + ": normalizer.normalizers must be an array");
    for (const auto& x : seq) parse_normalizer(x, spec, where);
  } else {
    throw Error(where + ": normalizer type '" + type + "' is not supported (expected NFC, Sequence or null)");
  }
}

void parse_post_processor(const Json& p, BpeSpec& spec, const std::string& where) {
  if (p.is_null()) return;
  if (!p.is_object()) throw Error(where + ": field 'post_processor' must be an object or null");
  std::string type = json_get<std::string>(p, "type", where + ": post_processor");
  if (type == "ByteLevel") return;
  if (type == "Sequence") {
    auto seq = json_get<Json>(p, "processors", where + ": post_processor");
    if (!seq.is_array()) throw Error(where + ": post_processor.processors must be an array");
    for (const auto& x : seq) parse_post_processor(x, spec, where);
    return;
  }
  if (type != "TemplateProcessing")
    throw Error(where + ": post_processor type '" + type +
                "' is not supported (expected TemplateProcessing or ByteLevel)");
  std::string w = where + ": post_processor";
  auto single = json_get<Json>(p, "single", w);
  auto specials = json_get_or<Json>(p, "special_tokens", Json::object(), w);
  if (!single.is_array() || !specials.is_object()) throw Error(w + ": 'single' must be an array");
  bool seen_a = false;
  spec.prefix_ids.clear();
  spec.suffix_ids.clear();
  for (const auto& item : single) {
    if (item.is_object() && item.contains("Sequence")) {
      seen_a = true;
    } else if (item.is_object() && item.contains("SpecialToken") && item["SpecialToken"].is_object()) {
      std::string name = json_get<std::string>(item["SpecialToken"], "id", w + ".single");
      auto st = specials.find(name);
      if (st == specials.end() || !st->is_object())
        throw Error(w + ": special token '" + name + "' is not in special_tokens");
      auto ids = json_get<std::vector<int32_t>>(*st, "ids", w + ".special_tokens");
      auto& dst = seen_a ? spec.suffix_ids : spec.prefix_ids;
      dst.insert(dst.end(), ids.begin(), ids.end());
    } else {
      throw Error(w + ": unexpected item in 'single'");
    }
  }
}

AddedToken parse_added(const Json& a, int32_t id, const std::string& where) {
  AddedToken t;
  t.id = id;
  t.content = json_get<std::string>(a, "content", where);
  t.special = json_get_or<bool>(a, "special", true, where);
  t.lstrip = json_get_or<bool>(a, "lstrip", false, where);
  t.rstrip = json_get_or<bool>(a, "rstrip", false, where);
  t.normalized = json_get_or<bool>(a, "normalized", false, where);
  t.single_word = json_get_or<bool>(a, "single_word", false, where);
  return t;
}

// bos/eos/pad and the chat template from tokenizer_config.json (or special_tokens_map.json).
void apply_config(const Json& cfg, BpeSpec& spec, const std::unordered_map<std::string, int32_t>& ids) {
  auto look = [&](const char* key) -> std::optional<int32_t> {
    auto it = cfg.find(key);
    if (it == cfg.end()) return std::nullopt;
    std::string c = json_token_content(*it);
    if (c.empty()) return std::nullopt;
    auto f = ids.find(c);
    if (f == ids.end()) return std::nullopt;
    return f->second;
  };
  if (auto v = look("bos_token")) spec.bos = v;
  if (auto v = look("eos_token")) spec.eos = v;
  if (auto v = look("pad_token")) spec.pad = v;
  auto ct = cfg.find("chat_template");
  if (ct != cfg.end()) {
    if (ct->is_string()) {
      spec.chat_template = ct->get<std::string>();
    } else if (ct->is_array()) {
      for (const auto& e : *ct)
        if (e.is_object() && e.value("name", "") == "default" && e.contains("template") && e["template"].is_string())
          spec.chat_template = e["template"].get<std::string>();
    }
  }
}

std::unordered_map<std::string, int32_t> content_ids(const BpeSpec& spec) {
  std::unordered_map<std::string, int32_t> m;
  for (size_t i = 0; i < spec.vocab.size(); ++i)
    if (!spec.vocab[i].empty()) m.emplace(spec.vocab[i], static_cast<int32_t>(i));
  for (const auto& a : spec.added) m[a.content] = a.id;
  return m;
}

void vocab_from_object(const Json& v, BpeSpec& spec, const std::string& where) {
  if (!v.is_object()) throw Error(where + ": field 'vocab' must be an object of token -> id");
  int64_t max_id = -1;
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (!it->is_number_integer()) throw Error(where + ": vocab entry '" + it.key() + "' must have an integer id");
    int64_t id = it->get<int64_t>();
    if (id < 0 || id >= (1 << 30)) throw Error(where + ": vocab entry '" + it.key() + "' has id out of range");
    max_id = std::max(max_id, id);
  }
  // Ids index a table: a vocabulary of n tokens numbers them (nearly) densely from 0. A far
  // larger id is corrupt input, and would make that table gigabytes.
  const int64_t n = static_cast<int64_t>(v.size());
  if (max_id >= 4 * n + 65536)
    throw Error(where + ": vocab id " + std::to_string(max_id) + " is far beyond its " + std::to_string(n) +
                " entries (ids must number the tokens from 0)");
  spec.vocab.assign(static_cast<size_t>(max_id + 1), "");
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (it.key().empty()) throw Error(where + ": vocab has an empty token");
    spec.vocab[it->get<int64_t>()] = it.key();
  }
}

}  // namespace

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_json_string(const std::string& text, const std::string& where,
                                                             const Json* cfg) {
  return std::make_unique<BpeTokenizer>(spec_from_json_string(text, where, cfg));
}

BpeSpec BpeTokenizer::spec_from_json_string(const std::string& text, const std::string& where, const Json* cfg) {
  Json j;
  try {
    j = parse_json(text, where);
  } catch (const nlohmann::json::exception& e) {
    // parse_json maps syntax errors; a number out of range surfaces as another json exception.
    throw Error(where + ": invalid JSON: " + e.what());
  }
  if (!j.is_object()) throw Error(where + ": expected a JSON object at the top level");
  auto model = j.find("model");
  if (model == j.end() || !model->is_object()) throw Error(where + ": missing field 'model'");
  std::string mw = where + ": model";
  std::string type = json_get_or<std::string>(*model, "type", "BPE", mw);
  if (type != "BPE") throw Error(mw + ".type is '" + type + "'; only BPE is supported for tokenizer.json");
  BpeSpec spec;
  spec.source = where;
  vocab_from_object(json_get<Json>(*model, "vocab", mw), spec, mw);
  auto merges = json_get<Json>(*model, "merges", mw);
  if (!merges.is_array()) throw Error(mw + ": field 'merges' must be an array");
  spec.merges.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const auto& m = merges[i];
    std::string idx = mw + ".merges[" + std::to_string(i) + "]";
    if (m.is_string()) {
      const std::string& s = m.get_ref<const std::string&>();
      size_t sp = s.find(' ', 1);
      if (sp == std::string::npos || sp + 1 >= s.size()) throw Error(idx + ": expected \"left right\"");
      spec.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      spec.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      throw Error(idx + ": expected a string \"left right\" or a [left, right] pair");
    }
  }
  spec.ignore_merges = json_get_or<bool>(*model, "ignore_merges", false, mw);
  if (json_get_or<bool>(*model, "byte_fallback", false, mw))
    throw Error(mw + ": byte_fallback BPE (SentencePiece-converted) is not supported; use tokenizer.model");
  auto added = j.find("added_tokens");
  if (added != j.end() && !added->is_null()) {
    if (!added->is_array()) throw Error(where + ": field 'added_tokens' must be an array");
    for (size_t i = 0; i < added->size(); ++i) {
      std::string aw = where + ": added_tokens[" + std::to_string(i) + "]";
      const auto& a = (*added)[i];
      if (!a.is_object()) throw Error(aw + ": expected an object");
      int64_t id = json_get<int64_t>(a, "id", aw);
      if (id < 0 || id >= (1 << 30)) throw Error(aw + ": id out of range");
      spec.added.push_back(parse_added(a, static_cast<int32_t>(id), aw));
    }
  }
  parse_normalizer(j.value("normalizer", Json()), spec, where);
  parse_pre_tokenizer(j.value("pre_tokenizer", Json()), spec, where);
  parse_post_processor(j.value("post_processor", Json()), spec, where);
  auto dec = j.value("decoder", Json());
  if (!dec.is_null() && (!dec.is_object() || dec.value("type", "") != "ByteLevel"))
    throw Error(where + ": decoder must be ByteLevel (got " + dec.dump().substr(0, 60) + ")");
  auto ids = content_ids(spec);
  if (!spec.prefix_ids.empty()) spec.bos = spec.prefix_ids.front();
  if (cfg) apply_config(*cfg, spec, ids);
  return spec;
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_tokenizer_json(const std::filesystem::path& path) {
  std::string text = read_text_file(path);
  Json cfg;
  const Json* cfgp = nullptr;
  auto cfg_path = path.parent_path() / "tokenizer_config.json";
  if (std::filesystem::exists(cfg_path)) {
    cfg = read_json_file(cfg_path);
    if (cfg.is_object()) cfgp = &cfg;
  }
  auto tok = from_json_string(text, path.string(), cfgp);
  return tok;
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_vocab_merges(const std::filesystem::path& dir) {
  auto vocab_path = dir / "vocab.json", merges_path = dir / "merges.txt";
  BpeSpec spec;
  spec.source = "vocab.json + merges.txt in " + dir.string();
  vocab_from_object(read_json_file(vocab_path), spec, vocab_path.string());
  std::string mt = read_text_file(merges_path);
  size_t line_no = 0;
  for (size_t pos = 0; pos < mt.size();) {
    size_t nl = mt.find('\n', pos);
    if (nl == std::string::npos) nl = mt.size();
    std::string_view line(mt.data() + pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);  // CRLF files
    if (line.empty() || (line_no == 1 && line.rfind("#version", 0) == 0)) continue;
    size_t sp = line.find(' ', 1);
    if (sp == std::string_view::npos || sp + 1 >= line.size() || line.find(' ', sp + 1) != std::string_view::npos)
      throw Error(merges_path.string() + ": line " + std::to_string(line_no) + ": expected \"left right\"");
    spec.merges.emplace_back(std::string(line.substr(0, sp)), std::string(line.substr(sp + 1)));
  }
  Json cfg = Json::object(), stmap = Json::object();
  if (std::filesystem::exists(dir / "tokenizer_config.json")) cfg = read_json_file(dir / "tokenizer_config.json");
  if (std::filesystem::exists(dir / "special_tokens_map.json")) stmap = read_json_file(dir / "special_tokens_map.json");
  if (!cfg.is_object()) throw Error((dir / "tokenizer_config.json").string() + ": expected an object");
  if (!stmap.is_object()) throw Error((dir / "special_tokens_map.json").string() + ": expected an object");

  // Which contents count as special: transformers marks all its special tokens so.
  std::unordered_map<std::string, bool> special_names;
  for (const Json* src : {&stmap, &cfg}) {
    for (const char* k : {"bos_token", "eos_token", "pad_token", "unk_token"}) {
      auto it = src->find(k);
      if (it != src->end()) {
        std::string c = json_token_content(*it);
        if (!c.empty()) special_names[c] = true;
      }
    }
    auto extra = src->find("additional_special_tokens");
    if (extra != src->end() && extra->is_array())
      for (const auto& e : *extra) {
        std::string c = json_token_content(e);
        if (!c.empty()) special_names[c] = true;
      }
  }
  std::unordered_map<int32_t, AddedToken> added;
  auto atd = cfg.find("added_tokens_decoder");
  if (atd != cfg.end() && atd->is_object()) {
    for (auto it = atd->begin(); it != atd->end(); ++it) {
      std::string aw = (dir / "tokenizer_config.json").string() + ": added_tokens_decoder." + it.key();
      int32_t id;
      try {
        id = std::stoi(it.key());
      } catch (...) {
        throw Error(aw + ": key must be a token id");
      }
      if (id < 0 || id >= (1 << 30) || !it->is_object()) throw Error(aw + ": expected an object with a valid id");
      added[id] = parse_added(*it, id, aw);
    }
  }
  if (std::filesystem::exists(dir / "added_tokens.json")) {
    Json at = read_json_file(dir / "added_tokens.json");
    if (!at.is_object()) throw Error((dir / "added_tokens.json").string() + ": expected an object of token -> id");
    for (auto it = at.begin(); it != at.end(); ++it) {
      if (!it->is_number_integer())
        throw Error((dir / "added_tokens.json").string() + ": '" + it.key() + "' needs an integer id");
      int32_t id = it->get<int32_t>();
      if (id < 0 || id >= (1 << 30)) throw Error((dir / "added_tokens.json").string() + ": id out of range");
      if (added.count(id)) continue;
      AddedToken t;
      t.id = id;
      t.content = it.key();
      t.special = special_names.count(it.key()) > 0;
      added[id] = t;
    }
  }
  for (auto& [id, t] : added) spec.added.push_back(t);
  std::sort(spec.added.begin(), spec.added.end(), [](auto& a, auto& b) { return a.id < b.id; });

  std::string cls = json_get_or<std::string>(cfg, "tokenizer_class", "", "tokenizer_config.json");
  bool prefix = json_get_or<bool>(cfg, "add_prefix_space", false, "tokenizer_config.json");
  if (cls.find("Qwen2") != std::string::npos) {
    // transformers' Qwen2Tokenizer: NFC, its own split regex, then ByteLevel without regex.
    spec.nfc = true;
    spec.split_regexes.push_back(kQwen2Pattern);
  } else {
    spec.split_regexes.push_back(kGpt2Pattern);
  }
  spec.add_prefix_space = prefix;
  auto ids = content_ids(spec);
  apply_config(stmap, spec, ids);
  apply_config(cfg, spec, ids);
  if (json_get_or<bool>(cfg, "add_bos_token", false, "tokenizer_config.json") && spec.bos)
    spec.prefix_ids = {*spec.bos};
  if (json_get_or<bool>(cfg, "add_eos_token", false, "tokenizer_config.json") && spec.eos)
    spec.suffix_ids = {*spec.eos};
  return std::make_unique<BpeTokenizer>(std::move(spec));
}

}  // namespace yak::tok
