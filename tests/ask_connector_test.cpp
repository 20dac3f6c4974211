// Server connectors without a server: URLs, the one ClickHouse escaping function, parameter
// inlining, the ClickHouse and MySQL dialects through the translator and the SQL guard.
// tests/cli/ask_clickhouse.sh and ask_mariadb.sh run the same questions on real servers.
#include <gtest/gtest.h>

#include <string>

#include "yak/ask/clickhouse_db.h"
#include "yak/ask/sql_guard.h"
#include "yak/ask/translator.h"
#include "yak/base/error.h"

using namespace yak::ask;

TEST(ask_connector, ServerUrls) {
  auto u = parse_server_url("mysql://reader:p%40ss@127.0.0.1:9030/music", "mysql", 3306);
  EXPECT_EQ(u.user, "reader");
  EXPECT_EQ(u.password, "p@ss");
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.port, 9030);
  EXPECT_EQ(u.database, "music");
  EXPECT_EQ(u.display, "mysql://reader:***@127.0.0.1:9030/music");  // never the password
  auto c = parse_server_url("clickhouse://localhost/db1", "clickhouse", 8123);
  EXPECT_EQ(c.port, 8123);
  EXPECT_TRUE(c.user.empty());
  auto bad = [](const std::string& url, const std::string& needle) {
    try {
      parse_server_url(url, "clickhouse", 8123);
      FAIL() << url;
    } catch (const yak::Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  bad("clickhouse://host:8123", "no database name");
  bad("clickhouse://host:80x/db", "port must be a number");
  bad("clickhouse://host:70000/db", "1..65535");
  bad("clickhouse://:8123/db", "no host");
  bad("clickhouse://host/db;drop", "letters, digits and _");
  bad("mysql://host/db", "expected clickhouse://");
  EXPECT_THROW(open_database("postgres://x/y"), yak::Error);
  EXPECT_THROW(open_database("mysql://127.0.0.1:1/db"), yak::Error);  // no user
}

TEST(ask_connector, ClickHouseLiteralsEscapeEverythingThatEndsAString) {
  EXPECT_EQ(clickhouse_literal(Value::text("QQ音乐")), "'QQ音乐'");
  EXPECT_EQ(clickhouse_literal(Value::text("a'b")), "'a\\'b'");
  EXPECT_EQ(clickhouse_literal(Value::text("a\\'; DROP TABLE songs; --")), "'a\\\\\\'; DROP TABLE songs; --'");
  EXPECT_EQ(clickhouse_literal(Value::text(std::string("x\ny\0z", 5))), "'x\\x0Ay\\x00z'");
  EXPECT_EQ(clickhouse_literal(Value::integer(-42)), "-42");
  EXPECT_EQ(clickhouse_literal(Value::real(0.1)), "0.10000000000000001");
  EXPECT_EQ(clickhouse_literal(Value::null()), "NULL");
  EXPECT_THROW(clickhouse_literal(Value::real(1.0 / 0.0)), yak::Error);
}

TEST(ask_connector, ParametersBecomeLiteralsOnlyOutsideStrings) {
  const std::string sql = "SELECT '?' AS q, x FROM t WHERE a = ? AND b IN (?, ?) -- ?\n";
  EXPECT_EQ(inline_parameters(sql, {Value::text("it's"), Value::integer(1), Value::text("?")}, clickhouse_literal, "t"),
            "SELECT '?' AS q, x FROM t WHERE a = 'it\\'s' AND b IN (1, '?') -- ?\n");
  EXPECT_THROW(inline_parameters(sql, {Value::integer(1)}, clickhouse_literal, "t"), yak::Error);
  EXPECT_THROW(inline_parameters("SELECT 1", {Value::integer(1)}, clickhouse_literal, "t"), yak::Error);
}

namespace {

const std::string kModel = R"(
name: shop
tables:
  - name: facts
    time_dimension: dt
    identifiers: [{name: item_id, type: foreign}]
  - name: items
    identifiers: [{name: item_id, type: primary}, {name: brand_id, type: foreign}]
  - name: brands
    identifiers: [{name: brand_id, type: primary}]
dimensions:
  - {name: dt, type: time, table: facts}
  - {name: shop, table: facts}
  - {name: item, table: items, expr: title}
  - {name: brand, table: brands, expr: name}
metrics:
  - {name: sales, table: facts, expr: SUM(qty)}
)";

Translation tr(const SqlDialect& d, const std::string& grain, std::vector<std::string> by) {
  static const auto m = SemanticModel::parse(kModel, "shop.yaml");
  Dsl q;
  q.metrics = {"sales"};
  q.group_by = std::move(by);
  q.time_dimension = "dt";
  q.start = "2024-01-01";
  q.granularity = grain;
  q.filters = {{"shop", "=", {"north"}}};
  return translate(q, m, d);
}

std::string guarded(const Translation& t, const std::string& dialect) {
  GuardOptions g;
  g.dialect = dialect;
  return guard_sql(t.sql, g).sql;
}

}  // namespace

