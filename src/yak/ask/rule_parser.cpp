#include "yak/ask/rule_parser.h"

#include <algorithm>

namespace yak::ask {

namespace {

void add_unique(std::vector<std::string>& v, const std::string& s) {
  if (std::find(v.begin(), v.end(), s) == v.end()) v.push_back(s);
}

std::string recognised(const Mapping& m) {
  std::string s;
  for (auto& e : m.elements) {
    if (e.kind == Element::Kind::Word) continue;
    s += (s.empty() ? "" : ", ") + std::string(element_kind_name(e.kind)) + " '" + e.text + "'";
    if (e.kind == Element::Kind::Value) s += " (" + e.dimension + ")";
  }
  return s.empty() ? "nothing" : s;
}

}  // namespace

std::string choose_time_dimension(const Dsl& d, const SemanticModel& m) {
  if (!d.metrics.empty()) {
    const auto tables = m.metric_tables(d.metrics[0]);
    if (tables.size() == 1 && !m.table(tables[0])->time_dimension.empty()) return m.table(tables[0])->time_dimension;
  }
  const std::string target = !d.count_distinct.empty() ? d.count_distinct[0] : !d.group_by.empty() ? d.group_by[0] : "";
  if (const auto* dim = target.empty() ? nullptr : m.dimension(target)) {
    const auto& t = m.table(dim->bindings[0].table)->time_dimension;
    if (!t.empty()) return t;
  }
  return m.default_time_dimension;
}

bool apply_default_time_range(Dsl& d, const SemanticModel& m, const Date& today) {
  if (m.default_time_range_days <= 0 || d.metrics.empty() || !d.start.empty() || !d.end.empty()) return false;
  const auto* td = d.time_dimension.empty() ? nullptr : m.dimension(d.time_dimension);
  const std::string dim = td && td->time ? d.time_dimension : choose_time_dimension(d, m);
  if (dim.empty()) return false;
  d.time_dimension = dim;
  d.start = add_days(today, 1 - m.default_time_range_days).str();
  d.end = today.str();
  return true;
}

RuleResult parse_rules(const Mapping& mp, const SemanticModel& m, const RuleOptions& opt) {
  RuleResult r;
  Dsl& d = r.dsl;
  auto fail = [&](const std::string& why) {
    r.understood = false;
    r.message = "not understood: " + why + "; recognised: " + recognised(mp);
    if (!mp.unknown.empty()) {
      r.message += "; unknown words:";
      for (auto& u : mp.unknown) r.message += " '" + u + "'";
    }
    return r;
  };

  // Collect what the mapper found.
  struct Dim {
    std::string name;
    size_t pos;
  };
  std::vector<Dim> dims;      // breakdowns the question asks for
  std::vector<Dim> entities;  // what a term or a narrowed dimension names ("华语歌曲" -> song)
  std::string time_dim;
  double min_score = 1.0;
  std::vector<std::pair<std::string, std::vector<std::string>>> value_filters;
  for (auto& e : mp.elements) {
    if (e.kind == Element::Kind::Metric || e.kind == Element::Kind::Dimension || e.kind == Element::Kind::Value ||
        e.kind == Element::Kind::Term)
      min_score = std::min(min_score, e.score);
    switch (e.kind) {
      case Element::Kind::Metric:
        add_unique(d.metrics, e.name);
        break;
      case Element::Kind::Dimension: {
        const auto* dim = m.dimension(e.name);
        if (dim->time) {
          if (time_dim.empty()) time_dim = e.name;
          break;
        }
        // "香港歌手", "rock artists": a value of the same table right before the dimension
        // narrows it down; the dimension names what is asked about, it is not a breakdown.
        const Element* prev = &e == &mp.elements.front() ? nullptr : &e - 1;
        const bool narrowed = prev && prev->kind == Element::Kind::Value &&
                              m.dimension(prev->dimension)->bindings[0].table == dim->bindings[0].table;
        auto& list = narrowed ? entities : dims;
        if (std::none_of(list.begin(), list.end(), [&](auto& x) { return x.name == e.name; }))
          list.push_back({e.name, e.begin});
        break;
      }
      case Element::Kind::Value: {
        auto it =
            std::find_if(value_filters.begin(), value_filters.end(), [&](auto& f) { return f.first == e.dimension; });
        if (it == value_filters.end()) value_filters.push_back({e.dimension, {}}), it = value_filters.end() - 1;
        add_unique(it->second, e.value);
        break;
      }
      case Element::Kind::Term: {
        const auto* t = m.term(e.name);
        for (auto& f : t->filters) d.filters.push_back({f.dimension, f.op, f.values});
        if (!t->metric.empty()) add_unique(d.metrics, t->metric);
        if (!t->dimension.empty() &&
            std::none_of(entities.begin(), entities.end(), [&](auto& x) { return x.name == t->dimension; }))
          entities.push_back({t->dimension, e.begin});
        break;
      }
      default:
        break;
    }
  }
  for (auto& [dim, values] : value_filters) d.filters.push_back({dim, values.size() > 1 ? "in" : "=", values});
  // A dimension named only to filter it ("QQ音乐平台") is not a grouping.
  const Element* date = mp.first(Element::Kind::Date);
  const Element* grain = mp.first(Element::Kind::Grain);
  const Element* number = mp.first(Element::Kind::Number);
  const Element* count = mp.first(Element::Kind::Agg, "count");
  const Element* maxw = mp.first(Element::Kind::Agg, "max");
  const Element* minw = mp.first(Element::Kind::Agg, "min");
  const bool trend = grain || mp.first(Element::Kind::Word, "trend");
  const bool detail = mp.first(Element::Kind::Word, "detail") != nullptr;
  const bool which = mp.first(Element::Kind::Word, "which") != nullptr;
  const bool rank = number || maxw || minw;

  for (auto& f : d.filters)
    if (m.dimension(f.dimension)->sensitive && !opt.allow_sensitive)
      return fail("dimension '" + f.dimension + "' is sensitive");
  for (const auto* list : {&dims, &entities})
    for (auto& x : *list)
      if (m.dimension(x.name)->sensitive && !opt.allow_sensitive)
        return fail("dimension '" + x.name + "' is sensitive");

  // Dimensions that only carry a filter value of their own are filters, not groupings.
  auto filtered = [&](const std::string& dim) {
    return std::any_of(d.filters.begin(), d.filters.end(), [&](auto& f) { return f.dimension == dim && f.op == "="; });
  };
  std::vector<Dim> groups;
  for (auto& x : dims)
    if (!filtered(x.name)) groups.push_back(x);
  // Counts, lists and rankings need a subject: the breakdowns, else the entities named.
  std::vector<Dim> subjects = groups;
  for (auto& x : entities)
    if (std::none_of(subjects.begin(), subjects.end(), [&](auto& y) { return y.name == x.name; }))
      subjects.push_back(x);
  std::sort(subjects.begin(), subjects.end(), [](auto& a, auto& b) { return a.pos < b.pos; });

  double fit = 1.0;
  if (d.metrics.empty()) {
    if (count && !subjects.empty()) {
      // The counted dimension is the first one after the count word, else the last before it.
      const Dim* target = nullptr;
      for (auto& x : subjects)
        if (x.pos > count->begin) {
          target = &x;
          break;
        }
      if (!target) target = &subjects.back();
      d.rule = "count_distinct";
      d.count_distinct = {target->name};
      for (auto& x : groups)
        if (x.name != target->name) d.group_by.push_back(x.name);
      if (!d.group_by.empty()) d.order.push_back({count_column(target->name), true});
    } else if ((detail || which) && !subjects.empty() && !rank) {
      d.rule = "detail";
      d.query_type = "detail";
      for (auto& x : groups.empty() ? subjects : groups) d.group_by.push_back(x.name);
    } else if ((rank || trend || !groups.empty()) && !m.default_metric.empty()) {
      d.metrics.push_back(m.default_metric);
      fit = 0.85;
    } else {
      return fail("no metric, count or list was asked for");
    }
  }
  if (!d.metrics.empty()) {
    if (trend) {
      d.rule = "trend";
      if (grain) {
        d.granularity = grain->name;
      } else {
        const int days = date ? date->range.end.days() - date->range.start.days() + 1 : 10000;
        d.granularity = days <= 62 ? "day" : m.default_granularity == "day" ? "month" : m.default_granularity;
      }
      for (auto& x : groups) d.group_by.push_back(x.name);
      d.order.push_back({d.granularity, false});
    } else if (rank && !subjects.empty()) {
      d.rule = "topn";
      for (auto& x : groups.empty() ? subjects : groups) d.group_by.push_back(x.name);
      d.order.push_back({d.metrics[0], !(minw && (!maxw || minw->begin > maxw->begin))});
      if (number) {
        d.limit = number->number;
      } else {
        const bool ranking = maxw && (maxw->text == "排名" || maxw->text == "排行" || maxw->text == "排行榜" ||
                                      maxw->text.rfind("rank", 0) == 0);
        d.limit = ranking ? 10 : 1;
      }
    } else if (!groups.empty()) {
      d.rule = "metric_by_dimension";
      for (auto& x : groups) d.group_by.push_back(x.name);
      d.order.push_back({d.metrics[0], true});
    } else {
      d.rule = !d.filters.empty() ? "metric_filter" : date ? "time_range" : "metric";
      if (rank) fit *= 0.9;  // "highest" with nothing to rank
    }
  }

  // The time range applies to the named time dimension, else the metric table's, else that of
  // the table of the listed or counted dimension, else the model's default.
  if (date || !d.granularity.empty()) {
    if (time_dim.empty()) time_dim = choose_time_dimension(d, m);
    if (time_dim.empty()) return fail("the question names a time but the model has no time dimension");
    d.time_dimension = time_dim;
    if (date) d.start = date->range.start.str(), d.end = date->range.end.str();
  }
  if (!date) apply_default_time_range(d, m, mp.today);
  d.confidence = mp.coverage * fit * min_score;
  if (d.confidence < opt.threshold)
    return fail("confidence " + std::to_string(d.confidence).substr(0, 4) + " is below " +
                std::to_string(opt.threshold).substr(0, 4));
  r.understood = true;
  return r;
}

}  // namespace yak::ask
