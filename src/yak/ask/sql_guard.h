// The SQL safety checker: parses the SELECT/WITH subset into a tree, refuses anything else
// (DDL, DML, PRAGMA, ATTACH, stacked statements, unknown functions, table-valued functions),
// enforces a LIMIT, refuses sensitive columns, adds row filters, and prints the tree back.
// Only the printed tree reaches the database, so what was checked is what runs.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "yak/ask/database.h"

namespace yak::ask {

struct SqlQuery;  // the parsed tree (sql_guard.cpp)

// A condition on one table's columns, added to every SELECT that reads the table.
struct RowFilter {
  std::string table;
  std::string condition;  // SQL over the table's bare columns, e.g. platform = 'QQ音乐'
};

struct GuardOptions {
  int64_t max_limit = 1000;            // a missing LIMIT becomes this; a larger one is lowered
  Schema schema;                       // when not empty: tables must exist (or be CTEs)
  std::vector<std::string> sensitive;  // "table.column" (or "column"): refused unless allowed
  bool allow_sensitive = false;
  std::vector<RowFilter> row_filters;
  std::string dialect = "sqlite";  // sqlite | clickhouse | mysql: functions allowed, how names print
};

struct GuardedSql {
  std::string sql;                  // the printed, checked statement
  std::vector<std::string> tables;  // base tables read, sorted
  int64_t limit = 0;
};

// Throws yak::Error (prefixed with "SQL refused: ") when the statement is not one read-only
// SELECT/WITH in the subset or breaks a rule in `opt`.
GuardedSql guard_sql(const std::string& sql, const GuardOptions& opt);

}  // namespace yak::ask
