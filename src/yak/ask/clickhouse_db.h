// ClickHouse behind the Database interface, over its HTTP interface (yak::http): the SQL is
// POSTed with FORMAT JSONCompact and the settings readonly=1 (question connections),
// max_execution_time and the database. ClickHouse 18 has no query parameters, so the ? values
// become literals through one escaping function, clickhouse_literal.
#pragma once
#include <string>

#include "yak/ask/database.h"

namespace yak::ask {

class ClickHouseDb : public Database {
 public:
  // clickhouse://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE (port 8123 by default). A writable
  // connection creates the database when missing.
  explicit ClickHouseDb(const std::string& url, bool writable = false);

  QueryResult query(const std::string& sql, const std::vector<Value>& params, const QueryOptions& opt) override;
  const Schema& schema() override;
  std::string dialect() const override { return "clickhouse"; }
  std::string server() override;
  void load_table(const TableDef& t, const std::vector<std::vector<Value>>& rows) override;

 private:
  // POSTs one statement; throws yak::Error with the server's message on a non-200 answer.
  std::string post(const std::string& sql, bool with_database, bool readonly, int timeout_ms);

  ServerUrl url_;
  bool writable_;
  bool have_schema_ = false;
  Schema schema_;
  std::string version_;
};

// A ClickHouse literal for a value: NULL, a number, or a quoted string with \ ' and control
// characters backslash-escaped. The only way values enter ClickHouse SQL.
std::string clickhouse_literal(const Value& v);

// Replaces the ? parameters of `sql` (outside strings and comments) with literals, in order;
// throws when their number differs from params.size().
std::string inline_parameters(const std::string& sql, const std::vector<Value>& params,
                              std::string (*literal)(const Value&), const std::string& where);

}  // namespace yak::ask
