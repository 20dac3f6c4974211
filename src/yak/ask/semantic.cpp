#include "yak/ask/semantic.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "yak/ask/sql_lexer.h"
#include "yak/base/error.h"

namespace yak::ask {

namespace {

std::string lower_ascii(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string at(const YAML::Node& n, const std::string& where) {
  const auto m = n.Mark();
  if (m.is_null()) return where;
  return where + ":" + std::to_string(m.line + 1);
}

std::string str(const YAML::Node& n, const std::string& key, const std::string& where, bool required) {
  const auto v = n[key];
  if (!v || v.IsNull()) {
    if (required) throw Error(at(n, where) + ": missing field '" + key + "'");
    return {};
  }
  if (!v.IsScalar()) throw Error(at(v, where) + ": field '" + key + "' should be a text value");
  return v.Scalar();
}

bool boolean(const YAML::Node& n, const std::string& key, bool fallback, const std::string& where) {
  const auto v = n[key];
  if (!v || v.IsNull()) return fallback;
  try {
    return v.as<bool>();
  } catch (const YAML::Exception&) {
    throw Error(at(v, where) + ": field '" + key + "' should be true or false");
  }
}

std::vector<std::string> strings(const YAML::Node& n, const std::string& key, const std::string& where) {
  std::vector<std::string> out;
  const auto v = n[key];
  if (!v || v.IsNull()) return out;
  if (v.IsScalar()) return {v.Scalar()};
  if (!v.IsSequence()) throw Error(at(v, where) + ": field '" + key + "' should be a list of text values");
  for (const auto& e : v) {
    if (!e.IsScalar()) throw Error(at(e, where) + ": field '" + key + "' should be a list of text values");
    out.push_back(e.Scalar());
  }
  return out;
}

YAML::Node list(const YAML::Node& n, const std::string& key, const std::string& where) {
  const auto v = n[key];
  if (!v || v.IsNull()) return YAML::Node(YAML::NodeType::Sequence);
  if (!v.IsSequence()) throw Error(at(v, where) + ": field '" + key + "' should be a list");
  return v;
}

// Scalars become numbers or booleans when they read as one (plain, unquoted), else text.
Json yaml_to_json(const YAML::Node& n) {
  if (!n || n.IsNull()) return nullptr;
  if (n.IsSequence()) {
    Json a = Json::array();
    for (const auto& e : n) a.push_back(yaml_to_json(e));
    return a;
  }
  if (n.IsMap()) {
    Json o = Json::object();
    for (const auto& kv : n) o[kv.first.Scalar()] = yaml_to_json(kv.second);
    return o;
  }
  const auto& s = n.Scalar();
  if (n.Tag() != "!") {
    int64_t i;
    double d;
    bool b;
    if (YAML::convert<int64_t>::decode(n, i)) return i;
    if (YAML::convert<double>::decode(n, d)) return d;
    if (YAML::convert<bool>::decode(n, b)) return b;
  }
  return s;
}

void check_name(const std::string& name, const std::string& what, const std::string& where) {
  bool ok = !name.empty() && (std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_');
  for (char c : name) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
  if (!ok)
    throw Error(where + ": " + what + " name '" + name + "' should be an ASCII identifier ([A-Za-z_][A-Za-z0-9_]*)");
}

}  // namespace

std::vector<std::string> expr_columns(const std::string& expr) {
  const auto toks = tokenize_sql(expr, "expression '" + expr + "'");
  std::vector<std::string> cols;
  for (size_t i = 0; i + 1 < toks.size(); ++i) {
    const auto& t = toks[i];
    if (t.kind != Token::Kind::Ident) continue;
    if (!t.quoted && reserved_word(t.text)) continue;
    const auto& next = toks[i + 1];
    if (next.kind == Token::Kind::Op && (next.text == "(" || next.text == ".")) continue;
    if (i > 0 && toks[i - 1].kind == Token::Kind::Op && toks[i - 1].text == ".") continue;
    if (i > 0 && is_keyword(toks[i - 1], "AS")) continue;  // CAST(x AS INTEGER)
    if (std::find(cols.begin(), cols.end(), t.text) == cols.end()) cols.push_back(t.text);
  }
  return cols;
}

SemanticModel SemanticModel::load(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(path.string() + ": cannot read the semantic model");
  std::stringstream ss;
  ss << f.rdbuf();
  return parse(ss.str(), path.string());
}

SemanticModel SemanticModel::parse(const std::string& text, const std::string& where) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw Error(where + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) +
                ": bad YAML: " + e.msg);
  }
  if (!root.IsMap()) throw Error(where + ": the semantic model should be a YAML mapping");
  SemanticModel m;
  m.source = where;
  m.name = str(root, "name", where, true);
  m.description = str(root, "description", where, false);
  m.default_time_dimension = str(root, "default_time_dimension", where, false);
  m.default_granularity = str(root, "default_granularity", where, false);
  if (m.default_granularity.empty()) m.default_granularity = "day";
  m.default_metric = str(root, "default_metric", where, false);
  if (const auto n = root["default_time_range_days"]; n && !n.IsNull()) {
    int days = -1;
    if (!n.IsScalar() || !YAML::convert<int>::decode(n, days) || days < 0)
      throw Error(at(n, where) + ": field 'default_time_range_days' should be a whole number of days (0: all time)");
    m.default_time_range_days = days;
  }

