#include "yak/ask/plugins.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "yak/ask/knowledge.h"
#include "yak/ask/llm.h"
#include "yak/base/error.h"
#include "yak/base/http.h"
#include "yak/base/subprocess.h"
#include "yak/base/utf8.h"
#include "yak/model/decoder.h"
#include "yak/model/kv_cache.h"
#include "yak/tokenizer/tokenizer.h"

namespace yak::ask {
namespace fs = std::filesystem;

// ---- search terms ---------------------------------------------------------------------------

namespace {

bool is_cjk(char32_t c) {
  return (c >= 0x3400 && c <= 0x9FFF) || (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x20000 && c <= 0x2FFFF) ||
         (c >= 0x3040 && c <= 0x30FF) || (c >= 0xAC00 && c <= 0xD7A3);
}

bool word_char(char32_t c) {
  return (c < 0x80 && std::isalnum(static_cast<int>(c))) || (c >= 0xC0 && c < 0x2000 && c != 0xD7 && c != 0xF7);
}

const std::set<std::string>& stop_words() {
  static const std::set<std::string> s = {
      // English question and function words
      "a", "an", "the", "of", "to", "in", "on", "for", "and", "or", "is", "are", "was", "were", "be", "what", "which",
      "who", "how", "does", "do", "did", "mean", "means", "meaning", "me", "tell", "about", "please", "can", "you",
      "we", "our", "it", "its", "this", "that", "with", "by", "as", "at", "from", "i", "my", "there",
      // Chinese particles and question words (single characters and pairs)
      "的", "了", "吗", "呢", "吧", "是", "在", "和", "与", "或", "请", "问", "下", "一", "个", "们", "我", "你", "么",
      "什", "什么", "意思", "怎么", "请问", "一下", "是什", "么意", "思是", "我们", "如何", "哪些", "哪个"};
  return s;
}

}  // namespace

std::vector<std::string> search_terms(const std::string& text) {
  const auto t = normalize(text);
  std::vector<std::string> out;
  auto push = [&](const std::u32string& w) {
    const auto s = to_utf8(w);
    if (!stop_words().count(s)) out.push_back(s);
  };
  size_t i = 0;
  while (i < t.size()) {
    if (is_cjk(t[i])) {
      size_t j = i;
      while (j < t.size() && is_cjk(t[j])) ++j;
      for (size_t k = i; k < j; ++k) {
        push(t.substr(k, 1));
        if (k + 1 < j) push(t.substr(k, 2));
      }
      i = j;
    } else if (word_char(t[i])) {
      size_t j = i;
      while (j < t.size() && word_char(t[j])) ++j;
      push(t.substr(i, j - i));
      i = j;
    } else {
      ++i;
    }
  }
  return out;
}

// ---- embeddings -----------------------------------------------------------------------------

namespace {

class ModelEmbedder : public Embedder {
 public:
  ModelEmbedder(std::unique_ptr<model::DecoderModel> m, std::unique_ptr<tok::Tokenizer> t)
      : model_(std::move(m)), tok_(std::move(t)) {
    check(tok_ != nullptr, "embedding model: no tokenizer");
  }
  std::vector<float> embed(const std::string& text) override {
    auto ids = tok_->encode(text, false);
    const int64_t ctx = std::min<int64_t>(model_->config().max_position_embeddings, 512);
    if (static_cast<int64_t>(ids.size()) > ctx) ids.resize(static_cast<size_t>(ctx));
    const int64_t h = model_->config().hidden_size;
    std::vector<float> v(static_cast<size_t>(h), 0.0f);
    if (ids.empty()) return v;
    model::Batch b;
    for (size_t i = 0; i < ids.size(); ++i) {
      b.ids.push_back(ids[i]);
      b.pos.push_back(static_cast<int32_t>(i));
      b.slot.push_back(0);
      b.logits_for.push_back(static_cast<int32_t>(i));
    }
    model::KVCache cache(model_->config(), 1, static_cast<int64_t>(ids.size()));
    const Tensor hs = model_->hidden_states(b, cache);
    const float* p = hs.data<float>();
    for (size_t r = 0; r < ids.size(); ++r)
      for (int64_t c = 0; c < h; ++c) v[static_cast<size_t>(c)] += p[static_cast<int64_t>(r) * h + c];
    double norm = 0;
    for (float x : v) norm += static_cast<double>(x) * x;
    norm = std::sqrt(norm);
    if (norm > 0)
      for (auto& x : v) x = static_cast<float>(x / norm);
    return v;
  }

