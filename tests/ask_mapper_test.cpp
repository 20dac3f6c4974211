#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "yak/ask/demo.h"
#include "yak/ask/mapper.h"
#include "yak/ask/sqlite_db.h"

using namespace yak::ask;

namespace {

class ask_mapper : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::filesystem::temp_directory_path() / ("yak_ask_mapper_" + std::to_string(::getpid()));
    DemoOptions o;
    o.artists = 30, o.albums = 60, o.songs = 150, o.songs_per_day = 5, o.start = "2024-12-01";
    write_demo_database(dir_ / "m.db", o);
    model_ = new SemanticModel(SemanticModel::parse(demo_semantic_yaml(), "semantic.yaml"));
    db_ = new SqliteDb(dir_ / "m.db");
    kb_ = new KnowledgeBase(KnowledgeBase::build(*model_, db_));
  }
  static void TearDownTestSuite() {
    delete kb_;
    delete db_;
    delete model_;
    std::filesystem::remove_all(dir_);
  }
  static std::filesystem::path dir_;
  static SemanticModel* model_;
  static SqliteDb* db_;
  static KnowledgeBase* kb_;

  Mapping map(const std::string& q) { return map_question(q, *kb_, *Date::parse("2024-12-31")); }
  std::string artist(int id, const char* col = "name") {
    return db_->query(std::string("SELECT ") + col + " FROM artists WHERE artist_id = " + std::to_string(id), {}, {})
        .rows[0][0]
        .s;
  }
  static std::string range(const Mapping& m) {
    auto* d = m.first(Element::Kind::Date);
    return d ? d->range.start.str() + ".." + d->range.end.str() : "none";
  }
};
std::filesystem::path ask_mapper::dir_;
SemanticModel* ask_mapper::model_;
SqliteDb* ask_mapper::db_;
KnowledgeBase* ask_mapper::kb_;

}  // namespace

TEST(ask_text, NormalizeAndEditDistance) {
  EXPECT_EQ(to_utf8(normalize("  ＱＱ音乐  Top\t10 ")), "qq音乐 top 10");
  EXPECT_EQ(edit_distance(normalize("周杰伦"), normalize("周杰轮")), 1u);
  EXPECT_EQ(edit_distance(normalize("kitten"), normalize("sitting")), 3u);
  EXPECT_EQ(edit_distance(normalize(""), normalize("abc")), 3u);
}

TEST(ask_dates, CalendarArithmetic) {
  EXPECT_EQ(Date::from_days(Date{2024, 2, 29}.days()).str(), "2024-02-29");
  EXPECT_EQ(add_days(*Date::parse("2024-03-01"), -1).str(), "2024-02-29");
  EXPECT_EQ(add_months(*Date::parse("2024-03-31"), -1).str(), "2024-02-29");
  EXPECT_EQ(Date::parse("2024-12-30")->weekday(), 0);  // a Monday
  EXPECT_FALSE(Date::parse("2023-02-29"));
  EXPECT_FALSE(Date::parse("2024-1-01"));
  EXPECT_EQ(week_range(*Date::parse("2024-12-25")).start.str(), "2024-12-23");
}

TEST_F(ask_mapper, KnowledgeBaseHoldsNamesAliasesAndDatabaseValues) {
  EXPECT_NE(kb_->exact(normalize("播放量")), nullptr);
  EXPECT_NE(kb_->exact(normalize("QQ Music")), nullptr);
  ASSERT_NE(kb_->exact(normalize(artist(3))), nullptr);
  const auto& e = kb_->entry(kb_->exact(normalize(artist(3, "name_en")))->front());
  EXPECT_EQ(e.kind, Entry::Kind::Value);
  EXPECT_EQ(e.value, artist(3));
  // Prefix and fuzzy lookups.
  auto hits = kb_->search("点赞");
  ASSERT_FALSE(hits.empty());
  EXPECT_STREQ(hits[0].how, "exact");
  auto fuzzy = kb_->search("Kuwo Musik");
  ASSERT_FALSE(fuzzy.empty());
  EXPECT_EQ(fuzzy[0].entry->value, "酷我音乐");
  EXPECT_STREQ(fuzzy[0].how, "fuzzy");
  EXPECT_TRUE(kb_->search("完全无关的词").empty());
}

