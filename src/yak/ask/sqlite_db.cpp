#include "yak/ask/sqlite_db.h"

#include <sqlite3.h>

#include <cctype>
#include <chrono>

#include "yak/ask/sql_lexer.h"
#include "yak/base/error.h"

namespace yak::ask {

namespace {

struct Deadline {
  std::chrono::steady_clock::time_point until;
  bool hit = false;
};

int on_progress(void* p) {
  auto* d = static_cast<Deadline*>(p);
  if (std::chrono::steady_clock::now() > d->until) {
    d->hit = true;
    return 1;  // interrupts the statement
  }
  return 0;
}

void bind_all(sqlite3_stmt* st, const std::vector<Value>& params, const std::string& where) {
  const int want = sqlite3_bind_parameter_count(st);
  if (want != static_cast<int>(params.size()))
    throw Error(where + ": the SQL has " + std::to_string(want) + " parameters, " + std::to_string(params.size()) +
                " values were given");
  for (size_t k = 0; k < params.size(); ++k) {
    const int idx = static_cast<int>(k) + 1;
    const auto& v = params[k];
    int rc = SQLITE_OK;
    switch (v.type) {
      case Value::Type::Null:
        rc = sqlite3_bind_null(st, idx);
        break;
      case Value::Type::Int:
        rc = sqlite3_bind_int64(st, idx, v.i);
        break;
      case Value::Type::Real:
        rc = sqlite3_bind_double(st, idx, v.d);
        break;
      case Value::Type::Text:
        rc = sqlite3_bind_text(st, idx, v.s.data(), static_cast<int>(v.s.size()), SQLITE_TRANSIENT);
        break;
    }
    if (rc != SQLITE_OK) throw Error(where + ": cannot bind parameter " + std::to_string(idx));
  }
}

}  // namespace

SqliteDb::SqliteDb(const std::filesystem::path& path, bool writable) : path_(path.string()), writable_(writable) {
  if (!writable && !std::filesystem::is_regular_file(path))
    throw Error(path_ + ": no such database file (--db sqlite:PATH wants an existing SQLite file)");
  const int flags = writable ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY;
  if (sqlite3_open_v2(path_.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error(path_ + ": cannot open SQLite database: " + msg);
  }
  sqlite3_extended_result_codes(db_, 1);
  if (!writable) {
    // Belt and braces over the read-only open: no extension loading, no writes through ATTACH.
    sqlite3_db_config(db_, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, nullptr);
    sqlite3_exec(db_, "PRAGMA query_only = 1", nullptr, nullptr, nullptr);
    // Reading the schema proves the file is a database.
    schema();
  }
}

SqliteDb::~SqliteDb() {
  sqlite3_close(db_);
}

const Schema& SqliteDb::schema() {
  if (have_schema_) return schema_;
  sqlite3_stmt* st = nullptr;
  const char* sql = "SELECT name FROM sqlite_master WHERE type IN ('table','view') AND name NOT LIKE 'sqlite_%'";
  if (sqlite3_prepare_v2(db_, sql, -1, &st, nullptr) != SQLITE_OK)
    throw Error(path_ + ": not a readable SQLite database: " + sqlite3_errmsg(db_));
  std::vector<std::string> tables;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW)
    tables.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) throw Error(path_ + ": not a readable SQLite database: " + sqlite3_errmsg(db_));
  for (auto& t : tables) {
    const std::string q = "SELECT name FROM pragma_table_info(" + quote_string(t) + ")";
    if (sqlite3_prepare_v2(db_, q.c_str(), -1, &st, nullptr) != SQLITE_OK)
      throw Error(path_ + ": cannot read the columns of table '" + t + "': " + sqlite3_errmsg(db_));
    auto& cols = schema_[t];
    while (sqlite3_step(st) == SQLITE_ROW) cols.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
    sqlite3_finalize(st);
  }
  have_schema_ = true;
  return schema_;
}

