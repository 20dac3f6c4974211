#include "yak/ask/database.h"

#include <cctype>
#include <cmath>
#include <cstdio>

#include "yak/ask/clickhouse_db.h"
#include "yak/ask/mysql_db.h"
#include "yak/ask/sqlite_db.h"
#include "yak/base/error.h"

namespace yak::ask {

std::string Value::to_string() const {
  switch (type) {
    case Type::Null:
      return "";
    case Type::Int:
      return std::to_string(i);
    case Type::Real: {
      if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 1e15) return std::to_string(static_cast<int64_t>(d));
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.6f", d);
      std::string s = buf;
      while (!s.empty() && s.back() == '0') s.pop_back();
      if (!s.empty() && s.back() == '.') s.pop_back();
      return s;
    }
    case Type::Text:
      return s;
  }
  return "";
}

Json Value::to_json() const {
  switch (type) {
    case Type::Null:
      return nullptr;
    case Type::Int:
      return i;
    case Type::Real:
      return std::isfinite(d) ? Json(d) : Json(nullptr);
    case Type::Text:
      return s;
  }
  return nullptr;
}

void Database::load_table(const TableDef& t, const std::vector<std::vector<Value>>&) {
  throw Error(server() + ": cannot load table '" + t.name + "' (loading is not supported on this connection)");
}

namespace {

std::string percent_decode(const std::string& s, const std::string& url) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    check(i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
              std::isxdigit(static_cast<unsigned char>(s[i + 2])),
          "--db '" + url + "': bad %-escape");
    out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
    i += 2;
  }
  return out;
}

}  // namespace

ServerUrl parse_server_url(const std::string& url, const std::string& scheme, int default_port) {
  const std::string form = scheme + "://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE";
  const std::string prefix = scheme + "://";
  ServerUrl u;
  u.port = default_port;
  if (url.rfind(prefix, 0) != 0) throw Error("--db: expected " + form);
  std::string rest = url.substr(prefix.size());
  const auto slash = rest.find('/');
  std::string display_auth;
  if (slash == std::string::npos || slash + 1 >= rest.size())
    throw Error("--db '" + scheme + "://...': expected " + form + " (no database name)");
  u.database = rest.substr(slash + 1);
  rest.resize(slash);
  const auto at = rest.rfind('@');
  if (at != std::string::npos) {
    std::string auth = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const auto colon = auth.find(':');
    u.user = percent_decode(auth.substr(0, colon), scheme + "://...");
    if (colon != std::string::npos) u.password = percent_decode(auth.substr(colon + 1), scheme + "://...");
    display_auth = auth.substr(0, colon) + (colon != std::string::npos ? ":***" : "") + "@";
  }
  const auto colon = rest.rfind(':');
  if (colon != std::string::npos) {
    const auto port = rest.substr(colon + 1);
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos)
      throw Error("--db '" + scheme + "://" + display_auth + rest + "/" + u.database + "': the port must be a number");
    u.port = std::stoi(port);
    rest.resize(colon);
  }
  u.host = rest;
  u.display = scheme + "://" + display_auth + u.host + ":" + std::to_string(u.port) + "/" + u.database;
  if (u.host.empty()) throw Error("--db '" + u.display + "': no host (expected " + form + ")");
  if (u.port <= 0 || u.port > 65535) throw Error("--db '" + u.display + "': the port must be in 1..65535");
  for (char c : u.database)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_')
      throw Error("--db '" + u.display + "': the database name should be letters, digits and _");
  return u;
}

std::string redact_url(const std::string& url) {
  for (const auto& [scheme, port] : {std::pair<std::string, int>{"clickhouse", 8123}, {"mysql", 3306}})
    if (url.rfind(scheme + "://", 0) == 0) {
      try {
        return parse_server_url(url, scheme, port).display;
      } catch (const Error&) {
        return scheme + "://(unreadable URL)";
      }
    }
  return url;
}

std::unique_ptr<Database> open_database(const std::string& url, bool writable) {
  if (url.rfind("clickhouse://", 0) == 0) return std::make_unique<ClickHouseDb>(url, writable);
  if (url.rfind("mysql://", 0) == 0) return std::make_unique<MysqlDb>(url, writable);
  return std::make_unique<SqliteDb>(sqlite_path_from_url(url), writable);
}

}  // namespace yak::ask
