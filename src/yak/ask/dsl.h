// The query DSL between parsers and the translator: business names only (metrics, dimensions,
// values, dates), serialisable as JSON so a model can write it and a person can read it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "yak/base/json.h"

namespace yak::ask {

struct DslFilter {
  std::string dimension;
  std::string op = "=";  // = != < <= > >= in
  std::vector<std::string> values;
};

struct DslOrder {
  std::string field;  // an output column: metric, dimension, count_<dimension> or the time grain
  bool desc = true;
};

struct Dsl {
  std::string query_type = "aggregate";     // aggregate | detail
  std::vector<std::string> metrics;         // metric names
  std::vector<std::string> count_distinct;  // dimensions whose distinct members are counted
  std::vector<std::string> group_by;        // dimensions (detail: the columns listed)
  std::vector<DslFilter> filters;
  std::string time_dimension;  // the time dimension the range and the grain apply to
  std::string start, end;      // inclusive YYYY-MM-DD; empty: unbounded
  std::string granularity;     // "", day, week, month, quarter, year: group by time buckets
  std::vector<DslOrder> order;
  int64_t limit = 0;  // 0: the executor's limit
  std::string rule;   // which rule produced it
  double confidence = 0;

  Json to_json() const;
  static Dsl from_json(const Json& j, const std::string& where);
};

std::string count_column(const std::string& dimension);  // count_<dimension>

}  // namespace yak::ask
