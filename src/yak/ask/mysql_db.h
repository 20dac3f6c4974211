// The MySQL protocol behind the Database interface, through libmariadb: MariaDB, MySQL, Apache
// Doris and StarRocks. Every value is a bound parameter of a prepared statement; question
// connections are read-only sessions with a statement time limit and a row cap.
#pragma once
#include <string>

#include "yak/ask/database.h"

struct st_mysql;

namespace yak::ask {

class MysqlDb : public Database {
 public:
  // mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE (port 3306 by default). A writable connection
  // creates the database when missing.
  explicit MysqlDb(const std::string& url, bool writable = false);
  ~MysqlDb() override;
  MysqlDb(const MysqlDb&) = delete;
  MysqlDb& operator=(const MysqlDb&) = delete;

  QueryResult query(const std::string& sql, const std::vector<Value>& params, const QueryOptions& opt) override;
  const Schema& schema() override;
  std::string dialect() const override { return "mysql"; }
  std::string server() override;
  void load_table(const TableDef& t, const std::vector<std::vector<Value>>& rows) override;

 private:
  void exec(const std::string& sql);      // statements without results
  bool try_exec(const std::string& sql);  // false when the server refuses (other dialects)
  void set_time_limit(int timeout_ms);

  st_mysql* db_ = nullptr;
  ServerUrl url_;
  bool writable_;
  bool mariadb_ = false;
  int time_limit_ms_ = -1;
  bool have_schema_ = false;
  Schema schema_;
};

}  // namespace yak::ask