  for (const auto& tn : list(root, "tables", where)) {
    Table t;
    t.name = str(tn, "name", where, true);
    t.time_dimension = str(tn, "time_dimension", where, false);
    for (const auto& idn : list(tn, "identifiers", where)) {
      Identifier id;
      id.name = str(idn, "name", where, true);
      id.expr = str(idn, "expr", where, false);
      if (id.expr.empty()) id.expr = id.name;
      const auto type = str(idn, "type", where, true);
      if (type != "primary" && type != "foreign")
        throw Error(at(idn, where) + ": identifier '" + id.name + "' type should be primary or foreign, not '" + type +
                    "'");
      id.primary = type == "primary";
      t.identifiers.push_back(id);
    }
    m.tables.push_back(std::move(t));
  }
  if (m.tables.empty()) throw Error(where + ": field 'tables' should list at least one table");

  auto read_bindings = [&](const YAML::Node& n, const std::string& owner) {
    std::vector<Binding> out;
    const auto table = str(n, "table", where, false);
    if (!table.empty()) out.push_back({table, str(n, "expr", where, false)});
    for (const auto& b : list(n, "bindings", where))
      out.push_back({str(b, "table", where, true), str(b, "expr", where, false)});
    for (auto& b : out)
      if (b.expr.empty()) b.expr = owner;  // a column named like the dimension
    return out;
  };

  for (const auto& dn : list(root, "dimensions", where)) {
    Dimension d;
    d.name = str(dn, "name", where, true);
    d.zh = str(dn, "zh", where, false);
    d.en = str(dn, "en", where, false);
    d.aliases = strings(dn, "aliases", where);
    const auto type = str(dn, "type", where, false);
    if (!type.empty() && type != "categorical" && type != "time")
      throw Error(at(dn, where) + ": dimension '" + d.name + "' type should be categorical or time, not '" + type +
                  "'");
    d.time = type == "time";
    d.sensitive = boolean(dn, "sensitive", false, where);
    d.load_values = boolean(dn, "load_values", !d.time, where);
    d.value_alias_expr = str(dn, "value_alias_expr", where, false);
    const auto va = dn["values"];
    if (va && !va.IsNull()) {
      if (!va.IsMap()) throw Error(at(va, where) + ": dimension '" + d.name + "' field 'values' should be a mapping");
      for (const auto& kv : va) d.value_aliases[kv.first.Scalar()] = strings(va, kv.first.Scalar(), where);
    }
    d.bindings = read_bindings(dn, d.name);
    if (d.bindings.empty())
      throw Error(at(dn, where) + ": dimension '" + d.name + "' needs 'table' (or 'bindings') naming its table");
    m.dimensions.push_back(std::move(d));
  }
  for (const auto& mn : list(root, "metrics", where)) {
    Metric x;
    x.name = str(mn, "name", where, true);
    x.zh = str(mn, "zh", where, false);
    x.en = str(mn, "en", where, false);
    x.aliases = strings(mn, "aliases", where);
    x.unit = str(mn, "unit", where, false);
    x.formula = str(mn, "formula", where, false);
    if (x.formula.empty()) {
      x.binding = {str(mn, "table", where, true), str(mn, "expr", where, true)};
    } else if (mn["expr"] || mn["table"]) {
      throw Error(at(mn, where) + ": metric '" + x.name + "' has a formula; it takes no 'table' or 'expr'");
    }
    m.metrics.push_back(std::move(x));
  }
  for (const auto& tn : list(root, "terms", where)) {
    Term t;
    t.name = str(tn, "name", where, true);
    t.aliases = strings(tn, "aliases", where);
    t.metric = str(tn, "metric", where, false);
    t.dimension = str(tn, "dimension", where, false);
    for (const auto& fn : list(tn, "filters", where)) {
      TermFilter f;
      f.dimension = str(fn, "dimension", where, true);
      f.op = str(fn, "op", where, false);
      if (f.op.empty()) f.op = "=";
      static const std::set<std::string> ops = {"=", "!=", "<", "<=", ">", ">=", "in", "not in"};
      if (!ops.count(lower_ascii(f.op)))
        throw Error(at(fn, where) + ": term '" + t.name + "' filter op should be one of = != < <= > >= in, not '" +
                    f.op + "'");
      f.op = lower_ascii(f.op);
      f.values = strings(fn, "value", where);
      auto more = strings(fn, "values", where);
      f.values.insert(f.values.end(), more.begin(), more.end());
      if (f.values.empty()) throw Error(at(fn, where) + ": term '" + t.name + "' filter needs 'value' or 'values'");
      t.filters.push_back(std::move(f));
    }
    if (t.filters.empty() && t.metric.empty())
      throw Error(at(tn, where) + ": term '" + t.name + "' needs 'filters' or 'metric'");
    m.terms.push_back(std::move(t));
  }

