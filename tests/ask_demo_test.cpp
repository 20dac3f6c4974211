#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "yak/ask/demo.h"
#include "yak/ask/sqlite_db.h"
#include "yak/base/error.h"

using namespace yak::ask;

namespace {

std::filesystem::path tmpdir(const std::string& tag) {
  auto d = std::filesystem::temp_directory_path() / ("yak_ask_demo_" + tag + std::to_string(::getpid()));
  std::filesystem::create_directories(d);
  return d;
}

std::string one(SqliteDb& db, const std::string& sql) {
  auto r = db.query(sql, {}, {});
  EXPECT_EQ(r.rows.size(), 1u) << sql;
  return r.rows.at(0).at(0).to_string();
}

DemoOptions small() {
  DemoOptions o;
  o.artists = 30, o.albums = 60, o.songs = 150, o.songs_per_day = 8, o.start = "2024-11-01";
  return o;
}

}  // namespace

TEST(ask_demo, SameSeedSameDataOtherSeedOtherData) {
  const auto d = tmpdir("seed");
  write_demo_database(d / "a.db", small());
  write_demo_database(d / "b.db", small());
  auto o = small();
  o.seed = 7;
  write_demo_database(d / "c.db", o);
  SqliteDb a(d / "a.db"), b(d / "b.db"), c(d / "c.db");
  const std::string digest =
      "SELECT SUM(plays), SUM(likes * 3 + shares * 7 + listeners), COUNT(*), group_concat(song_id) FROM daily_plays";
  EXPECT_EQ(a.query(digest, {}, {}).rows[0][3].s, b.query(digest, {}, {}).rows[0][3].s);
  EXPECT_EQ(one(a, "SELECT SUM(plays) FROM daily_plays"), one(b, "SELECT SUM(plays) FROM daily_plays"));
  EXPECT_EQ(one(a, "SELECT group_concat(name) FROM artists"), one(b, "SELECT group_concat(name) FROM artists"));
  EXPECT_NE(one(a, "SELECT group_concat(name) FROM artists"), one(c, "SELECT group_concat(name) FROM artists"));
  std::filesystem::remove_all(d);
}

TEST(ask_demo, TablesHaveTheDocumentedShape) {
  const auto d = tmpdir("shape");
  auto st = write_demo_database(d / "m.db", small());
  SqliteDb db(d / "m.db");
  EXPECT_EQ(st.songs, 150);
  EXPECT_EQ(one(db, "SELECT COUNT(*) FROM songs"), "150");
  EXPECT_EQ(one(db, "SELECT COUNT(*) FROM artists"), "30");
  EXPECT_EQ(one(db, "SELECT COUNT(DISTINCT name) FROM artists"), "30");
  EXPECT_EQ(one(db, "SELECT COUNT(DISTINCT title) FROM songs"), "150");
  EXPECT_EQ(one(db, "SELECT COUNT(*) FROM daily_plays"), std::to_string(st.daily_plays));
  EXPECT_EQ(one(db, "SELECT group_concat(platform, ',') FROM (SELECT DISTINCT platform FROM daily_plays ORDER BY 1)"),
            "QQ音乐,全民K歌,酷我音乐,酷狗音乐");
  EXPECT_EQ(one(db, "SELECT MIN(dt) || ' ' || MAX(dt) FROM daily_revenue"), "2024-11-01 2024-12-31");
  EXPECT_EQ(one(db, "SELECT COUNT(*) FROM daily_revenue"), std::to_string(61 * 4));
  // Only released songs are played; every song belongs to its album's artist.
  EXPECT_EQ(one(db, "SELECT COUNT(*) FROM daily_plays p JOIN songs s USING (song_id) WHERE s.release_date > p.dt"),
            "0");
  EXPECT_EQ(one(db, "SELECT COUNT(*) FROM songs s JOIN albums a USING (album_id) WHERE s.artist_id != a.artist_id"),
            "0");
  EXPECT_EQ(one(db, "SELECT COUNT(*) FROM daily_plays WHERE likes > plays OR listeners > plays OR plays <= 0"), "0");
  EXPECT_EQ(db.schema().at("artists"), (std::vector<std::string>{"artist_id", "name", "name_en", "gender", "region",
                                                                 "genre", "label_id", "debut_year"}));
  std::filesystem::remove_all(d);
}

TEST(ask_demo, ReadOnlyConnectionRefusesWritesAndHonoursLimits) {
  const auto d = tmpdir("ro");
  write_demo_database(d / "m.db", small());
  SqliteDb db(d / "m.db");
  EXPECT_THROW(db.query("DELETE FROM songs", {}, {}), yak::Error);
  EXPECT_THROW(db.query("SELECT 1; SELECT 2", {}, {}), yak::Error);
  QueryOptions o;
  o.max_rows = 5;
  auto r = db.query("SELECT song_id FROM songs", {}, o);
  EXPECT_EQ(r.rows.size(), 5u);
  EXPECT_TRUE(r.truncated);
  auto p = db.query("SELECT COUNT(*) FROM songs WHERE language = ? AND duration_sec > ?",
                    {Value::text("zh"), Value::integer(0)}, {});
  EXPECT_EQ(p.rows.size(), 1u);
  EXPECT_THROW(db.query("SELECT ?", {}, {}), yak::Error);
  o.timeout_ms = 1;
  o.max_rows = 10;
  EXPECT_THROW(
      db.query("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT COUNT(*) FROM c", {}, o),
      yak::Error);
  EXPECT_EQ(one(db, "SELECT COUNT(*) FROM songs"), "150");
  std::filesystem::remove_all(d);
}

TEST(ask_demo, BadDatabaseUrlsAndFiles) {
  EXPECT_THROW(sqlite_path_from_url("mysql://x/y"), yak::Error);
  EXPECT_THROW(sqlite_path_from_url("sqlite:"), yak::Error);
  EXPECT_EQ(sqlite_path_from_url("sqlite:a/b.db"), "a/b.db");
  EXPECT_THROW(open_database("sqlite:/nonexistent/x.db"), yak::Error);
  const auto d = tmpdir("bad");
  {
    std::FILE* f = std::fopen((d / "junk.db").c_str(), "wb");
    std::fputs("this is not a database, just text that is long enough to look like a header......", f);
    std::fclose(f);
  }
  EXPECT_THROW(open_database("sqlite:" + (d / "junk.db").string()), yak::Error);
  std::filesystem::remove_all(d);
}
