#include "yak/ask/mysql_db.h"

#include <mysql.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>

#include "yak/base/error.h"

namespace yak::ask {

namespace {

// Parameters of one statement, bound from Values (the buffers live as long as the binder).
struct Binder {
  std::vector<MYSQL_BIND> binds;
  std::vector<long long> ints;
  std::vector<double> reals;
  std::vector<unsigned long> lengths;

  explicit Binder(const std::vector<Value>& params)
      : binds(params.size()), ints(params.size()), reals(params.size()), lengths(params.size()) {
    for (size_t k = 0; k < params.size(); ++k) {
      auto& b = binds[k];
      std::memset(&b, 0, sizeof b);
      const auto& v = params[k];
      switch (v.type) {
        case Value::Type::Null:
          b.buffer_type = MYSQL_TYPE_NULL;
          break;
        case Value::Type::Int:
          ints[k] = v.i;
          b.buffer_type = MYSQL_TYPE_LONGLONG;
          b.buffer = &ints[k];
          break;
        case Value::Type::Real:
          reals[k] = v.d;
          b.buffer_type = MYSQL_TYPE_DOUBLE;
          b.buffer = &reals[k];
          break;
        case Value::Type::Text:
          lengths[k] = v.s.size();
          b.buffer_type = MYSQL_TYPE_STRING;
          b.buffer = const_cast<char*>(v.s.data());
          b.buffer_length = v.s.size();
          b.length = &lengths[k];
          break;
      }
    }
  }
};

using Stmt = std::unique_ptr<MYSQL_STMT, decltype(&mysql_stmt_close)>;

const char* my_type(const std::string& t) {
  if (t == "integer") return "BIGINT";
  if (t == "real") return "DOUBLE";
  if (t == "date") return "DATE";
  return "VARCHAR(255)";
}

}  // namespace

MysqlDb::MysqlDb(const std::string& url, bool writable)
    : url_(parse_server_url(url, "mysql", 3306)), writable_(writable) {
  if (url_.user.empty()) throw Error("--db '" + url_.display + "': expected mysql://USER[:PASSWORD]@HOST:PORT/DB");
  db_ = mysql_init(nullptr);
  check(db_ != nullptr, url_.display + ": out of memory");
  unsigned int connect_timeout = 10;
  mysql_options(db_, MYSQL_OPT_CONNECT_TIMEOUT, &connect_timeout);
  mysql_options(db_, MYSQL_SET_CHARSET_NAME, "utf8mb4");
  if (!mysql_real_connect(db_, url_.host.c_str(), url_.user.c_str(), url_.password.c_str(), nullptr,
                          static_cast<unsigned>(url_.port), nullptr, 0)) {
    const std::string msg = mysql_error(db_);
    mysql_close(db_);
    db_ = nullptr;
    throw Error(url_.display + ": cannot connect: " + msg);
  }
  const std::string info = mysql_get_server_info(db_);
  mariadb_ = info.find("MariaDB") != std::string::npos;
  if (writable_)
    exec("CREATE DATABASE IF NOT EXISTS `" + url_.database + "` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin");
  if (mysql_select_db(db_, url_.database.c_str()) != 0) {
    const std::string msg = mysql_error(db_);
    mysql_close(db_);
    db_ = nullptr;
    throw Error(url_.display + ": cannot use database '" + url_.database + "': " + msg);
  }
  // Exact decimal division for ratios (SUM(a) * 1.0 / SUM(b)); servers without the variable
  // (Doris, StarRocks) keep their own.
  try_exec("SET SESSION div_precision_increment = 30");
  if (!writable_) try_exec("SET SESSION TRANSACTION READ ONLY");
}

MysqlDb::~MysqlDb() {
  if (db_) mysql_close(db_);
}

std::string MysqlDb::server() {
  return std::string(mariadb_ ? "MariaDB " : "MySQL-protocol server ") + mysql_get_server_info(db_);
}

void MysqlDb::exec(const std::string& sql) {
  if (mysql_real_query(db_, sql.data(), sql.size()) != 0) throw Error(url_.display + ": " + mysql_error(db_));
  if (MYSQL_RES* r = mysql_store_result(db_)) mysql_free_result(r);
}

bool MysqlDb::try_exec(const std::string& sql) {
  if (mysql_real_query(db_, sql.data(), sql.size()) != 0) return false;
  if (MYSQL_RES* r = mysql_store_result(db_)) mysql_free_result(r);
  return true;
}

void MysqlDb::set_time_limit(int timeout_ms) {
  if (timeout_ms == time_limit_ms_) return;
  // MariaDB: max_statement_time (seconds); MySQL: max_execution_time (ms); Doris/StarRocks:
  // query_timeout (seconds).
  char secs[32];
  std::snprintf(secs, sizeof secs, "%.3f", timeout_ms / 1000.0);
  if (mariadb_) {
    exec(std::string("SET SESSION max_statement_time = ") + secs);
  } else if (!try_exec("SET SESSION max_execution_time = " + std::to_string(timeout_ms))) {
    try_exec("SET query_timeout = " + std::to_string(std::max(1, (timeout_ms + 999) / 1000)));
  }
  time_limit_ms_ = timeout_ms;
}

QueryResult MysqlDb::query(const std::string& sql, const std::vector<Value>& params, const QueryOptions& opt) {
  set_time_limit(opt.timeout_ms);
  Stmt st(mysql_stmt_init(db_), mysql_stmt_close);
  check(st != nullptr, url_.display + ": out of memory");
  if (mysql_stmt_prepare(st.get(), sql.data(), sql.size()) != 0)
    throw Error(url_.display + ": SQL error: " + mysql_stmt_error(st.get()));
  const unsigned long want = mysql_stmt_param_count(st.get());
  if (want != params.size())
    throw Error(url_.display + ": the SQL has " + std::to_string(want) + " parameters, " +
                std::to_string(params.size()) + " values were given");
  Binder in(params);
  if (!params.empty() && mysql_stmt_bind_param(st.get(), in.binds.data()) != 0)
    throw Error(url_.display + ": cannot bind parameters: " + mysql_stmt_error(st.get()));
  // The server's error for the statement; 1969 (MariaDB) / 3024 (MySQL) is the time limit.
  auto failed = [&](const std::string& what) {
    const unsigned code = std::max(mysql_stmt_errno(st.get()), mysql_errno(db_));
    if (code == 1969 || code == 3024)
      throw Error(url_.display + ": the query ran past its timeout of " + std::to_string(opt.timeout_ms) + " ms");
    std::string msg = mysql_stmt_error(st.get());
    if (msg.empty()) msg = mysql_error(db_);
    if (msg.empty()) msg = "error " + std::to_string(code);
    throw Error(url_.display + ": " + what + ": " + msg);
  };
  if (mysql_stmt_execute(st.get()) != 0) failed("SQL error");
  QueryResult r;
  std::unique_ptr<MYSQL_RES, decltype(&mysql_free_result)> meta(mysql_stmt_result_metadata(st.get()),
                                                                mysql_free_result);
  if (!meta) return r;
  const unsigned n = mysql_num_fields(meta.get());
  MYSQL_FIELD* fields = mysql_fetch_fields(meta.get());
  for (unsigned c = 0; c < n; ++c) r.columns.emplace_back(fields[c].name);

  enum class Kind { Int, Real, Decimal, Time, Text };
  std::vector<Kind> kinds(n);
  std::vector<MYSQL_BIND> out(n);
  std::vector<long long> ints(n);
  std::vector<double> reals(n);
  std::vector<MYSQL_TIME> times(n);
  std::vector<std::vector<char>> texts(n, std::vector<char>(256));
  std::vector<unsigned long> lengths(n);
  std::vector<my_bool> nulls(n), errors(n);
  for (unsigned c = 0; c < n; ++c) {
    auto& b = out[c];
    std::memset(&b, 0, sizeof b);
    b.is_null = &nulls[c];
    b.length = &lengths[c];
    b.error = &errors[c];
    switch (fields[c].type) {
      case MYSQL_TYPE_TINY:
      case MYSQL_TYPE_SHORT:
      case MYSQL_TYPE_LONG:
      case MYSQL_TYPE_INT24:
      case MYSQL_TYPE_LONGLONG:
      case MYSQL_TYPE_YEAR:
        kinds[c] = Kind::Int;
        b.buffer_type = MYSQL_TYPE_LONGLONG;
        b.buffer = &ints[c];
        b.is_unsigned = (fields[c].flags & UNSIGNED_FLAG) != 0;
        break;
      case MYSQL_TYPE_FLOAT:
      case MYSQL_TYPE_DOUBLE:
        kinds[c] = Kind::Real;
        b.buffer_type = MYSQL_TYPE_DOUBLE;
        b.buffer = &reals[c];
        break;
      case MYSQL_TYPE_DATE:
      case MYSQL_TYPE_DATETIME:
      case MYSQL_TYPE_TIMESTAMP:
        kinds[c] = Kind::Time;
        b.buffer_type = fields[c].type;
        b.buffer = &times[c];
        break;
      default:
        kinds[c] = fields[c].type == MYSQL_TYPE_DECIMAL || fields[c].type == MYSQL_TYPE_NEWDECIMAL ? Kind::Decimal
                                                                                                   : Kind::Text;
        b.buffer_type = MYSQL_TYPE_STRING;
        b.buffer = texts[c].data();
        b.buffer_length = texts[c].size();
    }
  }
  if (mysql_stmt_bind_result(st.get(), out.data()) != 0)
    throw Error(url_.display + ": cannot read the result: " + mysql_stmt_error(st.get()));
  for (;;) {
    const int rc = mysql_stmt_fetch(st.get());
    if (rc == MYSQL_NO_DATA) break;
    if (rc == 1) failed("reading rows failed");
    if (static_cast<int64_t>(r.rows.size()) >= opt.max_rows) {
      r.truncated = true;
      break;
    }
    std::vector<Value> row(n);
    for (unsigned c = 0; c < n; ++c) {
      if (nulls[c]) continue;
      switch (kinds[c]) {
        case Kind::Int:
          row[c] = out[c].is_unsigned && static_cast<unsigned long long>(ints[c]) > INT64_MAX
                       ? Value::real(static_cast<double>(static_cast<unsigned long long>(ints[c])))
                       : Value::integer(ints[c]);
          break;
        case Kind::Real:
          row[c] = Value::real(reals[c]);
          break;
        case Kind::Time: {
          const auto& t = times[c];
          char buf[32];
          if (fields[c].type == MYSQL_TYPE_DATE)
            std::snprintf(buf, sizeof buf, "%04u-%02u-%02u", t.year, t.month, t.day);
          else
            std::snprintf(buf, sizeof buf, "%04u-%02u-%02u %02u:%02u:%02u", t.year, t.month, t.day, t.hour, t.minute,
                          t.second);
          row[c] = Value::text(buf);
          break;
        }
        case Kind::Decimal:
        case Kind::Text: {
          std::string s;
          if (lengths[c] > texts[c].size()) {  // truncated: read the whole value
            std::vector<char> big(lengths[c]);
            MYSQL_BIND b;
            std::memset(&b, 0, sizeof b);
            b.buffer_type = MYSQL_TYPE_STRING;
            b.buffer = big.data();
            b.buffer_length = big.size();
            if (mysql_stmt_fetch_column(st.get(), &b, c, 0) != 0)
              throw Error(url_.display + ": reading a long value failed: " + mysql_stmt_error(st.get()));
            s.assign(big.data(), big.size());
          } else {
            s.assign(texts[c].data(), lengths[c]);
          }
          if (kinds[c] == Kind::Text) {
            row[c] = Value::text(std::move(s));
          } else if (fields[c].decimals == 0 && s.size() < 19) {
            row[c] = Value::integer(std::stoll(s));
          } else {
            row[c] = Value::real(std::stod(s));
          }
        }
      }
    }
    r.rows.push_back(std::move(row));
  }
  return r;
}

const Schema& MysqlDb::schema() {
  if (have_schema_) return schema_;
  QueryOptions o;
  o.max_rows = 1000000;
  o.timeout_ms = 10000;
  const auto r = query(
      "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, "
      "ORDINAL_POSITION",
      {Value::text(url_.database)}, o);
  for (auto& row : r.rows) schema_[row[0].to_string()].push_back(row[1].to_string());
  have_schema_ = true;
  return schema_;
}

void MysqlDb::load_table(const TableDef& t, const std::vector<std::vector<Value>>& rows) {
  check(writable_, url_.display + ": the connection is read-only");
  std::string cols, key, marks;
  for (auto& c : t.columns) {
    cols += (cols.empty() ? "`" : ", `") + c.name + "` " + my_type(c.type);
    marks += marks.empty() ? "?" : ", ?";
  }
  for (auto& k : t.key) key += (key.empty() ? "`" : ", `") + k + "`";
  exec("DROP TABLE IF EXISTS `" + t.name + "`");
  exec("CREATE TABLE `" + t.name + "` (" + cols + (key.empty() ? "" : ", PRIMARY KEY (" + key + ")") +
       ") DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin");
  const size_t batch = 500;
  exec("START TRANSACTION");
  for (size_t i = 0; i < rows.size(); i += batch) {
    const size_t end = std::min(rows.size(), i + batch);
    std::string sql = "INSERT INTO `" + t.name + "` VALUES ";
    std::vector<Value> values;
    for (size_t r = i; r < end; ++r) {
      check(rows[r].size() == t.columns.size(), url_.display + ": table '" + t.name + "': row has " +
                                                    std::to_string(rows[r].size()) + " values, want " +
                                                    std::to_string(t.columns.size()));
      sql += (r == i ? "(" : ", (") + marks + ")";
      values.insert(values.end(), rows[r].begin(), rows[r].end());
    }
    Stmt st(mysql_stmt_init(db_), mysql_stmt_close);
    Binder in(values);
    if (mysql_stmt_prepare(st.get(), sql.data(), sql.size()) != 0 ||
        mysql_stmt_bind_param(st.get(), in.binds.data()) != 0 || mysql_stmt_execute(st.get()) != 0)
      throw Error(url_.display + ": loading table '" + t.name + "' failed: " + mysql_stmt_error(st.get()));
  }
  exec("COMMIT");
  have_schema_ = false;
  schema_.clear();
}

}  // namespace yak::ask
