#include "yak/ask/knowledge.h"

#include <algorithm>
#include <set>

#include "yak/base/error.h"
#include "yak/base/utf8.h"

namespace yak::ask {

std::u32string normalize(std::string_view text) {
  std::u32string out;
  size_t i = 0;
  bool space = false;
  while (i < text.size()) {
    uint32_t c = utf8::next(text, i);
    if (c >= 0xFF01 && c <= 0xFF5E) c -= 0xFEE0;  // full-width ASCII
    if (c == 0x3000 || c == '\t' || c == '\n' || c == '\r') c = ' ';
    if (c < 0x80) c = static_cast<uint32_t>(std::tolower(static_cast<int>(c)));
    if (c == ' ') {
      space = !out.empty();
      continue;
    }
    if (space) out += U' ';
    space = false;
    out += static_cast<char32_t>(c);
  }
  return out;
}

std::string to_utf8(const std::u32string& s) {
  std::string out;
  for (char32_t c : s) utf8::append(out, static_cast<uint32_t>(c));
  return out;
}

size_t edit_distance(const std::u32string& a, const std::u32string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

const char* kind_name(Entry::Kind k) {
  switch (k) {
    case Entry::Kind::Metric:
      return "metric";
    case Entry::Kind::Dimension:
      return "dimension";
    case Entry::Kind::Value:
      return "value";
    case Entry::Kind::Term:
      return "term";
  }
  return "";
}

namespace {
uint64_t bigram(char32_t a, char32_t b) {
  return (static_cast<uint64_t>(a) << 32) | static_cast<uint64_t>(b);
}
}  // namespace

void KnowledgeBase::add(Entry e) {
  e.key = normalize(e.text);
  if (e.key.empty()) return;
  // One entry per (key, kind, name, value).
  if (auto it = exact_.find(e.key); it != exact_.end())
    for (auto i : it->second) {
      const auto& o = entries_[i];
      if (o.kind == e.kind && o.name == e.name && o.value == e.value) return;
    }
  const auto idx = static_cast<uint32_t>(entries_.size());
  exact_[e.key].push_back(idx);
  std::set<uint64_t> seen;
  for (size_t i = 0; i + 1 < e.key.size(); ++i)
    if (seen.insert(bigram(e.key[i], e.key[i + 1])).second) bigrams_[bigram(e.key[i], e.key[i + 1])].push_back(idx);
  max_len_ = std::max(max_len_, e.key.size());
  entries_.push_back(std::move(e));
}

const std::vector<uint32_t>* KnowledgeBase::exact(const std::u32string& key) const {
  auto it = exact_.find(key);
  return it == exact_.end() ? nullptr : &it->second;
}

std::vector<KnowledgeBase::Hit> KnowledgeBase::search(std::string_view phrase, size_t limit) const {
  return search_key(normalize(phrase), limit);
}

std::vector<KnowledgeBase::Hit> KnowledgeBase::search_key(const std::u32string& key, size_t limit,
                                                          bool values_only) const {
  std::vector<Hit> hits;
  if (key.empty()) return hits;
  std::set<uint32_t> taken;
  if (auto* ex = exact(key))
    for (auto i : *ex)
      if (!values_only || entries_[i].kind == Entry::Kind::Value)
        hits.push_back({&entries_[i], 1.0, "exact"}), taken.insert(i);
  if (key.size() >= 2) {
    // Candidates share a character bigram with the key; count how many.
    std::unordered_map<uint32_t, int> shared;
    std::set<uint64_t> grams;
    for (size_t i = 0; i + 1 < key.size(); ++i) grams.insert(bigram(key[i], key[i + 1]));
    for (auto g : grams)
      if (auto it = bigrams_.find(g); it != bigrams_.end())
        for (auto i : it->second) ++shared[i];
    for (auto [i, n] : shared) {
      if (taken.count(i)) continue;
      const auto& e = entries_[i];
      if (values_only && e.kind != Entry::Kind::Value) continue;
      const double ratio = static_cast<double>(key.size()) / static_cast<double>(e.key.size());
      if (e.key.size() > key.size() && e.key.compare(0, key.size(), key) == 0 && ratio >= 0.5) {
        hits.push_back({&e, 0.55 + 0.35 * ratio, "prefix"});
      } else if (e.key.size() > key.size() && e.key.compare(e.key.size() - key.size(), key.size(), key) == 0 &&
                 ratio >= 0.5) {
        hits.push_back({&e, 0.5 + 0.35 * ratio, "suffix"});
      } else if (key.size() >= 3) {
        const size_t longer = std::max(key.size(), e.key.size());
        if (longer - std::min(key.size(), e.key.size()) > 1) continue;
        const size_t d = edit_distance(key, e.key);
        const double sim = 1.0 - static_cast<double>(d) / static_cast<double>(longer);
        if (d <= 1 || sim >= 0.75) hits.push_back({&e, 0.85 * sim, "fuzzy"});
      }
    }
  }
  std::stable_sort(hits.begin(), hits.end(), [](const Hit& a, const Hit& b) { return a.score > b.score; });
  if (hits.size() > limit) hits.resize(limit);
  return hits;
}

KnowledgeBase KnowledgeBase::build(const SemanticModel& m, Database* db, int64_t max_values) {
  KnowledgeBase kb;
  auto names = [&](Entry::Kind k, const std::string& name, const std::string& zh, const std::string& en,
                   const std::vector<std::string>& aliases) {
    for (const auto* w : {&name, &zh, &en}) kb.add({k, {}, *w, name, {}});
    for (auto& a : aliases) kb.add({k, {}, a, name, {}});
  };
  for (auto& x : m.metrics) names(Entry::Kind::Metric, x.name, x.zh, x.en, x.aliases);
  for (auto& d : m.dimensions) {
    names(Entry::Kind::Dimension, d.name, d.zh, d.en, d.aliases);
    for (auto& [value, aliases] : d.value_aliases) {
      kb.add({Entry::Kind::Value, {}, value, d.name, value});
      for (auto& a : aliases) kb.add({Entry::Kind::Value, {}, a, d.name, value});
    }
  }
  for (auto& t : m.terms) names(Entry::Kind::Term, t.name, {}, {}, t.aliases);
  if (!db) return kb;
  for (auto& d : m.dimensions) {
    if (d.time || !d.load_values) continue;
    const auto& b = d.bindings.front();
    std::string sql = "SELECT DISTINCT " + b.expr;
    if (!d.value_alias_expr.empty()) sql += ", " + d.value_alias_expr;
    sql += " FROM " + b.table + " WHERE " + b.expr + " IS NOT NULL LIMIT " + std::to_string(max_values);
    QueryOptions o;
    o.max_rows = max_values;
    o.timeout_ms = 10000;
    auto r = db->query(sql, {}, o);
    for (auto& row : r.rows) {
      const std::string v = row[0].to_string();
      const auto key = normalize(v);
      // Short ASCII codes ("zh") would match inside ordinary words: only their aliases count.
      const bool ascii = std::all_of(key.begin(), key.end(), [](char32_t c) { return c < 0x80; });
      if (key.size() < 2 || (ascii && key.size() < 3) || row[0].is_number()) continue;
      kb.add({Entry::Kind::Value, {}, v, d.name, v});
      if (row.size() > 1 && row[1].type == Value::Type::Text) kb.add({Entry::Kind::Value, {}, row[1].s, d.name, v});
    }
  }
  return kb;
}

}  // namespace yak::ask