 private:
  std::unique_ptr<model::DecoderModel> model_;
  std::unique_ptr<tok::Tokenizer> tok_;
};

}  // namespace

std::unique_ptr<Embedder> make_model_embedder(std::unique_ptr<model::DecoderModel> model,
                                              std::unique_ptr<tok::Tokenizer> tokenizer) {
  return std::make_unique<ModelEmbedder>(std::move(model), std::move(tokenizer));
}

// ---- documents ------------------------------------------------------------------------------

std::vector<Passage> DocIndex::split(const std::string& text, const std::string& file, size_t max_chars) {
  std::vector<Passage> out;
  std::vector<std::string> headings;  // by level
  Passage cur;
  auto flush = [&] {
    const bool blank = cur.text.find_first_not_of(" \t\r\n") == std::string::npos;
    if (!blank) out.push_back(cur);
    cur = Passage{};
  };
  auto heading_path = [&] {
    std::string h;
    for (auto& x : headings)
      if (!x.empty()) h += (h.empty() ? "" : " > ") + x;
    return h;
  };
  std::istringstream in(text);
  std::string line;
  int n = 0;
  bool in_fence = false, para_break = false;
  while (std::getline(in, line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const bool inside = in_fence;  // a fenced code block never splits
    if (line.rfind("```", 0) == 0) in_fence = !in_fence;
    size_t level = 0;
    while (!inside && level < line.size() && line[level] == '#') ++level;
    if (level > 0 && level <= 6 && level < line.size() && line[level] == ' ') {
      flush();
      headings.resize(level);
      headings[level - 1] = line.substr(level + 1);
      continue;
    }
    const bool blank = line.find_first_not_of(" \t") == std::string::npos;
    if (blank && !inside) {
      // A paragraph ends; paragraphs are packed up to max_chars.
      if (cur.text.size() >= max_chars / 2) flush();
      para_break = !cur.text.empty();
      continue;
    }
    if (!inside && !cur.text.empty() && cur.text.size() + line.size() > max_chars) flush();
    if (cur.text.empty()) {
      cur.file = file;
      cur.first_line = n;
      cur.heading = heading_path();
      para_break = false;
    }
    cur.text += (cur.text.empty() ? "" : para_break ? "\n\n" : "\n") + line;
    para_break = false;
    cur.last_line = n;
  }
  flush();
  return out;
}

DocIndex DocIndex::build(const std::vector<std::string>& paths, const fs::path& base) {
  DocIndex ix;
  auto add_file = [&](const fs::path& full, const std::string& shown) {
    const std::string text = read_text_file(full);
    check(utf8::is_valid(text), shown + ": not valid UTF-8 text");
    for (auto& p : split(text, shown)) ix.add(std::move(p));
  };
  for (auto& p : paths) {
    const fs::path full = fs::path(p).is_absolute() ? fs::path(p) : base / p;
    check(fs::exists(full), full.string() + ": no such document file or folder");
    if (fs::is_directory(full)) {
      std::vector<fs::path> files;
      for (auto& e : fs::recursive_directory_iterator(full)) {
        const auto ext = e.path().extension().string();
        if (e.is_regular_file() && (ext == ".md" || ext == ".markdown" || ext == ".txt")) files.push_back(e.path());
      }
      std::sort(files.begin(), files.end());
      for (auto& f : files) add_file(f, (fs::path(p) / fs::relative(f, full)).string());
    } else {
      add_file(full, p);
    }
  }
  return ix;
}

void DocIndex::add(Passage p) {
  const auto doc = static_cast<uint32_t>(passages_.size());
  auto terms = search_terms(p.heading + "\n" + p.text);
  std::map<std::string, uint32_t> tf;
  for (auto& t : terms) ++tf[t];
  for (auto& [t, n] : tf) postings_[t].push_back({doc, n});
  avg_len_ = (avg_len_ * doc + static_cast<double>(terms.size())) / (doc + 1);
  terms_.push_back(std::move(terms));
  passages_.push_back(std::move(p));
  if (embedder_) vectors_.push_back(embedder_->embed(passages_.back().heading + "\n" + passages_.back().text));
}

void DocIndex::set_embedder(Embedder* e) {
  embedder_ = e;
  vectors_.clear();
  if (e)
    for (auto& p : passages_) vectors_.push_back(e->embed(p.heading + "\n" + p.text));
}

std::vector<DocIndex::Hit> DocIndex::search(const std::string& query, size_t k) const {
  const double k1 = 1.2, b = 0.75;
  const auto n = static_cast<double>(passages_.size());
  std::vector<double> bm25(passages_.size(), 0.0);
  std::set<std::string> seen;
  for (auto& t : search_terms(query)) {
    if (!seen.insert(t).second) continue;
    auto it = postings_.find(t);
    if (it == postings_.end()) continue;
    const double df = static_cast<double>(it->second.size());
    const double idf = std::log(1.0 + (n - df + 0.5) / (df + 0.5));
    for (auto [doc, tf] : it->second) {
      const double len = static_cast<double>(terms_[doc].size());
      bm25[doc] += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / std::max(avg_len_, 1.0)));
    }
  }
  std::vector<uint32_t> order(passages_.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  auto rank_by = [&](const std::vector<double>& s) {
    auto o = order;
    std::stable_sort(o.begin(), o.end(), [&](uint32_t x, uint32_t y) { return s[x] > s[y]; });
    return o;
  };
  std::vector<Hit> hits;
  if (!embedder_ || vectors_.empty()) {
    // Passages far below the best one are noise (a shared common word), not citations.
    const auto ranked = rank_by(bm25);
    const double floor = ranked.empty() ? 0.0 : 0.25 * bm25[ranked[0]];
    for (auto i : ranked)
      if (bm25[i] > 0 && bm25[i] >= floor) hits.push_back({&passages_[i], bm25[i], bm25[i]});
  } else {
    // Reciprocal-rank fusion (k = 60) of the BM25 and cosine rankings.
    const auto q = embedder_->embed(query);
    std::vector<double> cos(passages_.size(), 0.0);
    for (size_t i = 0; i < vectors_.size(); ++i)
      for (size_t j = 0; j < q.size() && j < vectors_[i].size(); ++j)
        cos[i] += static_cast<double>(q[j]) * vectors_[i][j];
    std::vector<double> fused(passages_.size(), 0.0);
    const auto rb = rank_by(bm25), rc = rank_by(cos);
    for (size_t r = 0; r < rb.size(); ++r) {
      if (bm25[rb[r]] > 0) fused[rb[r]] += 1.0 / (60.0 + static_cast<double>(r + 1));
      fused[rc[r]] += 1.0 / (60.0 + static_cast<double>(r + 1));
    }
    for (auto i : rank_by(fused)) hits.push_back({&passages_[i], fused[i], bm25[i]});
  }
  if (hits.size() > k) hits.resize(k);
  return hits;
}

// ---- configuration --------------------------------------------------------------------------

PluginConfig PluginConfig::load(const fs::path& path) {
  return parse(read_text_file(path), path.string(), path.parent_path());
}

PluginConfig PluginConfig::parse(const std::string& yaml, const std::string& where, const fs::path& base) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    throw Error(where + ":" + std::to_string(e.mark.line + 1) + ": bad YAML: " + e.msg);
  }
  check(root.IsMap(), where + ": the plug-in file should be a YAML mapping (documents, plugins)");
  PluginConfig c;
  c.source = where;
  c.base = base;
  auto line = [&](const YAML::Node& n) { return where + ":" + std::to_string(n.Mark().line + 1); };
  auto text = [&](const YAML::Node& n, const std::string& key, bool required) -> std::string {
    const auto v = n[key];
    if (!v || v.IsNull()) {
      check(!required, line(n) + ": missing field '" + key + "'");
      return {};
    }
    check(v.IsScalar(), line(v) + ": field '" + key + "' should be a text value");
    return v.Scalar();
  };
  auto texts = [&](const YAML::Node& n, const std::string& key) {
    std::vector<std::string> out;
    const auto v = n[key];
    if (!v || v.IsNull()) return out;
    if (v.IsScalar()) return std::vector<std::string>{v.Scalar()};
    check(v.IsSequence(), line(v) + ": field '" + key + "' should be a list of text values");
    for (const auto& e : v) {
      check(e.IsScalar(), line(e) + ": field '" + key + "' should be a list of text values");
      out.push_back(e.Scalar());
    }
    return out;
  };
  auto number = [&](const YAML::Node& n, const std::string& key, double fallback, double lo, double hi) {
    const auto v = n[key];
    if (!v || v.IsNull()) return fallback;
    double x = 0;
    check(v.IsScalar() && YAML::convert<double>::decode(v, x) && x >= lo && x <= hi,
          line(v) + ": field '" + key + "' should be a number in [" + std::to_string(lo).substr(0, 4) + ", " +
              std::to_string(hi).substr(0, 6) + "]");
    return x;
  };
  for (const auto& k : root) {
    const auto key = k.first.Scalar();
    check(key == "documents" || key == "plugins",
          line(k.first) + ": unknown field '" + key + "' (expected documents, plugins)");
  }
  c.documents = texts(root, "documents");
  std::set<std::string> names;
  if (const auto ps = root["plugins"]; ps && !ps.IsNull()) {
    check(ps.IsSequence(), line(ps) + ": field 'plugins' should be a list");
    for (const auto& pn : ps) {
      check(pn.IsMap(), line(pn) + ": a plug-in should be a mapping");
      FunctionPlugin p;
      p.name = text(pn, "name", true);
      check(names.insert(p.name).second, line(pn) + ": plug-in '" + p.name + "' is defined twice");
      check(p.name != "data" && p.name != "docs", line(pn) + ": 'data' and 'docs' are reserved plug-in names");
      p.description = text(pn, "description", true);
      p.examples = texts(pn, "examples");
      p.command = text(pn, "command", false);
      p.url = text(pn, "url", false);
      check(p.command.empty() != p.url.empty(), line(pn) + ": plug-in '" + p.name + "' needs 'command' or 'url' (one)");
      if (!p.url.empty()) http::parse_url(p.url);
      p.timeout_seconds = number(pn, "timeout", 10, 0.001, 3600);
      p.dir = base.empty() ? "" : base.string();
      p.min_score = number(pn, "min_score", 0.5, 0, 1);
      c.functions.push_back(std::move(p));
    }
  }
  return c;
}