TEST(ask_connector, ClickHouseDialectBucketsAndNestsJoins) {
  ClickHouseDialect ch;
  auto t = tr(ch, "month", {});
  EXPECT_EQ(guarded(t, "clickhouse"),
            "SELECT formatDateTime(facts.dt, '%Y-%m') AS month, sum(facts.qty) AS sales FROM facts WHERE "
            "((facts.shop = ?) AND (facts.dt >= ?)) GROUP BY formatDateTime(facts.dt, '%Y-%m') ORDER BY month, sales "
            "LIMIT 1000");
  EXPECT_EQ(t.params.size(), 2u);
  EXPECT_EQ(ch.time_bucket("d", "week"), "toString(toMonday(d))");
  EXPECT_EQ(ch.time_bucket("d", "quarter"), "concat(toString(toYear(d)), '-Q', toString(toQuarter(d)))");
  // Two joins: each table read through a subquery with table__column names, joined in pairs.
  t = tr(ch, "", {"brand"});
  EXPECT_EQ(t.sql,
            "SELECT brands__name AS brand, SUM(facts__qty) AS sales FROM (SELECT * FROM (SELECT * FROM (SELECT dt AS "
            "facts__dt, item_id AS facts__item_id, qty AS facts__qty, shop AS facts__shop FROM facts) JOIN (SELECT "
            "brand_id AS items__brand_id, item_id AS items__item_id FROM items) ON facts__item_id = items__item_id) "
            "JOIN (SELECT brand_id AS brands__brand_id, name AS brands__name FROM brands) ON items__brand_id = "
            "brands__brand_id) WHERE facts__shop = ? AND facts__dt >= ? GROUP BY brands__name ORDER BY brand ASC, "
            "sales ASC");
  EXPECT_NO_THROW(guarded(t, "clickhouse"));
  // SQLite spelling of a join stays flat.
  EXPECT_EQ(tr(SqliteDialect(), "", {"brand"}).sql.find("__"), std::string::npos);
}

TEST(ask_connector, MysqlDialectBucketsAndQuotesWithBackticks) {
  MysqlDialect my;
  EXPECT_EQ(my.time_bucket("d", "week"), "DATE_FORMAT(SUBDATE(d, WEEKDAY(d)), '%Y-%m-%d')");
  EXPECT_EQ(my.time_bucket("d", "quarter"), "CONCAT(YEAR(d), '-Q', QUARTER(d))");
  const auto sql = guarded(tr(my, "quarter", {"item"}), "mysql");
  EXPECT_NE(sql.find("CONCAT(YEAR(facts.dt), '-Q', QUARTER(facts.dt)) AS quarter"), std::string::npos) << sql;
  GuardOptions g;
  g.dialect = "mysql";
  EXPECT_EQ(guard_sql("SELECT \"select\" FROM t", g).sql, "SELECT `select` FROM t LIMIT 1000");
}

TEST(ask_connector, GuardFunctionListsFollowTheDialect) {
  GuardOptions ch, my, lite;
  ch.dialect = "clickhouse", my.dialect = "mysql";
  EXPECT_NO_THROW(guard_sql("SELECT toMonday(dt) FROM t", ch));
  EXPECT_EQ(guard_sql("SELECT TOMONDAY(dt), SUM(x) FROM t", ch).sql, "SELECT toMonday(dt), sum(x) FROM t LIMIT 1000");
  EXPECT_THROW(guard_sql("SELECT toMonday(dt) FROM t", lite), yak::Error);
  EXPECT_THROW(guard_sql("SELECT file('/etc/passwd') FROM t", ch), yak::Error);
  EXPECT_THROW(guard_sql("SELECT url('http://x', CSV, 'a String') FROM t", ch), yak::Error);
  EXPECT_THROW(guard_sql("SELECT LOAD_FILE('/etc/passwd') FROM t", my), yak::Error);
  EXPECT_THROW(guard_sql("SELECT SLEEP(10) FROM t", my), yak::Error);
  EXPECT_THROW(guard_sql("SELECT strftime('%Y', dt) FROM t", my), yak::Error);
  EXPECT_NO_THROW(guard_sql("SELECT DATE_FORMAT(dt, '%Y') FROM t", my));
  // ClickHouse's ways out of one read-only SELECT: table functions, other databases, settings,
  // output clauses.
  for (const char* q : {"SELECT * FROM file('/etc/passwd', 'TSV', 'a String')", "SELECT * FROM system.tables",
                        "SELECT * FROM remote('h', system.one)", "SELECT * FROM t SETTINGS readonly = 0",
                        "SELECT * FROM t FORMAT TSV", "SELECT * FROM t INTO OUTFILE '/tmp/x'"})
    EXPECT_THROW(guard_sql(q, ch), yak::Error) << q;
  // Backslashes mean different things per server and mode: refused outside SQLite.
  EXPECT_THROW(guard_sql("SELECT 'a\\' FROM t", ch), yak::Error);
  EXPECT_THROW(guard_sql("SELECT 'a\\' FROM t", my), yak::Error);
  EXPECT_NO_THROW(guard_sql("SELECT 'a\\' FROM t", lite));
}
