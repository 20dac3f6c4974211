#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "yak/ask/demo.h"
#include "yak/ask/sql_guard.h"
#include "yak/ask/sqlite_db.h"
#include "yak/base/error.h"

using namespace yak::ask;

namespace {

class ask_guard : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::filesystem::temp_directory_path() / ("yak_ask_guard_" + std::to_string(::getpid()));
    DemoOptions o;
    o.artists = 20, o.albums = 40, o.songs = 100, o.songs_per_day = 6, o.start = "2024-12-01";
    write_demo_database(dir_ / "m.db", o);
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }
  static std::filesystem::path dir_;

  GuardOptions opts() {
    SqliteDb db(dir_ / "m.db");
    GuardOptions o;
    o.schema = db.schema();
    o.sensitive = {"artists.gender"};
    return o;
  }
  void refused(const std::string& sql, const std::string& needle = "") {
    try {
      auto g = guard_sql(sql, opts());
      ADD_FAILURE() << "accepted: " << sql << "\n  as: " << g.sql;
    } catch (const yak::Error& e) {
      const std::string w = e.what();
      EXPECT_EQ(w.rfind("SQL refused: ", 0), 0u) << w;
      if (!needle.empty()) EXPECT_NE(w.find(needle), std::string::npos) << sql << " -> " << w;
    }
  }
  QueryResult run(const std::string& sql) {
    SqliteDb db(dir_ / "m.db");
    return db.query(sql, {}, {});
  }
  std::string scalar(const std::string& sql) { return run(sql).rows.at(0).at(0).to_string(); }
};
std::filesystem::path ask_guard::dir_;

}  // namespace

TEST_F(ask_guard, AcceptsTheSubsetAndPrintsEquivalentSql) {
  const std::vector<std::string> ok = {
      "SELECT COUNT(*) FROM songs",
      "select title, duration_sec from songs where language = 'zh' and duration_sec between 200 and 300 order by 2 "
      "desc, 1 limit 7",
      "SELECT a.name, SUM(p.plays) AS total FROM daily_plays AS p JOIN songs s ON p.song_id = s.song_id "
      "LEFT OUTER JOIN artists a ON a.artist_id = s.artist_id WHERE p.dt >= '2024-12-10' GROUP BY a.name "
      "HAVING SUM(p.plays) > 0 ORDER BY total DESC LIMIT 5",
      "WITH t AS (SELECT platform, SUM(plays) AS n FROM daily_plays GROUP BY platform) SELECT * FROM t ORDER BY n",
      "SELECT strftime('%Y-%m', dt) AS m, COUNT(DISTINCT song_id) FROM daily_plays GROUP BY 1",
      "SELECT CASE WHEN plays > 1000 THEN 'hot' WHEN plays > 100 THEN 'warm' ELSE 'cold' END AS k, COUNT(*) "
      "FROM daily_plays GROUP BY k",
      "SELECT title FROM songs WHERE song_id IN (SELECT song_id FROM daily_plays WHERE plays > 5000) AND title "
      "NOT LIKE '%之歌' AND album_id IS NOT NULL",
      "SELECT name FROM artists WHERE EXISTS (SELECT 1 FROM songs WHERE songs.artist_id = artists.artist_id)",
      "SELECT CAST(debut_year AS TEXT) || '-' || region, -debut_year, ~1, 1.5e3, X'41' FROM artists",
      "SELECT title FROM songs UNION SELECT title FROM albums EXCEPT SELECT '夜空之歌'",
      "SELECT \"title\", [language] FROM `songs` WHERE title = 'it''s'",
      "SELECT title FROM songs; ",
  };
  for (auto& sql : ok) {
    GuardedSql g;
    ASSERT_NO_THROW(g = guard_sql(sql, opts())) << sql;
    // The printed tree parses to itself and runs to the same rows as the original.
    EXPECT_EQ(guard_sql(g.sql, opts()).sql, g.sql);
    const std::string orig = sql.find("limit") != std::string::npos || sql.find("LIMIT") != std::string::npos
                                 ? sql
                                 : "SELECT * FROM (" + sql.substr(0, sql.find(';')) + ") LIMIT 1000";
    auto a = run(orig), b = run(g.sql);
    ASSERT_EQ(a.rows.size(), b.rows.size()) << g.sql;
    for (size_t i = 0; i < a.rows.size(); ++i)
      for (size_t c = 0; c < a.rows[i].size(); ++c) EXPECT_EQ(a.rows[i][c].to_string(), b.rows[i][c].to_string());
  }
}