Plugins Plugins::load(const fs::path& path) {
  Plugins p;
  p.config = PluginConfig::load(path);
  p.docs = DocIndex::build(p.config.documents, p.config.base);
  return p;
}

// ---- function plug-ins ----------------------------------------------------------------------

double plugin_score(const FunctionPlugin& p, const std::string& question) {
  auto q = search_terms(question);
  std::sort(q.begin(), q.end());
  q.erase(std::unique(q.begin(), q.end()), q.end());
  if (q.empty()) return 0;
  double best = 0;
  std::vector<std::string> texts = p.examples;
  texts.push_back(p.description);
  for (auto& t : texts) {
    const auto terms = search_terms(t);
    const std::set<std::string> have(terms.begin(), terms.end());
    size_t hit = 0;
    for (auto& x : q) hit += have.count(x);
    best = std::max(best, static_cast<double>(hit) / static_cast<double>(q.size()));
  }
  return best;
}

PluginReply call_plugin(const FunctionPlugin& p, const std::string& question, const Date& today,
                        const Mapping& mapping) {
  const std::string who = "plug-in '" + p.name + "'";
  const Json req = {
      {"plugin", p.name}, {"question", question}, {"today", today.str()}, {"elements", mapping.to_json()}};
  const std::string body = req.dump(-1, ' ', false, Json::error_handler_t::replace);
  std::string got;
  if (!p.command.empty()) {
    got = run_command(p.command, body, p.timeout_seconds, who, p.dir);
  } else {
    const auto res = http::post(p.url, body, "application/json", p.timeout_seconds);
    check(res.status / 100 == 2,
          who + " (" + p.url + ") answered HTTP " + std::to_string(res.status) + ": " + res.body.substr(0, 200));
    got = res.body;
  }
  const Json j = parse_json(got, who + " answer");
  check(j.is_object(), who + ": the answer should be a JSON object with 'text'");
  PluginReply r;
  r.text = json_get_or<std::string>(j, "text", "", who + " answer");
  if (j.contains("columns")) {
    r.table.columns = json_get<std::vector<std::string>>(j, "columns", who + " answer");
    check(j.contains("rows") && j["rows"].is_array(), who + ": 'columns' needs 'rows', a list of lists");
    for (auto& row : j["rows"]) {
      check(row.is_array() && row.size() == r.table.columns.size(),
            who + ": every row should be a list of " + std::to_string(r.table.columns.size()) + " cells");
      std::vector<Value> out;
      for (auto& c : row) {
        if (c.is_null())
          out.push_back(Value::null());
        else if (c.is_number_integer())
          out.push_back(Value::integer(c.get<int64_t>()));
        else if (c.is_number())
          out.push_back(Value::real(c.get<double>()));
        else
          out.push_back(Value::text(c.is_string() ? c.get<std::string>() : c.dump()));
      }
      r.table.rows.push_back(std::move(out));
    }
  }
  check(!r.text.empty() || !r.table.columns.empty(), who + ": the answer has neither 'text' nor 'columns'");
  return r;
}

