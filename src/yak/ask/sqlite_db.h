// SQLite behind the Database interface: read-only connections for questions (progress-handler
// timeout, row limit), a writable one for the demo generator.
#pragma once
#include <filesystem>
#include <memory>

#include "yak/ask/database.h"

struct sqlite3;

namespace yak::ask {

class SqliteDb : public Database {
 public:
  // Opens an existing file; read-only unless `writable` (which also creates it).
  SqliteDb(const std::filesystem::path& path, bool writable = false);
  ~SqliteDb() override;
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  QueryResult query(const std::string& sql, const std::vector<Value>& params, const QueryOptions& opt) override;
  const Schema& schema() override;
  std::string dialect() const override { return "sqlite"; }
  std::string server() override;

  // Writable connections only: runs statements with no result (DDL, BEGIN/COMMIT).
  void exec(const std::string& sql);
  // Writable connections only: prepares once and runs `insert` for every row set by `fill`.
  class Inserter;
  std::unique_ptr<Inserter> inserter(const std::string& sql);

  sqlite3* handle() { return db_; }

 private:
  sqlite3* db_ = nullptr;
  std::string path_;
  bool writable_;
  bool have_schema_ = false;
  Schema schema_;
};

class SqliteDb::Inserter {
 public:
  ~Inserter();
  void row(const std::vector<Value>& values);

 private:
  friend class SqliteDb;
  Inserter() = default;
  void* stmt_ = nullptr;
  std::string where_;
};

// Parses "sqlite:PATH" (also sqlite://PATH); other schemes throw naming what is supported.
std::filesystem::path sqlite_path_from_url(const std::string& url);

}  // namespace yak::ask