TEST_F(ask_mapper, FindsMetricsDimensionsValuesAndNumbers) {
  auto m = map("去年QQ音乐播放量最高的10位歌手");
  ASSERT_NE(m.first(Element::Kind::Metric), nullptr);
  EXPECT_EQ(m.first(Element::Kind::Metric)->name, "plays");
  EXPECT_EQ(m.first(Element::Kind::Value)->value, "QQ音乐");
  EXPECT_EQ(m.first(Element::Kind::Dimension)->name, "artist");
  EXPECT_EQ(m.first(Element::Kind::Number)->number, 10);
  EXPECT_EQ(m.first(Element::Kind::Agg)->name, "max");
  EXPECT_EQ(range(m), "2023-01-01..2023-12-31");
  EXPECT_DOUBLE_EQ(m.coverage, 1.0);
  EXPECT_EQ(map("前十的专辑").first(Element::Kind::Number)->number, 10);
  EXPECT_EQ(map("播放量前5的歌曲").first(Element::Kind::Number)->number, 5);
  EXPECT_EQ(map("top 3 artists by plays").first(Element::Kind::Number)->number, 3);
  EXPECT_EQ(map("十大歌手").first(Element::Kind::Number)->number, 10);
  EXPECT_EQ(map("各平台的平均时长").first(Element::Kind::Metric)->name, "avg_duration");  // longest wins
  EXPECT_EQ(map("华语歌曲的播放量").first(Element::Kind::Term)->name, "华语歌曲");
  EXPECT_EQ(map("粤语的歌曲数").first(Element::Kind::Value)->value, "yue");
  auto en = map("plays of " + artist(4, "name_en") + " in 2024");
  ASSERT_NE(en.first(Element::Kind::Value), nullptr);
  EXPECT_EQ(en.first(Element::Kind::Value)->value, artist(4));
  // A partial artist name maps by prefix, with a lower score.
  const std::string full = artist(5);
  auto part = map(full.substr(0, full.size() - 3) + "的播放量");
  if (full.size() >= 9) {
    ASSERT_NE(part.first(Element::Kind::Value), nullptr);
    EXPECT_EQ(part.first(Element::Kind::Value)->value, full);
    EXPECT_LT(part.first(Element::Kind::Value)->score, 1.0);
  }
  // English words are not matched inside other words.
  EXPECT_EQ(map("display").first(Element::Kind::Word, "each"), nullptr);
}

TEST_F(ask_mapper, DatesAbsoluteAndRelative) {
  EXPECT_EQ(range(map("2024年3月的播放量")), "2024-03-01..2024-03-31");
  EXPECT_EQ(range(map("2024-03-01的播放量")), "2024-03-01..2024-03-01");
  EXPECT_EQ(range(map("2024/2/29播放量")), "2024-02-29..2024-02-29");
  EXPECT_EQ(range(map("2024年Q3播放量")), "2024-07-01..2024-09-30");
  EXPECT_EQ(range(map("2023年第二季度播放量")), "2023-04-01..2023-06-30");
  EXPECT_EQ(range(map("2023年3月5日播放量")), "2023-03-05..2023-03-05");
  EXPECT_EQ(range(map("2023年下半年播放量")), "2023-07-01..2023-12-31");
  EXPECT_EQ(range(map("2024年1月到3月播放量")), "2024-01-01..2024-03-31");
  EXPECT_EQ(range(map("plays in March 2024")), "2024-03-01..2024-03-31");
  EXPECT_EQ(range(map("plays in 2023")), "2023-01-01..2023-12-31");
  EXPECT_EQ(range(map("plays in Q2 2024")), "2024-04-01..2024-06-30");
  EXPECT_EQ(range(map("昨天的播放量")), "2024-12-30..2024-12-30");
  EXPECT_EQ(range(map("上个月的播放量")), "2024-11-01..2024-11-30");
  EXPECT_EQ(range(map("近7天播放量")), "2024-12-25..2024-12-31");
  EXPECT_EQ(range(map("最近30天播放量")), "2024-12-02..2024-12-31");
  EXPECT_EQ(range(map("近三个月播放量")), "2024-10-01..2024-12-31");
  EXPECT_EQ(range(map("今年播放量")), "2024-01-01..2024-12-31");
  EXPECT_EQ(range(map("去年播放量")), "2023-01-01..2023-12-31");
  EXPECT_EQ(range(map("上周播放量")), "2024-12-23..2024-12-29");
  EXPECT_EQ(range(map("plays last week")), "2024-12-23..2024-12-29");
  EXPECT_EQ(range(map("plays in the past 30 days")), "2024-12-02..2024-12-31");
  EXPECT_EQ(range(map("plays last month")), "2024-11-01..2024-11-30");
  EXPECT_EQ(range(map("plays this year")), "2024-01-01..2024-12-31");
  EXPECT_EQ(range(map("plays yesterday")), "2024-12-30..2024-12-30");
  EXPECT_EQ(range(map("上季度播放量")), "2024-07-01..2024-09-30");
  EXPECT_EQ(range(map("2024年13月播放量")), "2024-01-01..2024-12-31");  // no 13th month: the year
  EXPECT_EQ(range(map("播放量")), "none");
}

TEST_F(ask_mapper, UnknownWordsLowerTheCoverage) {
  auto m = map("今天天气怎么样");
  EXPECT_LT(m.coverage, 0.7);
  ASSERT_EQ(m.unknown.size(), 1u);
  EXPECT_EQ(m.unknown[0], "天气");
  EXPECT_EQ(map("'; DROP TABLE songs; --").first(Element::Kind::Metric), nullptr);
}

// A one-letter change turns a short English word into another ("make" / "male"): ASCII words
// under five letters are never fuzzy-matched (longer ones still are, "Kuwo Musik" above).
TEST_F(ask_mapper, ShortEnglishWordsAreNotFuzzyMatched) {
  const auto m = map("how much money did we make in total");
  for (auto& e : m.elements) EXPECT_NE(e.dimension, "gender") << e.text;
  EXPECT_NE(std::find(m.unknown.begin(), m.unknown.end(), "make"), m.unknown.end());
}