TEST_F(ask_guard, RefusesWritesStackedStatementsAndTricks) {
  refused("DROP TABLE songs", "DROP");
  refused("DELETE FROM songs", "DELETE");
  refused("INSERT INTO labels VALUES (99, 'x')", "INSERT");
  refused("UPDATE songs SET title = 'x'", "UPDATE");
  refused("REPLACE INTO labels VALUES (1, 'x')", "REPLACE");
  refused("PRAGMA table_info(songs)", "PRAGMA");
  refused("ATTACH DATABASE '/tmp/x.db' AS x", "ATTACH");
  refused("VACUUM", "VACUUM");
  refused("CREATE TABLE t (x)", "CREATE");
  refused("SELECT 1; DROP TABLE songs", "one statement");
  refused("SELECT 1;; SELECT 2", "one statement");
  refused("SELECT title FROM songs /* hide */; DELETE FROM songs", "one statement");
  refused("SELECT title FROM songs WHERE title = '' ; DROP TABLE songs; --'", "one statement");
  refused("SELECT 'unbalanced", "unterminated string");
  refused("SELECT \"unbalanced", "unterminated quoted name");
  refused("SELECT 1 /* never closed", "unterminated comment");
  refused(std::string("SELECT 1\0; DROP TABLE songs", 27), "NUL");
  refused("WITH x AS (DELETE FROM songs RETURNING *) SELECT * FROM x", "DELETE");
  refused("SELECT load_extension('/tmp/evil.so')", "LOAD_EXTENSION");
  refused("SELECT readfile('/etc/passwd')", "READFILE");
  refused("SELECT randomblob(1000000000)", "RANDOMBLOB");
  refused("SELECT * FROM pragma_table_info('songs')", "table-valued");
  refused("SELECT * FROM sqlite_master", "internal");
  refused("SELECT * FROM main.songs", "schema-qualified");
  refused("SELECT * FROM nosuchtable", "unknown table");
  refused("SELECT main.songs.title FROM songs", "three-part");
  refused("SELECT title FROM songs ORDER BY title COLLATE nocase", "COLLATE");
  refused("SELECT 1 INTO x", "");
  refused("", "expected SELECT");
  refused(";", "");
  refused("SELECT", "expression");
  refused("SELECT title FROM songs WHERE title = ?1", "parameters");
  refused("SELECT (" + std::string(5000, '(') + "1" + std::string(5001, ')'), "too deep");
  std::string minus;
  for (int i = 0; i < 3000; ++i) minus += "- ";
  refused("SELECT " + minus + "1", "too deep");
}

TEST_F(ask_guard, SensitiveColumnsNeedPermission) {
  refused("SELECT gender FROM artists", "sensitive");
  refused("SELECT name FROM artists WHERE gender = '女'", "sensitive");
  refused("SELECT * FROM artists", "sensitive");
  refused("SELECT a.* FROM songs s JOIN artists a ON s.artist_id = a.artist_id", "sensitive");
  refused("SELECT title FROM songs UNION SELECT GENDER FROM artists", "sensitive");
  refused("SELECT x FROM (SELECT gender AS x FROM artists)", "sensitive");
  refused("SELECT COUNT(*) FROM artists JOIN artists b USING (gender)", "sensitive");
  auto o = opts();
  o.allow_sensitive = true;
  EXPECT_NO_THROW(guard_sql("SELECT gender, COUNT(*) FROM artists GROUP BY gender", o));
  EXPECT_NO_THROW(guard_sql("SELECT * FROM songs", opts()));
}

TEST_F(ask_guard, EnforcesTheLimit) {
  auto o = opts();
  o.max_limit = 50;
  EXPECT_EQ(guard_sql("SELECT title FROM songs", o).limit, 50);
  EXPECT_NE(guard_sql("SELECT title FROM songs", o).sql.find("LIMIT 50"), std::string::npos);
  EXPECT_EQ(guard_sql("SELECT title FROM songs LIMIT 10", o).limit, 10);
  EXPECT_EQ(guard_sql("SELECT title FROM songs LIMIT 100000", o).limit, 50);
  EXPECT_EQ(guard_sql("SELECT title FROM songs LIMIT (SELECT 100000)", o).limit, 50);
  EXPECT_EQ(guard_sql("SELECT title FROM songs LIMIT -1", o).limit, 50);
  EXPECT_EQ(guard_sql("SELECT title FROM songs LIMIT 5, 100", o).limit, 50);
  EXPECT_EQ(run(guard_sql("SELECT title FROM songs LIMIT 100000", o).sql).rows.size(), 50u);
  EXPECT_THROW(guard_sql("SELECT title FROM songs LIMIT 5 OFFSET (SELECT 1)", o), yak::Error);
}

TEST_F(ask_guard, RowFiltersReachEverySelectOfTheTable) {
  auto o = opts();
  o.row_filters = {{"daily_plays", "platform = 'QQ音乐'"}};
  const auto want = scalar("SELECT SUM(plays) FROM daily_plays WHERE platform = 'QQ音乐'");
  EXPECT_EQ(scalar(guard_sql("SELECT SUM(plays) FROM daily_plays", o).sql), want);
  EXPECT_EQ(scalar(guard_sql("SELECT SUM(p.plays) FROM daily_plays p JOIN songs s ON s.song_id = p.song_id", o).sql),
            want);
  EXPECT_EQ(scalar(guard_sql("SELECT SUM(plays) FROM daily_plays WHERE 1 = 1 OR 2 = 2", o).sql), want);
  EXPECT_EQ(scalar(guard_sql("SELECT SUM(n) FROM (SELECT plays AS n FROM daily_plays)", o).sql), want);
  EXPECT_EQ(scalar(guard_sql("WITH t AS (SELECT * FROM daily_plays) SELECT SUM(plays) FROM t", o).sql), want);
  // OR in the user's WHERE cannot escape: the filter is ANDed around it.
  EXPECT_EQ(
      scalar(
          guard_sql("SELECT COUNT(*) FROM daily_plays WHERE platform = '酷狗音乐' OR platform != '酷狗音乐'", o).sql),
      scalar("SELECT COUNT(*) FROM daily_plays WHERE platform = 'QQ音乐'"));
  o.row_filters = {{"daily_plays", "platform = 'x'; DROP TABLE songs"}};
  EXPECT_THROW(guard_sql("SELECT 1 FROM daily_plays", o), yak::Error);
  o.row_filters = {{"daily_plays", "song_id IN (SELECT song_id FROM songs)"}};
  EXPECT_THROW(guard_sql("SELECT 1 FROM daily_plays", o), yak::Error);
}