QueryResult SqliteDb::query(const std::string& sql, const std::vector<Value>& params, const QueryOptions& opt) {
  sqlite3_stmt* st = nullptr;
  const char* tail = nullptr;
  if (sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &st, &tail) != SQLITE_OK)
    throw Error(path_ + ": SQL error: " + sqlite3_errmsg(db_));
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> guard(st, sqlite3_finalize);
  if (!st) throw Error(path_ + ": empty SQL");
  for (const char* p = tail; p && *p; ++p)
    if (!std::isspace(static_cast<unsigned char>(*p)) && *p != ';')
      throw Error(path_ + ": only one SQL statement may run at a time");
  if (!writable_ && !sqlite3_stmt_readonly(st)) throw Error(path_ + ": only read-only statements may run");
  bind_all(st, params, path_);
  Deadline deadline{std::chrono::steady_clock::now() + std::chrono::milliseconds(opt.timeout_ms)};
  sqlite3_progress_handler(db_, 1000, on_progress, &deadline);
  QueryResult r;
  const int n = sqlite3_column_count(st);
  for (int c = 0; c < n; ++c) r.columns.emplace_back(sqlite3_column_name(st, c));
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (static_cast<int64_t>(r.rows.size()) >= opt.max_rows) {
      r.truncated = true;
      break;
    }
    std::vector<Value> row(n);
    for (int c = 0; c < n; ++c) {
      switch (sqlite3_column_type(st, c)) {
        case SQLITE_INTEGER:
          row[c] = Value::integer(sqlite3_column_int64(st, c));
          break;
        case SQLITE_FLOAT:
          row[c] = Value::real(sqlite3_column_double(st, c));
          break;
        case SQLITE_NULL:
          break;
        default:
          row[c] = Value::text(std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, c)),
                                           static_cast<size_t>(sqlite3_column_bytes(st, c))));
      }
    }
    r.rows.push_back(std::move(row));
  }
  sqlite3_progress_handler(db_, 0, nullptr, nullptr);
  if (deadline.hit)
    throw Error(path_ + ": the query ran past its timeout of " + std::to_string(opt.timeout_ms) + " ms");
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) throw Error(path_ + ": SQL error: " + sqlite3_errmsg(db_));
  return r;
}

void SqliteDb::exec(const std::string& sql) {
  check(writable_, path_ + ": the connection is read-only");
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    throw Error(path_ + ": " + msg);
  }
  have_schema_ = false;
  schema_.clear();
}

std::unique_ptr<SqliteDb::Inserter> SqliteDb::inserter(const std::string& sql) {
  check(writable_, path_ + ": the connection is read-only");
  std::unique_ptr<Inserter> ins(new Inserter());
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK)
    throw Error(path_ + ": SQL error: " + sqlite3_errmsg(db_));
  ins->stmt_ = st;
  ins->where_ = path_;
  return ins;
}

SqliteDb::Inserter::~Inserter() {
  sqlite3_finalize(static_cast<sqlite3_stmt*>(stmt_));
}

void SqliteDb::Inserter::row(const std::vector<Value>& values) {
  auto* st = static_cast<sqlite3_stmt*>(stmt_);
  sqlite3_reset(st);
  bind_all(st, values, where_);
  if (sqlite3_step(st) != SQLITE_DONE)
    throw Error(where_ + ": insert failed: " + sqlite3_errmsg(sqlite3_db_handle(st)));
}

std::filesystem::path sqlite_path_from_url(const std::string& url) {
  std::string rest;
  if (url.rfind("sqlite://", 0) == 0)
    rest = url.substr(9);
  else if (url.rfind("sqlite:", 0) == 0)
    rest = url.substr(7);
  else
    throw Error("--db '" + url +
                "': expected sqlite:PATH, clickhouse://[USER[:PASS]@]HOST:PORT/DB or mysql://USER[:PASS]@HOST:PORT/DB");
  if (rest.empty()) throw Error("--db '" + url + "': expected a file path after 'sqlite:'");
  return rest;
}

std::string SqliteDb::server() {
  return std::string("SQLite ") + sqlite3_libversion();
}

}  // namespace yak::ask
