#include "yak/ask/clickhouse_db.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "yak/ask/sql_lexer.h"
#include "yak/base/error.h"
#include "yak/base/http.h"
#include "yak/base/json.h"

namespace yak::ask {

std::string clickhouse_literal(const Value& v) {
  switch (v.type) {
    case Value::Type::Null:
      return "NULL";
    case Value::Type::Int:
      return std::to_string(v.i);
    case Value::Type::Real: {
      check(std::isfinite(v.d), "clickhouse: cannot send a non-finite number");
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.17g", v.d);
      return buf;
    }
    case Value::Type::Text:
      break;
  }
  std::string q = "'";
  for (unsigned char c : v.s) {
    if (c == '\\' || c == '\'') {
      q += '\\';
      q += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      q += buf;
    } else {
      q += static_cast<char>(c);
    }
  }
  return q + "'";
}

std::string inline_parameters(const std::string& sql, const std::vector<Value>& params,
                              std::string (*literal)(const Value&), const std::string& where) {
  const auto toks = tokenize_sql(sql, where);
  std::string out;
  size_t copied = 0, k = 0;
  for (auto& t : toks) {
    if (t.kind != Token::Kind::Param) continue;
    if (t.text != "?") throw Error(where + ": only ? parameters are supported, not '" + t.text + "'");
    if (k >= params.size()) break;
    out += sql.substr(copied, t.pos - copied) + literal(params[k++]);
    copied = t.pos + 1;
  }
  const size_t want = static_cast<size_t>(
      std::count_if(toks.begin(), toks.end(), [](auto& t) { return t.kind == Token::Kind::Param; }));
  if (want != params.size())
    throw Error(where + ": the SQL has " + std::to_string(want) + " parameters, " + std::to_string(params.size()) +
                " values were given");
  return out + sql.substr(copied);
}

namespace {

std::string url_encode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '_' || c == '-' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

// "Nullable(Int64)" -> "Int64"; LowCardinality likewise.
std::string base_type(std::string t) {
  for (const char* wrap : {"Nullable(", "LowCardinality("}) {
    const std::string w = wrap;
    while (t.rfind(w, 0) == 0 && t.back() == ')') t = t.substr(w.size(), t.size() - w.size() - 1);
  }
  return t;
}

Value cell(const Json& j, const std::string& type, const std::string& where) {
  if (j.is_null()) return Value::null();
  const bool integer = type.rfind("Int", 0) == 0 || type.rfind("UInt", 0) == 0;
  const bool real = type.rfind("Float", 0) == 0 || type.rfind("Decimal", 0) == 0;
  if (integer || real) {
    std::string text = j.is_string() ? j.get<std::string>() : j.dump();
    if (j.is_number_integer() && !j.is_number_unsigned()) return Value::integer(j.get<int64_t>());
    if (integer && text.find_first_not_of("-0123456789") == std::string::npos) {
      try {
        return Value::integer(std::stoll(text));
      } catch (const std::out_of_range&) {
        return Value::real(std::stod(text));  // UInt64 above INT64_MAX
      }
    }
    if (j.is_number()) return Value::real(j.get<double>());
    if (text == "nan" || text == "-nan") return Value::real(NAN);
    if (text == "inf" || text == "+inf") return Value::real(INFINITY);
    if (text == "-inf") return Value::real(-INFINITY);
    try {
      return Value::real(std::stod(text));
    } catch (const std::exception&) {
      throw Error(where + ": cannot read '" + text + "' as " + type);
    }
  }
  if (j.is_string()) return Value::text(j.get<std::string>());
  return Value::text(j.dump());
}

const char* ch_type(const std::string& t) {
  if (t == "integer") return "Int64";
  if (t == "real") return "Float64";
  if (t == "date") return "Date";
  return "String";
}

}  // namespace

ClickHouseDb::ClickHouseDb(const std::string& url, bool writable)
    : url_(parse_server_url(url, "clickhouse", 8123)), writable_(writable) {
  if (writable_) post("CREATE DATABASE IF NOT EXISTS " + url_.database, false, false, 30000);
  const auto r = query("SELECT version()", {}, {});
  check(r.rows.size() == 1, url_.display + ": SELECT version() gave no row");
  version_ = r.rows[0][0].to_string();
}

std::string ClickHouseDb::server() {
  return "ClickHouse " + version_;
}

std::string ClickHouseDb::post(const std::string& sql, bool with_database, bool readonly, int timeout_ms) {
  std::string target = "http://" + url_.host + ":" + std::to_string(url_.port) + "/?";
  std::string args;
  auto arg = [&](const std::string& k, const std::string& v) {
    args += (args.empty() ? "" : "&") + k + "=" + url_encode(v);
  };
  if (with_database) arg("database", url_.database);
  if (!url_.user.empty()) arg("user", url_.user);
  if (!url_.password.empty()) arg("password", url_.password);
  if (readonly) arg("readonly", "1");
  arg("max_execution_time", std::to_string(std::max(1, (timeout_ms + 999) / 1000)));
  http::Response r;
  try {
    r = http::post(target + args, sql, "text/plain; charset=utf-8", timeout_ms / 1000.0 + 2.0);
  } catch (const Error& e) {
    throw Error(url_.display + ": cannot reach ClickHouse (" + e.what() + ")");
  }
  if (r.status != 200) {
    std::string msg = r.body.substr(0, r.body.find('\n'));
    if (msg.size() > 400) msg = msg.substr(0, 400) + "...";
    if (msg.find("Timeout exceeded") != std::string::npos)
      throw Error(url_.display + ": the query ran past its timeout of " + std::to_string(timeout_ms) + " ms");
    throw Error(url_.display + ": ClickHouse answered HTTP " + std::to_string(r.status) + ": " + msg);
  }
  return r.body;
}

QueryResult ClickHouseDb::query(const std::string& sql, const std::vector<Value>& params, const QueryOptions& opt) {
  // One statement only: the guard made it so, and a FORMAT clause after a ';' would not parse.
  std::string text = inline_parameters(sql, params, clickhouse_literal, url_.display);
  while (!text.empty() && (std::isspace(static_cast<unsigned char>(text.back())) || text.back() == ';'))
    text.pop_back();
  const auto body = post(text + " FORMAT JSONCompact", true, !writable_, opt.timeout_ms);
  const Json j = parse_json(body, url_.display + ": answer");
  QueryResult r;
  std::vector<std::string> types;
  for (auto& m : j.at("meta")) {
    r.columns.push_back(m.at("name").get<std::string>());
    types.push_back(base_type(m.at("type").get<std::string>()));
  }
  for (auto& row : j.at("data")) {
    if (static_cast<int64_t>(r.rows.size()) >= opt.max_rows) {
      r.truncated = true;
      break;
    }
    std::vector<Value> out;
    for (size_t c = 0; c < row.size() && c < types.size(); ++c)
      out.push_back(cell(row[c], types[c], url_.display + ": column '" + r.columns[c] + "'"));
    r.rows.push_back(std::move(out));
  }
  return r;
}

const Schema& ClickHouseDb::schema() {
  if (have_schema_) return schema_;
  QueryOptions o;
  o.max_rows = 1000000;
  o.timeout_ms = 10000;
  const auto r = query("SELECT table, name FROM system.columns WHERE database = ?", {Value::text(url_.database)}, o);
  for (auto& row : r.rows) schema_[row[0].s].push_back(row[1].s);
  have_schema_ = true;
  return schema_;
}

void ClickHouseDb::load_table(const TableDef& t, const std::vector<std::vector<Value>>& rows) {
  check(writable_, url_.display + ": the connection is read-only");
  std::string cols, key;
  for (auto& c : t.columns) cols += (cols.empty() ? "" : ", ") + c.name + " " + ch_type(c.type);
  for (auto& k : t.key) key += (key.empty() ? "" : ", ") + k;
  post("DROP TABLE IF EXISTS " + t.name, true, false, 30000);
  post("CREATE TABLE " + t.name + " (" + cols + ") ENGINE = MergeTree() ORDER BY " +
           (key.empty() ? std::string("tuple()") : "(" + key + ")"),
       true, false, 30000);
  const size_t batch = 20000;
  for (size_t i = 0; i < rows.size(); i += batch) {
    std::string sql = "INSERT INTO " + t.name + " VALUES ";
    for (size_t r = i; r < std::min(rows.size(), i + batch); ++r) {
      check(rows[r].size() == t.columns.size(), url_.display + ": table '" + t.name + "': row has " +
                                                    std::to_string(rows[r].size()) + " values, want " +
                                                    std::to_string(t.columns.size()));
      sql += r == i ? "(" : ",(";
      for (size_t c = 0; c < rows[r].size(); ++c) {
        if (c) sql += ',';
        sql += clickhouse_literal(rows[r][c]);
      }
      sql += ")";
    }
    post(sql, true, false, 120000);
  }
  have_schema_ = false;
  schema_.clear();
}

}  // namespace yak::ask