  for (const auto& en : list(root, "examples", where)) {
    ModelExample e;
    e.where = at(en, where);
    if (en.IsScalar()) {
      e.question = en.Scalar();
    } else {
      e.question = str(en, "question", where, true);
      if (en["dsl"]) {
        if (!en["dsl"].IsMap()) throw Error(at(en["dsl"], where) + ": example field 'dsl' should be a mapping");
        e.dsl = yaml_to_json(en["dsl"]);
      }
    }
    if (e.question.empty()) throw Error(e.where + ": an example needs a question");
    m.examples.push_back(std::move(e));
  }

  for (const auto& rn : list(root, "rollups", where)) {
    Rollup r;
    r.name = str(rn, "name", where, true);
    r.base = str(rn, "base", where, true);
    r.grain = str(rn, "grain", where, true);
    r.time_column = str(rn, "time_column", where, false);
    r.columns = strings(rn, "columns", where);
    for (const auto& idn : list(rn, "identifiers", where)) {
      Identifier id;
      id.name = str(idn, "name", where, true);
      id.expr = str(idn, "expr", where, false);
      if (id.expr.empty()) id.expr = id.name;
      const auto type = str(idn, "type", where, false);
      if (!type.empty() && type != "foreign")
        throw Error(at(idn, where) + ": rollup '" + r.name + "' identifier '" + id.name +
                    "' type should be foreign (a rollup is never the target of a join)");
      r.identifiers.push_back(id);
    }
    static const std::set<std::string> rollup_grains = {"day", "month", "quarter", "year"};
    if (!rollup_grains.count(r.grain))
      throw Error(at(rn, where) + ": rollup '" + r.name +
                  "' field 'grain' should be day, month, quarter or year, not '" + r.grain + "'");
    if (r.columns.empty())
      throw Error(at(rn, where) + ": rollup '" + r.name + "' field 'columns' should list the base columns it keeps");
    m.rollups.push_back(std::move(r));
  }

