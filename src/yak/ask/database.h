// The executor interface of `ask`: one read-only query with bound parameters, a row limit and a
// timeout. SQLite (embedded), ClickHouse (HTTP) and the MySQL protocol (libmariadb) implement it.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
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

// A table to create when loading data into a server (the demo loader).
struct ColumnDef {
  std::string name;
  std::string type;  // integer | real | text | date
};
struct TableDef {
  std::string name;
  std::vector<ColumnDef> columns;
  std::vector<std::string> key;  // primary key / sort key columns, may be empty
};

class Database {
 public:
  virtual ~Database() = default;
  virtual QueryResult query(const std::string& sql, const std::vector<Value>& params, const QueryOptions& opt) = 0;
  virtual const Schema& schema() = 0;
  virtual std::string dialect() const = 0;  // sqlite | clickhouse | mysql
  // Server and version, e.g. "ClickHouse 18.16.1".
  virtual std::string server() { return dialect(); }
  // Writable connections only: replaces table `t` with these rows.
  virtual void load_table(const TableDef& t, const std::vector<std::vector<Value>>& rows);
};

// scheme://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE, user and password %-decoded.
struct ServerUrl {
  std::string user, password, host, database;
  int port = 0;
  std::string display;  // the URL without the password, for messages
};
// Throws yak::Error naming the URL and the expected form. The database name must be an
// identifier ([A-Za-z0-9_]+).
ServerUrl parse_server_url(const std::string& url, const std::string& scheme, int default_port);

// The URL as it may be printed: a server URL without its password; other text unchanged.
std::string redact_url(const std::string& url);

// Opens a database from a --db URL: sqlite:PATH, clickhouse://..., mysql://...; `writable` for
// loaders (SQLite files are then created).
std::unique_ptr<Database> open_database(const std::string& url, bool writable = false);

}  // namespace yak::ask
