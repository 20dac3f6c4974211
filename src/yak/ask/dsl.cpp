#include "yak/ask/dsl.h"

#include <set>

namespace yak::ask {

std::string count_column(const std::string& d) {
  return "count_" + d;
}

Json Dsl::to_json() const {
  Json f = Json::array();
  for (auto& x : filters) f.push_back({{"dimension", x.dimension}, {"op", x.op}, {"values", x.values}});
  Json o = Json::array();
  for (auto& x : order) o.push_back({{"field", x.field}, {"desc", x.desc}});
  Json j = {{"query_type", query_type}, {"metrics", metrics}, {"count_distinct", count_distinct},
            {"group_by", group_by},     {"filters", f},       {"order", o},
            {"limit", limit},           {"rule", rule},       {"confidence", confidence}};
  if (!time_dimension.empty()) j["time_dimension"] = time_dimension;
  if (!start.empty() || !end.empty()) j["time_range"] = {start, end};
  if (!granularity.empty()) j["granularity"] = granularity;
  return j;
}

Dsl Dsl::from_json(const Json& j, const std::string& where) {
  if (!j.is_object()) throw Error(where + ": the DSL should be a JSON object");
  Dsl d;
  d.query_type = json_get_or<std::string>(j, "query_type", "aggregate", where);
  if (d.query_type != "aggregate" && d.query_type != "detail")
    throw Error(where + ": field 'query_type' should be aggregate or detail");
  d.metrics = json_get_or<std::vector<std::string>>(j, "metrics", {}, where);
  d.count_distinct = json_get_or<std::vector<std::string>>(j, "count_distinct", {}, where);
  d.group_by = json_get_or<std::vector<std::string>>(j, "group_by", {}, where);
  d.time_dimension = json_get_or<std::string>(j, "time_dimension", "", where);
  d.granularity = json_get_or<std::string>(j, "granularity", "", where);
  static const std::set<std::string> grains = {"", "day", "week", "month", "quarter", "year"};
  if (!grains.count(d.granularity))
    throw Error(where + ": field 'granularity' should be day, week, month, quarter or year");
  d.limit = json_get_or<int64_t>(j, "limit", 0, where);
  if (d.limit < 0) throw Error(where + ": field 'limit' should not be negative");
  d.rule = json_get_or<std::string>(j, "rule", "", where);
  d.confidence = json_get_or<double>(j, "confidence", 0.0, where);
  if (auto it = j.find("time_range"); it != j.end() && !it->is_null()) {
    if (!it->is_array() || it->size() != 2 || !(*it)[0].is_string() || !(*it)[1].is_string())
      throw Error(where + ": field 'time_range' should be [start, end] dates");
    d.start = (*it)[0].get<std::string>();
    d.end = (*it)[1].get<std::string>();
  }
  if (auto it = j.find("filters"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) throw Error(where + ": field 'filters' should be a list");
    for (auto& f : *it) {
      DslFilter x;
      x.dimension = json_get<std::string>(f, "dimension", where + " filters");
      x.op = json_get_or<std::string>(f, "op", "=", where + " filters");
      static const std::set<std::string> ops = {"=", "!=", "<", "<=", ">", ">=", "in", "not in"};
      if (!ops.count(x.op)) throw Error(where + ": filter op should be one of = != < <= > >= in, not '" + x.op + "'");
      x.values = json_get<std::vector<std::string>>(f, "values", where + " filters");
      if (x.values.empty()) throw Error(where + ": a filter needs at least one value");
      d.filters.push_back(std::move(x));
    }
  }
  if (auto it = j.find("order"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) throw Error(where + ": field 'order' should be a list");
    for (auto& o : *it)
      d.order.push_back(
          {json_get<std::string>(o, "field", where + " order"), json_get_or<bool>(o, "desc", true, where)});
  }
  return d;
}

}  // namespace yak::ask