  // Structure: names, references, aliases, derived-metric cycles.
  auto syntax = [&](const std::string& expr, const std::string& owner) {
    try {
      expr_columns(expr);
    } catch (const Error& e) {
      throw Error(where + ": " + owner + ": " + e.what());
    }
  };
  std::set<std::string> tables, names;
  for (auto& t : m.tables) {
    if (!tables.insert(t.name).second) throw Error(where + ": table '" + t.name + "' is listed twice");
  }
  for (auto& d : m.dimensions) {
    check_name(d.name, "dimension", where);
    if (!names.insert(d.name).second) throw Error(where + ": name '" + d.name + "' is defined twice");
    for (auto& b : d.bindings) {
      if (!tables.count(b.table))
        throw Error(where + ": dimension '" + d.name + "' field 'table': unknown table '" + b.table + "'");
      syntax(b.expr, "dimension '" + d.name + "' field 'expr'");
    }
  }
  for (auto& x : m.metrics) {
    check_name(x.name, "metric", where);
    if (!names.insert(x.name).second) throw Error(where + ": name '" + x.name + "' is defined twice");
    if (!x.derived() && !tables.count(x.binding.table))
      throw Error(where + ": metric '" + x.name + "' field 'table': unknown table '" + x.binding.table + "'");
    syntax(x.derived() ? x.formula : x.binding.expr,
           "metric '" + x.name + "' field '" + (x.derived() ? "formula" : "expr") + "'");
  }
  for (auto& x : m.metrics) m.metric_refs(x);  // unknown metric names in formulas throw
  std::map<std::string, int> state;            // 0 new, 1 on the stack, 2 done
  std::function<void(const std::string&, std::vector<std::string>&)> visit = [&](const std::string& n,
                                                                                 std::vector<std::string>& path) {
    if (state[n] == 2) return;
    path.push_back(n);
    if (state[n] == 1) {
      std::string cycle;
      for (auto& p : path) cycle += (cycle.empty() ? "" : " -> ") + p;
      throw Error(where + ": derived metrics form a cycle: " + cycle);
    }
    state[n] = 1;
    for (auto& r : m.metric_refs(*m.metric(n))) visit(r, path);
    state[n] = 2;
    path.pop_back();
  };
  for (auto& x : m.metrics) {
    std::vector<std::string> path;
    visit(x.name, path);
  }
  for (auto& t : m.terms) {
    if (!t.metric.empty() && !m.metric(t.metric))
      throw Error(where + ": term '" + t.name + "' field 'metric': unknown metric '" + t.metric + "'");
    if (!t.dimension.empty() && !m.dimension(t.dimension))
      throw Error(where + ": term '" + t.name + "' field 'dimension': unknown dimension '" + t.dimension + "'");
    for (auto& f : t.filters)
      if (!m.dimension(f.dimension))
        throw Error(where + ": term '" + t.name + "' filter field 'dimension': unknown dimension '" + f.dimension +
                    "'");
  }
  for (auto& t : m.tables) {
    if (!t.time_dimension.empty()) {
      const auto* d = m.dimension(t.time_dimension);
      bool bound = d && d->time;
      if (bound) {
        bound = false;
        for (auto& b : d->bindings) bound = bound || b.table == t.name;
      }
      if (!bound)
        throw Error(where + ": table '" + t.name + "' field 'time_dimension': '" + t.time_dimension +
                    "' should be a time dimension bound to this table");
    }
    for (auto& id : t.identifiers) {
      if (id.primary) continue;
      bool found = false;
      for (auto& o : m.tables)
        for (auto& oid : o.identifiers) found = found || (oid.primary && oid.name == id.name && o.name != t.name);
      if (!found)
        throw Error(where + ": table '" + t.name + "' identifier '" + id.name +
                    "' is foreign but no other table has it as primary");
    }
  }
  for (auto& r : m.rollups) {
    const std::string who = where + ": rollup '" + r.name + "'";
    check_name(r.name, "rollup", where);
    if (tables.count(r.name)) throw Error(who + " has the name of a table");
    if (!tables.insert(r.name).second) throw Error(who + " is listed twice");
    const auto* base = m.table(r.base);
    if (!base) throw Error(who + " field 'base': unknown table '" + r.base + "'");
    if (r.time_column.empty()) {
      const auto* td = base->time_dimension.empty() ? nullptr : m.dimension(base->time_dimension);
      if (td)
        for (auto& b : td->bindings)
          if (b.table == r.base) r.time_column = b.expr;
      if (r.time_column.empty())
        throw Error(who + ": base table '" + r.base + "' has no time_dimension; give 'time_column'");
    }
    check_name(r.time_column, "rollup time_column", who);
    for (auto& c : r.columns) {
      check_name(c, "rollup column", who);
      if (c == r.time_column) throw Error(who + " field 'columns': the time column '" + c + "' is implied, not listed");
    }
    for (auto& id : r.identifiers) {
      bool found = false;
      for (auto& o : m.tables)
        for (auto& oid : o.identifiers) found = found || (oid.primary && oid.name == id.name);
      if (!found) throw Error(who + " identifier '" + id.name + "': no table has it as primary");
    }
  }
  if (!m.default_time_dimension.empty() &&
      (!m.dimension(m.default_time_dimension) || !m.dimension(m.default_time_dimension)->time))
    throw Error(where + ": field 'default_time_dimension': '" + m.default_time_dimension +
                "' should be a time dimension");
  if (!m.default_metric.empty() && !m.metric(m.default_metric))
    throw Error(where + ": field 'default_metric': unknown metric '" + m.default_metric + "'");
  static const std::set<std::string> grains = {"day", "week", "month", "quarter", "year"};
  if (!grains.count(m.default_granularity))
    throw Error(where + ": field 'default_granularity' should be day, week, month, quarter or year, not '" +
                m.default_granularity + "'");

