// The executor interface of `ask`: one read-only query with bound parameters, a row limit and a
// timeout. SQLite implements it now; ClickHouse and MySQL come behind the same interface.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "yak/base/json.h"

namespace yak::ask {

// One cell of a result, or one bound parameter.
struct Value {
  enum class Type { Null, Int, Real, Text };
  Type type = Type::Null;
  int64_t i = 0;
  double d = 0;
  std::string s;

  static Value null() { return {}; }
  static Value integer(int64_t v) { return {Type::Int, v, 0, {}}; }
  static Value real(double v) { return {Type::Real, 0, v, {}}; }
  static Value text(std::string v) { return {Type::Text, 0, 0, std::move(v)}; }
  bool is_number() const { return type == Type::Int || type == Type::Real; }
  double as_double() const { return type == Type::Int ? static_cast<double>(i) : d; }
  std::string to_string() const;  // NULL prints as empty; reals with up to 6 decimals, no trailing zeros
  Json to_json() const;
};

struct QueryResult {
  std::vector<std::string> columns;
  std::vector<std::vector<Value>> rows;
  bool truncated = false;  // the row limit cut the result
};

struct QueryOptions {
  int64_t max_rows = 1000;
  int timeout_ms = 5000;
};

// Table name -> column names, in the database's order.
using Schema = std::map<std::string, std::vector<std::string>>;

class Database {
 public:
  virtual ~Database() = default;
  virtual QueryResult query(const std::string& sql, const std::vector<Value>& params, const QueryOptions& opt) = 0;
  virtual const Schema& schema() = 0;
  virtual std::string dialect() const = 0;  // "sqlite", later "clickhouse", "mysql"
};

}  // namespace yak::ask
