#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "yak/ask/demo.h"
#include "yak/ask/semantic.h"
#include "yak/ask/sqlite_db.h"
#include "yak/base/error.h"

using namespace yak::ask;

namespace {

const std::string kMini = R"(
name: mini
tables:
  - name: facts
    time_dimension: dt
    identifiers: [{name: item_id, type: foreign}]
  - name: items
    identifiers: [{name: item_id, type: primary}]
dimensions:
  - {name: dt, type: time, table: facts}
  - {name: item, zh: 商品, aliases: [货品], table: items, expr: title, values: {apple: [苹果, Apple Inc]}}
metrics:
  - {name: sales, zh: 销量, table: facts, expr: SUM(qty)}
  - {name: orders, zh: 订单数, table: facts, expr: COUNT(*)}
  - {name: per_order, formula: sales * 1.0 / orders}
terms:
  - {name: 水果, dimension: item, filters: [{dimension: item, op: in, values: [apple, pear]}]}
)";

std::string replace(std::string s, const std::string& from, const std::string& to) {
  const auto p = s.find(from);
  EXPECT_NE(p, std::string::npos) << from;
  if (p != std::string::npos) s.replace(p, from.size(), to);
  return s;
}

void expect_error(const std::string& yaml, const std::string& needle) {
  try {
    SemanticModel::parse(yaml, "m.yaml");
    FAIL() << "expected an error containing: " << needle;
  } catch (const yak::Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("m.yaml"), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(ask_semantic, ParsesTheMiniModel) {
  auto m = SemanticModel::parse(kMini, "m.yaml");
  EXPECT_EQ(m.name, "mini");
  ASSERT_EQ(m.tables.size(), 2u);
  EXPECT_EQ(m.tables[0].time_dimension, "dt");
  ASSERT_NE(m.dimension("item"), nullptr);
  EXPECT_EQ(m.dimension("item")->bindings[0].expr, "title");
  EXPECT_EQ(m.dimension("item")->value_aliases.at("apple").size(), 2u);
  EXPECT_TRUE(m.dimension("dt")->time);
  EXPECT_FALSE(m.dimension("dt")->load_values);
  ASSERT_NE(m.metric("per_order"), nullptr);
  EXPECT_TRUE(m.metric("per_order")->derived());
  EXPECT_EQ(m.metric_refs(*m.metric("per_order")), (std::vector<std::string>{"sales", "orders"}));
  EXPECT_EQ(m.metric_tables("per_order"), (std::vector<std::string>{"facts"}));
  ASSERT_EQ(m.terms.size(), 1u);
  EXPECT_EQ(m.terms[0].filters[0].op, "in");
  EXPECT_EQ(m.terms[0].filters[0].values.size(), 2u);
}

TEST(ask_semantic, ExprColumnsSkipsFunctionsKeywordsAndTypes) {
  EXPECT_EQ(expr_columns("SUM(plays)"), (std::vector<std::string>{"plays"}));
  EXPECT_EQ(expr_columns("CAST(strftime('%Y', dt) AS INTEGER) + x"), (std::vector<std::string>{"dt", "x"}));
  EXPECT_EQ(expr_columns("CASE WHEN a > 1 THEN b ELSE NULL END"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(expr_columns("COUNT(DISTINCT t.c)"), (std::vector<std::string>{}));
}

TEST(ask_semantic, StructuralErrorsNameTheFieldAndTheProblem) {
  expect_error("name: [", "bad YAML");
  expect_error("- a\n- b\n", "should be a YAML mapping");
  expect_error(replace(kMini, "name: mini\n", ""), "missing field 'name'");
  expect_error(replace(kMini, "table: items, expr: title", "table: nope, expr: title"), "unknown table 'nope'");
  expect_error(replace(kMini, "aliases: [货品]", "aliases: [销量]"), "duplicate alias '销量'");
  expect_error(replace(kMini, "formula: sales * 1.0 / orders", "formula: sales / refunds"), "unknown metric 'refunds'");
  expect_error(replace(kMini, "{name: dt, type: time", "{name: dt, type: clock"), "categorical or time");
  expect_error(replace(kMini, "type: primary", "type: main"), "primary or foreign");
  expect_error(replace(kMini, "{name: item_id, type: primary}", "{name: other_id, type: primary}"),
               "no other table has it as primary");
  expect_error(replace(kMini, "{name: item, zh", "{name: item-x, zh"), "ASCII identifier");
  expect_error(replace(kMini, "op: in", "op: like"), "filter op");
  expect_error(replace(kMini, "dimension: item, filters", "dimension: thing, filters"), "unknown dimension 'thing'");
  expect_error(replace(kMini, "{name: orders, zh: 订单数, table: facts, expr: COUNT(*)}",
                       "{name: orders, formula: per_order + 1}"),
               "cycle");
  expect_error(replace(kMini, "{name: sales, zh", "{name: orders, zh"), "defined twice");
  expect_error(replace(kMini, "expr: SUM(qty)", "expr: SUM('qty)"), "unterminated string");
}

TEST(ask_semantic, ValidatesColumnsAgainstTheDatabase) {
  auto m = SemanticModel::parse(kMini, "m.yaml");
  Schema good = {{"facts", {"dt", "item_id", "qty"}}, {"items", {"item_id", "title"}}};
  EXPECT_NO_THROW(m.validate_against(good));
  Schema missing_col = {{"facts", {"dt", "item_id"}}, {"items", {"item_id", "title"}}};
  try {
    m.validate_against(missing_col);
    FAIL();
  } catch (const yak::Error& e) {
    const std::string w = e.what();
    EXPECT_NE(w.find("metric 'sales'"), std::string::npos) << w;
    EXPECT_NE(w.find("unknown column 'qty'"), std::string::npos) << w;
  }
  Schema missing_table = {{"facts", {"dt", "item_id", "qty"}}};
  EXPECT_THROW(m.validate_against(missing_table), yak::Error);
}

TEST(ask_semantic, MusicModelMatchesTheDemoDatabase) {
  const auto path = std::filesystem::path(YAK_SOURCE_DIR) / "examples/music/semantic.yaml";
  auto m = SemanticModel::load(path);
  EXPECT_EQ(m.default_metric, "plays");
  EXPECT_EQ(SemanticModel::parse(demo_semantic_yaml(), "embedded").metrics.size(), m.metrics.size());
  const auto dir = std::filesystem::temp_directory_path() / ("yak_ask_sem_" + std::to_string(::getpid()));
  DemoOptions o;
  o.artists = 20, o.albums = 40, o.songs = 80, o.songs_per_day = 5, o.start = "2024-12-01";
  write_demo_database(dir / "m.db", o);
  SqliteDb db(dir / "m.db");
  EXPECT_NO_THROW(m.validate_against(db.schema()));
  std::filesystem::remove_all(dir);
}

TEST(ask_semantic, UnreadableFileNamesIt) {
  try {
    SemanticModel::load("/nonexistent/semantic.yaml");
    FAIL();
  } catch (const yak::Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/semantic.yaml"), std::string::npos);
  }
}
