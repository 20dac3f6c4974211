// The schema mapper: finds in a question the metrics, dimensions, values and terms of the
// knowledge base, dates (absolute, and relative to `today`), numbers (top 10, 前十), aggregation
// and ordering words, time grains and question words; overlapping matches keep the longest, then
// the best scoring.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "yak/ask/dates.h"
#include "yak/ask/knowledge.h"
#include "yak/base/json.h"

namespace yak::ask {

struct Element {
  enum class Kind { Metric, Dimension, Value, Term, Date, Number, Agg, Grain, Word };
  Kind kind;
  std::string name;           // metric/dimension/term name; agg: max|min|avg|sum|count; grain: day..year;
                              // word: each|detail|which|trend|rank
  std::string dimension;      // values
  std::string value;          // values: the stored value
  std::string text;           // the words in the question
  size_t begin = 0, end = 0;  // code points in the normalised question
  double score = 1;
  std::string how = "exact";
  DateRange range;  // dates
  int number = 0;   // numbers
};
const char* element_kind_name(Element::Kind k);

struct Mapping {
  std::string question;
  Date today;                        // relative dates counted from here
  std::vector<Element> elements;     // in question order
  double coverage = 0;               // share of content characters explained by elements
  std::vector<std::string> unknown;  // runs of content characters nothing explained

  std::vector<const Element*> of(Element::Kind k) const;
  const Element* first(Element::Kind k, const std::string& name = "") const;
  Json to_json() const;
};

Mapping map_question(const std::string& question, const KnowledgeBase& kb, const Date& today);

}  // namespace yak::ask
