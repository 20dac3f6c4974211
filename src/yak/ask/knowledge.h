// The knowledge base: every metric, dimension and term name and alias, plus dimension values read
// from the database, indexed for exact, prefix/suffix and fuzzy (character bigram + edit
// distance) lookup on normalised UTF-8 text (lower-case ASCII, half-width forms).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "yak/ask/database.h"
#include "yak/ask/semantic.h"

namespace yak::ask {

// Lower-case ASCII, full-width ASCII to half-width, whitespace runs to one space, trimmed.
std::u32string normalize(std::string_view text);
std::string to_utf8(const std::u32string& s);
size_t edit_distance(const std::u32string& a, const std::u32string& b);

struct Entry {
  enum class Kind { Metric, Dimension, Value, Term };
  Kind kind;
  std::u32string key;  // normalised
  std::string text;    // as written
  std::string name;    // metric, dimension or term name; for values the dimension
  std::string value;   // values: the stored value this word names
};
const char* kind_name(Entry::Kind k);

class KnowledgeBase {
 public:
  struct Hit {
    const Entry* entry;
    double score;     // 1 exact, less for prefix/suffix/fuzzy
    const char* how;  // "exact", "prefix", "suffix", "fuzzy"
  };

  // Names and aliases from the model; values from the database when db is given (DISTINCT over
  // each categorical dimension with load_values, at most max_values each).
  static KnowledgeBase build(const SemanticModel& model, Database* db, int64_t max_values = 50000);

  void add(Entry e);
  // Entries whose key equals the normalised text.
  const std::vector<uint32_t>* exact(const std::u32string& key) const;
  // Best entries for a phrase: exact, then prefix/suffix, then fuzzy; at most `limit`.
  std::vector<Hit> search(std::string_view phrase, size_t limit = 10) const;
  std::vector<Hit> search_key(const std::u32string& key, size_t limit, bool values_only = false) const;

  const Entry& entry(uint32_t i) const { return entries_[i]; }
  size_t size() const { return entries_.size(); }
  size_t max_key_length() const { return max_len_; }

 private:
  std::vector<Entry> entries_;
  std::unordered_map<std::u32string, std::vector<uint32_t>> exact_;
  std::unordered_map<uint64_t, std::vector<uint32_t>> bigrams_;
  size_t max_len_ = 0;
};

}  // namespace yak::ask
