// DSL -> physical SQL through the semantic model: joins from identifiers, derived metrics
// expanded, time buckets per dialect, every value a bound parameter.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "yak/ask/database.h"
#include "yak/ask/dsl.h"
#include "yak/ask/semantic.h"

namespace yak::ask {

// What differs between databases.
class SqlDialect {
 public:
  virtual ~SqlDialect() = default;
  virtual std::string name() const = 0;
  // A time expression (YYYY-MM-DD text or date) bucketed to day|week|month|quarter|year, as text:
  // day YYYY-MM-DD, week the Monday YYYY-MM-DD, month YYYY-MM, quarter YYYY-Qn, year YYYY.
  virtual std::string time_bucket(const std::string& expr, const std::string& grain) const = 0;
  virtual std::string placeholder() const { return "?"; }
  // True when the database joins only two tables per SELECT: the translator then nests the joins.
  virtual bool nested_joins() const { return false; }
};

class SqliteDialect : public SqlDialect {
 public:
  std::string name() const override { return "sqlite"; }
  std::string time_bucket(const std::string& expr, const std::string& grain) const override;
};

// ClickHouse (18.16 and later): Date columns, toMonday/formatDateTime buckets, nested joins.
// Values still travel as ? and the executor escapes them into literals.
class ClickHouseDialect : public SqlDialect {
 public:
  std::string name() const override { return "clickhouse"; }
  std::string time_bucket(const std::string& expr, const std::string& grain) const override;
  bool nested_joins() const override { return true; }
};

// MySQL protocol (MariaDB, MySQL, Doris, StarRocks): DATE columns, DATE_FORMAT buckets.
class MysqlDialect : public SqlDialect {
 public:
  std::string name() const override { return "mysql"; }
  std::string time_bucket(const std::string& expr, const std::string& grain) const override;
};

std::unique_ptr<SqlDialect> dialect_for(const std::string& name);

struct Translation {
  std::string sql;
  std::vector<Value> params;
  std::vector<std::string> columns;  // output column names
  std::string root_table;
  std::string rollup;  // the rollup read instead of root_table, if any
};

struct TranslateOptions {
  // Read a rollup instead of its base table when it gives the same answer. Off when row filters
  // apply, so that a filter on the base table is never bypassed.
  bool use_rollups = true;
};

// Throws yak::Error when a name is unknown or the elements cannot be joined into one query.
Translation translate(const Dsl& dsl, const SemanticModel& model, const SqlDialect& dialect,
                      const TranslateOptions& opt = {});

// An expression with its bare columns prefixed by `table.`.
std::string qualify_expr(const std::string& expr, const std::string& table);

}  // namespace yak::ask
