#include "yak/ask/translator.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>

#include "yak/ask/dates.h"
#include "yak/ask/sql_lexer.h"
#include "yak/base/error.h"

namespace yak::ask {

std::string SqliteDialect::time_bucket(const std::string& e, const std::string& grain) const {
  if (grain == "day") return e;
  if (grain == "week") return "date(" + e + ", '-6 days', 'weekday 1')";
  if (grain == "month") return "strftime('%Y-%m', " + e + ")";
  if (grain == "quarter")
    return "strftime('%Y', " + e + ") || '-Q' || ((CAST(strftime('%m', " + e + ") AS INTEGER) + 2) / 3)";
  if (grain == "year") return "strftime('%Y', " + e + ")";
  throw Error("unknown time granularity '" + grain + "' (day, week, month, quarter, year)");
}

std::string ClickHouseDialect::time_bucket(const std::string& e, const std::string& grain) const {
  if (grain == "day") return "toString(" + e + ")";
  if (grain == "week") return "toString(toMonday(" + e + "))";
  if (grain == "month") return "formatDateTime(" + e + ", '%Y-%m')";
  if (grain == "quarter") return "concat(toString(toYear(" + e + ")), '-Q', toString(toQuarter(" + e + ")))";
  if (grain == "year") return "toString(toYear(" + e + "))";
  throw Error("unknown time granularity '" + grain + "' (day, week, month, quarter, year)");
}

std::string MysqlDialect::time_bucket(const std::string& e, const std::string& grain) const {
  if (grain == "day") return "DATE_FORMAT(" + e + ", '%Y-%m-%d')";
  if (grain == "week") return "DATE_FORMAT(SUBDATE(" + e + ", WEEKDAY(" + e + ")), '%Y-%m-%d')";
  if (grain == "month") return "DATE_FORMAT(" + e + ", '%Y-%m')";
  if (grain == "quarter") return "CONCAT(YEAR(" + e + "), '-Q', QUARTER(" + e + "))";
  if (grain == "year") return "DATE_FORMAT(" + e + ", '%Y')";
  throw Error("unknown time granularity '" + grain + "' (day, week, month, quarter, year)");
}

std::unique_ptr<SqlDialect> dialect_for(const std::string& name) {
  if (name == "sqlite") return std::make_unique<SqliteDialect>();
  if (name == "clickhouse") return std::make_unique<ClickHouseDialect>();
  if (name == "mysql") return std::make_unique<MysqlDialect>();
  throw Error("SQL dialect '" + name + "' is not supported (sqlite, clickhouse, mysql)");
}

namespace {

// Positions of the bare column identifiers of an expression (same rule as expr_columns).
template <typename F>
std::string rewrite_columns(const std::string& expr, F&& f) {
  const auto toks = tokenize_sql(expr, "expression '" + expr + "'");
  std::string out;
  size_t copied = 0;
  for (size_t i = 0; i + 1 < toks.size(); ++i) {
    const auto& t = toks[i];
    if (t.kind != Token::Kind::Ident) continue;
    if (!t.quoted && reserved_word(t.text)) continue;
    const auto& next = toks[i + 1];
    if (next.kind == Token::Kind::Op && (next.text == "(" || next.text == ".")) continue;
    if (i > 0 && toks[i - 1].kind == Token::Kind::Op && toks[i - 1].text == ".") continue;
    if (i > 0 && is_keyword(toks[i - 1], "AS")) continue;
    // The token's end: where the next token starts, minus whitespace.
    size_t end = next.pos;
    while (end > t.pos && std::isspace(static_cast<unsigned char>(expr[end - 1]))) --end;
    out += expr.substr(copied, t.pos - copied);
    out += f(t.text, expr.substr(t.pos, end - t.pos));
    copied = end;
  }
  out += expr.substr(copied);
  return out;
}

struct JoinPlan {
  std::map<std::string, std::string> parent;                      // table -> table it was reached from
  std::map<std::string, std::pair<std::string, std::string>> on;  // table -> (parent column, own column)
  std::map<std::string, int> hops;
};

JoinPlan reach(const SemanticModel& m, const std::string& root, const std::vector<Identifier>& root_ids,
               const std::string& skip = {}) {
  JoinPlan p;
  p.hops[root] = 0;
  std::deque<std::string> todo = {root};
  while (!todo.empty()) {
    const auto cur = todo.front();
    todo.pop_front();
    const auto& ids = cur == root ? root_ids : m.table(cur)->identifiers;
    for (auto& id : ids) {
      if (id.primary) continue;  // many-to-one only: never fan out
      for (auto& other : m.tables) {
        if (p.hops.count(other.name) || other.name == skip) continue;
        for (auto& oid : other.identifiers)
          if (oid.primary && oid.name == id.name) {
            p.hops[other.name] = p.hops[cur] + 1;
            p.parent[other.name] = cur;
            p.on[other.name] = {id.expr, oid.expr};
            todo.push_back(other.name);
            break;
          }
      }
    }
  }
  return p;
}

int grain_rank(const std::string& g) {
  if (g == "day") return 0;
  if (g == "week") return 1;
  if (g == "month") return 2;
  if (g == "quarter") return 3;
  if (g == "year") return 4;
  return -1;
}

// True when `day` starts (or, with `end`, ends) a period of the grain.
bool on_boundary(const std::string& day, const std::string& grain, bool end) {
  auto d = Date::parse(day);
  if (!d) return false;
  if (grain == "day") return true;
  if (end) d = add_days(*d, 1);  // an end day is the day before a period start
  if (d->d != 1) return false;
  if (grain == "month") return true;
  if (grain == "quarter") return d->m % 3 == 1;
  if (grain == "year") return d->m == 1;
  return false;
}

// A metric expression a rollup can answer: aggregates that re-aggregate (SUM, MIN, MAX) and
// plain scalar functions over columns the rollup keeps.
bool reaggregates(const std::string& expr, const Rollup& r) {
  static const std::set<std::string> ok = {"SUM", "MIN", "MAX", "ROUND", "ABS", "COALESCE", "IFNULL", "NULLIF"};
  const auto toks = tokenize_sql(expr, "expression '" + expr + "'");
  for (size_t i = 0; i + 1 < toks.size(); ++i) {
    if (toks[i].kind != Token::Kind::Ident || toks[i].quoted) continue;
    if (toks[i + 1].kind == Token::Kind::Op && toks[i + 1].text == "(") {
      std::string f = toks[i].text;
      for (auto& c : f) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      if (!ok.count(f)) return false;
    }
  }
  for (auto& c : expr_columns(expr))
    if (std::find(r.columns.begin(), r.columns.end(), c) == r.columns.end()) return false;
  return true;
}

// The query on one fact source: the root table, or a rollup of it (then nullopt when the rollup
// cannot answer). `dims` are the dimensions that need a binding.
std::optional<Translation> build(const Dsl& dsl, const SemanticModel& m, const SqlDialect& dialect,
                                 const std::string& root, const Rollup* r, const std::vector<std::string>& dims,
                                 const std::string& where) {
  const std::string from = r ? r->name : root;
  const bool detail = dsl.query_type == "detail";
  const bool timed = !dsl.start.empty() || !dsl.end.empty() || !dsl.granularity.empty();
  if (r) {
    if (detail) return std::nullopt;
    if (!dsl.start.empty() && !on_boundary(dsl.start, r->grain, false)) return std::nullopt;
    if (!dsl.end.empty() && !on_boundary(dsl.end, r->grain, true)) return std::nullopt;
    if (!dsl.granularity.empty()) {
      const int q = grain_rank(dsl.granularity), g = grain_rank(r->grain);
      if (q < g || (dsl.granularity == "week" && r->grain != "day")) return std::nullopt;
    }
  }
  const JoinPlan plan = reach(m, from, r ? r->identifiers : m.table(root)->identifiers, r ? r->base : "");
  // The time dimension may read the rollup's time column when only the range and the buckets use it.
  auto only_timed = [&](const std::string& d) {
    if (!timed || d != dsl.time_dimension) return false;
    auto named = [&](const std::vector<std::string>& v) { return std::find(v.begin(), v.end(), d) != v.end(); };
    if (named(dsl.group_by) || named(dsl.count_distinct)) return false;
    return std::none_of(dsl.filters.begin(), dsl.filters.end(), [&](auto& f) { return f.dimension == d; });
  };
  auto kept = [&](const std::string& expr) {
    for (auto& c : expr_columns(expr))
      if (std::find(r->columns.begin(), r->columns.end(), c) == r->columns.end()) return false;
    return true;
  };

  // Each dimension's expression, from its nearest binding.
  std::set<std::string> used = {from};
  std::map<std::string, std::string> dim_sql;
  std::map<std::string, std::pair<const Binding*, std::string>> chosen;  // dimension -> binding, table
  for (auto& d : dims) {
    const Binding* best = nullptr;
    int best_hops = -1;
    std::string best_table;
    for (auto& b : m.dimension(d)->bindings) {
      std::string table = b.table;
      if (r && b.table == r->base) {
        const auto cols = expr_columns(b.expr);
        const bool time_col = cols.size() == 1 && cols[0] == r->time_column;
        if (!(time_col ? only_timed(d) : kept(b.expr))) continue;
        table = r->name;
      } else if (!plan.hops.count(b.table)) {
        continue;
      }
      const int h = plan.hops.at(table);
      if (!best || h < best_hops) best = &b, best_hops = h, best_table = table;
    }
    if (!best) {
      if (r) return std::nullopt;
      throw Error(where + ": dimension '" + d + "' cannot be combined with the other elements");
    }
    chosen[d] = {best, best_table};
    for (std::string t = best_table; t != from; t = plan.parent.at(t)) used.insert(t);
  }
  // Dialects that join only two tables at a time (ClickHouse 18) read each table through a
  // subquery that renames its columns table__column, and nest the joins.
  const bool nested = dialect.nested_joins() && used.size() > 1;
  std::map<std::string, std::set<std::string>> needed;  // table -> columns read, when nested
  auto qualify = [&](const std::string& expr, const std::string& table) {
    if (!nested) return qualify_expr(expr, table);
    return rewrite_columns(expr, [&](const std::string& name, const std::string&) {
      needed[table].insert(name);
      return table + "__" + name;
    });
  };
  for (auto& [d, b] : chosen) dim_sql[d] = qualify(b.first->expr, b.second);
  bool fits = true;
  std::function<std::string(const std::string&)> metric_sql = [&](const std::string& name) -> std::string {
    const auto* x = m.metric(name);
    if (!x->derived()) {
      if (!r) return qualify(x->binding.expr, x->binding.table);
      if (x->binding.table != r->base || !reaggregates(x->binding.expr, *r)) fits = false;
      return qualify(x->binding.expr, r->name);
    }
    return rewrite_columns(x->formula, [&](const std::string& ref, const std::string&) {
      std::string e = "(";
      e += metric_sql(ref);
      return e + ")";
    });
  };

  Translation tr;
  tr.root_table = root;
  if (r) tr.rollup = r->name;
  std::vector<std::string> select, group;
  if (!dsl.granularity.empty()) {
    const auto b = dialect.time_bucket(dim_sql[dsl.time_dimension], dsl.granularity);
    select.push_back(b + " AS " + dsl.granularity);
    group.push_back(b);
    tr.columns.push_back(dsl.granularity);
  }
  for (auto& d : dsl.group_by) {
    select.push_back(dim_sql[d] + " AS " + d);
    group.push_back(dim_sql[d]);
    tr.columns.push_back(d);
  }
  if (!detail) {
    for (auto& x : dsl.metrics) {
      select.push_back(metric_sql(x) + " AS " + x);
      tr.columns.push_back(x);
    }
    for (auto& d : dsl.count_distinct) {
      select.push_back("COUNT(DISTINCT " + dim_sql[d] + ") AS " + count_column(d));
      tr.columns.push_back(count_column(d));
    }
  }
  if (!fits) return std::nullopt;
  check(!select.empty(), where + ": nothing to select");

  std::string sql = std::string(detail ? "SELECT DISTINCT " : "SELECT ");
  for (size_t i = 0; i < select.size(); ++i) sql += (i ? ", " : "") + select[i];
  // Joins in breadth-first order so each joins a table already present.
  std::vector<std::string> order(used.begin(), used.end());
  std::sort(order.begin(), order.end(), [&](auto& a, auto& b) {
    return plan.hops.at(a) != plan.hops.at(b) ? plan.hops.at(a) < plan.hops.at(b) : a < b;
  });
  std::vector<std::pair<std::string, std::string>> joins;  // table, ON condition
  for (auto& t : order) {
    if (t == from) continue;
    const auto& [pcol, col] = plan.on.at(t);
    joins.push_back({t, qualify(pcol, plan.parent.at(t)) + " = " + qualify(col, t)});
  }
  if (!nested) {
    sql += " FROM " + from;
    for (auto& [t, on] : joins) sql += " JOIN " + t + " ON " + on;
  } else {
    auto read = [&](const std::string& t) {
      std::string s = "(SELECT ";
      bool first = true;
      for (auto& c : needed[t]) s += (first ? "" : ", ") + c + " AS " + t + "__" + c, first = false;
      return s + " FROM " + t + ")";
    };
    std::string acc = read(from);
    for (auto& [t, on] : joins) acc = "(SELECT * FROM " + acc + " JOIN " + read(t) + " ON " + on + ")";
    sql += " FROM " + acc;
  }
  std::vector<std::string> conds;
  for (auto& f : dsl.filters) {
    const auto& e = dim_sql[f.dimension];
    if (f.op == "in" || f.op == "not in" || f.values.size() > 1) {
      std::string c = e + (f.op == "not in" || f.op == "!=" ? " NOT IN (" : " IN (");
      for (size_t i = 0; i < f.values.size(); ++i) {
        c += (i ? ", " : "") + dialect.placeholder();
        tr.params.push_back(Value::text(f.values[i]));
      }
      conds.push_back(c + ")");
    } else {
      conds.push_back(e + " " + f.op + " " + dialect.placeholder());
      tr.params.push_back(Value::text(f.values[0]));
    }
  }
  if (timed) {
    const auto& e = dim_sql[dsl.time_dimension];
    if (!dsl.start.empty())
      conds.push_back(e + " >= " + dialect.placeholder()), tr.params.push_back(Value::text(dsl.start));
    if (!dsl.end.empty())
      conds.push_back(e + " <= " + dialect.placeholder()), tr.params.push_back(Value::text(dsl.end));
  }
  for (size_t i = 0; i < conds.size(); ++i) sql += (i ? " AND " : " WHERE ") + conds[i];
  if (!detail && !group.empty()) {
    sql += " GROUP BY ";
    for (size_t i = 0; i < group.size(); ++i) sql += (i ? ", " : "") + group[i];
  }
  std::vector<std::string> ord;
  for (auto& o : dsl.order) {
    check(std::find(tr.columns.begin(), tr.columns.end(), o.field) != tr.columns.end(),
          where + ": field 'order': '" + o.field + "' is not an output column");
    ord.push_back(o.field + (o.desc ? " DESC" : " ASC"));
  }
  // Ties break on the remaining output columns, so the same question gives the same rows.
  for (auto& c : tr.columns)
    if (std::none_of(dsl.order.begin(), dsl.order.end(), [&](auto& o) { return o.field == c; }))
      ord.push_back(c + " ASC");
  if (!ord.empty()) {
    sql += " ORDER BY ";
    for (size_t i = 0; i < ord.size(); ++i) sql += (i ? ", " : "") + ord[i];
  }
  if (dsl.limit > 0) sql += " LIMIT " + std::to_string(dsl.limit);
  tr.sql = sql;
  return tr;
}

}  // namespace

std::string qualify_expr(const std::string& expr, const std::string& table) {
  return rewrite_columns(expr, [&](const std::string&, const std::string& raw) { return table + "." + raw; });
}

Translation translate(const Dsl& dsl, const SemanticModel& m, const SqlDialect& dialect, const TranslateOptions& opt) {
  const std::string where = m.source + ": DSL";
  // Every logical name the query touches.
  for (auto& x : dsl.metrics) check(m.metric(x) != nullptr, where + ": unknown metric '" + x + "'");
  std::vector<std::string> dims;  // dimensions that need a binding
  auto need = [&](const std::string& d, const char* field) {
    check(m.dimension(d) != nullptr, where + ": field '" + field + "': unknown dimension '" + d + "'");
    if (std::find(dims.begin(), dims.end(), d) == dims.end()) dims.push_back(d);
  };
  for (auto& d : dsl.group_by) need(d, "group_by");
  for (auto& d : dsl.count_distinct) need(d, "count_distinct");
  for (auto& f : dsl.filters) need(f.dimension, "filters");
  const bool timed = !dsl.start.empty() || !dsl.end.empty() || !dsl.granularity.empty();
  if (timed) {
    check(!dsl.time_dimension.empty(), where + ": a time range or granularity needs 'time_dimension'");
    need(dsl.time_dimension, "time_dimension");
    check(m.dimension(dsl.time_dimension)->time, where + ": '" + dsl.time_dimension + "' is not a time dimension");
  }
  for (auto* s : {&dsl.start, &dsl.end})
    check(s->empty() || s->size() == 10, where + ": dates should be YYYY-MM-DD, not '" + *s + "'");
  check(dsl.query_type == "detail" || !dsl.metrics.empty() || !dsl.count_distinct.empty(),
        where + ": an aggregate query needs a metric or a count");

  // The root table: the metrics' table, else the table that reaches every dimension in the
  // fewest joins.
  std::set<std::string> metric_tables;
  for (auto& x : dsl.metrics)
    for (auto& t : m.metric_tables(x)) metric_tables.insert(t);
  if (metric_tables.size() > 1) {
    std::string names;
    for (auto& t : metric_tables) names += (names.empty() ? "" : ", ") + t;
    throw Error(where + ": these metrics come from tables that do not join (" + names + ")");
  }
  auto cost_from = [&](const std::string& root, JoinPlan& plan) -> int {
    plan = reach(m, root, m.table(root)->identifiers);
    int cost = 0;
    for (auto& d : dims) {
      int best = -1;
      for (auto& b : m.dimension(d)->bindings)
        if (plan.hops.count(b.table) && (best < 0 || plan.hops[b.table] < best)) best = plan.hops[b.table];
      if (best < 0) return -1;
      cost += best;
    }
    return cost;
  };
  std::string root;
  JoinPlan plan;
  if (!metric_tables.empty()) {
    root = *metric_tables.begin();
    if (cost_from(root, plan) < 0) {
      for (auto& d : dims) {
        bool ok = false;
        for (auto& b : m.dimension(d)->bindings) ok = ok || plan.hops.count(b.table);
        check(ok, where + ": dimension '" + d + "' cannot be combined with metric '" + dsl.metrics[0] + "'");
      }
    }
  } else {
    int best = -1;
    for (auto& t : m.tables) {
      JoinPlan p;
      const int c = cost_from(t.name, p);
      if (c >= 0 && (best < 0 || c < best)) best = c, root = t.name, plan = p;
    }
    check(best >= 0, where + ": no table joins all of these dimensions");
  }
  if (opt.use_rollups)
    for (auto& r : m.rollups)
      if (r.base == root)
        if (auto t = build(dsl, m, dialect, root, &r, dims, where)) return *t;
  return *build(dsl, m, dialect, root, nullptr, dims, where);
}

}  // namespace yak::ask