// ---- routing --------------------------------------------------------------------------------

bool asks_for_definition(const std::string& question) {
  const auto q = to_utf8(normalize(question));
  static const char* zh[] = {"什么意思", "是什么",   "啥意思", "含义", "定义", "口径", "怎么算",
                             "如何计算", "怎么计算", "规定",   "政策", "规则", "说明", "解释"};
  for (const char* w : zh)
    if (q.find(w) != std::string::npos) return true;
  static const char* en[] = {"what does",   "what is meant", "meaning of", "definition", "defined",
                             "policy",      "policies",      "how is",     "how are",    "explain",
                             "what counts", "rule for",      "rules for"};
  for (const char* w : en)
    if (q.find(w) != std::string::npos) return true;
  return false;
}

std::string route_with_model(ChatModel& chat, const std::string& question, const std::vector<FunctionPlugin>& fns,
                             bool have_docs) {
  std::string sys =
      "Choose how to answer the user's question. Answer with one JSON object {\"route\": NAME} and nothing else. "
      "Routes:\n- data: a number, list, ranking or trend computed from the database\n";
  if (have_docs) sys += "- docs: what a metric or word means, or what a policy or rule says, from the documentation\n";
  for (auto& f : fns) {
    sys += "- " + f.name + ": " + f.description;
    if (!f.examples.empty()) sys += " (e.g. " + f.examples[0] + ")";
    sys += "\n";
  }
  ChatRequest req;
  req.messages = {{"system", sys}, {"user", question}};
  req.max_tokens = 64;
  const auto replies = chat.complete(req);
  const Json j = replies.empty() ? Json(nullptr) : extract_json_object(replies[0]);
  if (!j.is_object() || !j.contains("route") || !j["route"].is_string()) return "data";
  const auto r = j["route"].get<std::string>();
  if (r == "docs" && have_docs) return r;
  for (auto& f : fns)
    if (f.name == r) return r;
  return "data";
}

}  // namespace yak::ask
