// The rule parser: turns a mapped question into the DSL without a model. Rules: a metric; metric
// by dimension; value filters; top-N / highest / lowest; trend by day/week/month; a time range;
// count distinct; detail lists. Each result carries a confidence; below the threshold the
// question is "not understood" and the answer says what was recognised.
#pragma once
#include <string>

#include "yak/ask/dsl.h"
#include "yak/ask/mapper.h"
#include "yak/ask/semantic.h"

namespace yak::ask {

struct RuleOptions {
  double threshold = 0.6;
  bool allow_sensitive = false;
};

struct RuleResult {
  bool understood = false;
  Dsl dsl;
  std::string message;  // why not understood
};

// The time dimension a range or grain applies to when the question names none: the metric's
// table's, else that of the table of the counted or listed dimension, else the model's default
// ("" when there is none).
std::string choose_time_dimension(const Dsl& d, const SemanticModel& m);

// With the model's default_time_range_days set, a query with metrics and no time range gets the
// last N days up to `today` on its time dimension; returns whether it did.
bool apply_default_time_range(Dsl& d, const SemanticModel& m, const Date& today);

RuleResult parse_rules(const Mapping& mapping, const SemanticModel& model, const RuleOptions& opt = {});

}  // namespace yak::ask