  // Every word people may say names one thing (value aliases are per dimension and may repeat).
  std::map<std::string, std::string> owner;
  auto claim = [&](const std::string& word, const std::string& who) {
    if (word.empty()) return;
    const auto key = lower_ascii(word);
    auto [it, fresh] = owner.emplace(key, who);
    if (!fresh && it->second != who)
      throw Error(where + ": duplicate alias '" + word + "' (" + it->second + " and " + who + ")");
  };
  for (auto& d : m.dimensions) {
    const auto who = "dimension " + d.name;
    claim(d.name, who), claim(d.zh, who), claim(d.en, who);
    for (auto& a : d.aliases) claim(a, who);
  }
  for (auto& x : m.metrics) {
    const auto who = "metric " + x.name;
    claim(x.name, who), claim(x.zh, who), claim(x.en, who);
    for (auto& a : x.aliases) claim(a, who);
  }
  for (auto& t : m.terms) {
    const auto who = "term " + t.name;
    claim(t.name, who);
    for (auto& a : t.aliases) claim(a, who);
  }
  return m;
}

const Table* SemanticModel::table(const std::string& n) const {
  for (auto& t : tables)
    if (t.name == n) return &t;
  return nullptr;
}
const Dimension* SemanticModel::dimension(const std::string& n) const {
  for (auto& d : dimensions)
    if (d.name == n) return &d;
  return nullptr;
}
const Metric* SemanticModel::metric(const std::string& n) const {
  for (auto& x : metrics)
    if (x.name == n) return &x;
  return nullptr;
}
const Term* SemanticModel::term(const std::string& n) const {
  for (auto& t : terms)
    if (t.name == n) return &t;
  return nullptr;
}

std::vector<std::string> SemanticModel::metric_refs(const Metric& x) const {
  std::vector<std::string> refs;
  if (!x.derived()) return refs;
  for (auto& c : expr_columns(x.formula)) {
    if (!metric(c)) throw Error(source + ": metric '" + x.name + "' field 'formula': unknown metric '" + c + "'");
    refs.push_back(c);
  }
  return refs;
}

std::vector<std::string> SemanticModel::metric_tables(const std::string& n) const {
  const auto* x = metric(n);
  check(x != nullptr, source + ": unknown metric '" + n + "'");
  if (!x->derived()) return {x->binding.table};
  std::vector<std::string> out;
  for (auto& r : metric_refs(*x))
    for (auto& t : metric_tables(r))
      if (std::find(out.begin(), out.end(), t) == out.end()) out.push_back(t);
  return out;
}

void SemanticModel::validate_against(const Schema& schema) const {
  auto has_col = [&](const std::string& table, const std::string& col) {
    auto it = schema.find(table);
    if (it == schema.end()) return false;
    for (auto& c : it->second)
      if (lower_ascii(c) == lower_ascii(col)) return true;
    return false;
  };
  auto columns_of = [&](const std::string& table) {
    std::string s;
    for (auto& c : schema.at(table)) s += (s.empty() ? "" : ", ") + c;
    return s;
  };
  auto check_expr = [&](const std::string& table, const std::string& expr, const std::string& owner) {
    for (auto& c : expr_columns(expr))
      if (!has_col(table, c))
        throw Error(source + ": " + owner + ": unknown column '" + c + "' in table '" + table + "' (it has " +
                    columns_of(table) + ")");
  };
  for (auto& t : tables) {
    if (!schema.count(t.name)) {
      std::string have;
      for (auto& [n, _] : schema) have += (have.empty() ? "" : ", ") + n;
      throw Error(source + ": table '" + t.name + "' is not in the database (it has " + have + ")");
    }
    for (auto& id : t.identifiers) check_expr(t.name, id.expr, "table '" + t.name + "' identifier '" + id.name + "'");
  }
  for (auto& d : dimensions) {
    for (auto& b : d.bindings) check_expr(b.table, b.expr, "dimension '" + d.name + "' field 'expr'");
    if (!d.value_alias_expr.empty())
      check_expr(d.bindings[0].table, d.value_alias_expr, "dimension '" + d.name + "' field 'value_alias_expr'");
  }
  for (auto& x : metrics)
    if (!x.derived()) check_expr(x.binding.table, x.binding.expr, "metric '" + x.name + "' field 'expr'");
  for (auto& r : rollups) {
    if (!schema.count(r.name))
      throw Error(source + ": rollup '" + r.name + "' is not a table in the database (build it, or remove it)");
    const std::string owner = "rollup '" + r.name + "'";
    check_expr(r.name, r.time_column, owner + " field 'time_column'");
    for (auto& c : r.columns) {
      check_expr(r.base, c, owner + " field 'columns'");
      check_expr(r.name, c, owner + " field 'columns'");
    }
    for (auto& id : r.identifiers) check_expr(r.name, id.expr, owner + " identifier '" + id.name + "'");
  }
}

}  // namespace yak::ask
