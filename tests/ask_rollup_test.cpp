// Rollups: which questions the translator answers from a pre-aggregated table (and which it must
// not), and the semantic checks on their declarations. That a chosen rollup gives the base
// table's answer is checked on real data in ask_accuracy_test.
#include <gtest/gtest.h>

#include <string>

#include "yak/ask/semantic.h"
#include "yak/ask/translator.h"
#include "yak/base/error.h"

using namespace yak::ask;

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
  - {name: channel, table: facts}
  - {name: item, table: items, expr: title}
  - {name: brand, table: brands, expr: name}
metrics:
  - {name: sales, table: facts, expr: SUM(qty)}
  - {name: peak, table: facts, expr: MAX(qty)}
  - {name: revenue, table: facts, expr: ROUND(SUM(amount), 2)}
  - {name: orders, table: facts, expr: COUNT(*)}
  - {name: avg_qty, table: facts, expr: AVG(qty)}
  - {name: per_order, formula: sales * 1.0 / orders}
  - {name: double_sales, formula: sales * 2}
rollups:
  - {name: facts_shop_month, base: facts, grain: month, columns: [shop, qty, amount]}
  - name: facts_brand_year
    base: facts
    grain: year
    columns: [shop, qty, amount]
    identifiers: [{name: brand_id, type: foreign}]
  - name: facts_item_day
    base: facts
    grain: day
    columns: [shop, qty]
    identifiers: [{name: item_id}]
)";

Dsl metric(const std::string& name) {
  Dsl d;
  d.metrics = {name};
  return d;
}

Dsl ranged(Dsl d, const std::string& start, const std::string& end, const std::string& grain = "") {
  d.time_dimension = "dt";
  d.start = start, d.end = end, d.granularity = grain;
  return d;
}

std::string source(const Dsl& d, bool use = true) {
  static const auto m = SemanticModel::parse(kModel, "shop.yaml");
  TranslateOptions o;
  o.use_rollups = use;
  const auto t = translate(d, m, SqliteDialect(), o);
  // The SQL reads what the translation says it reads.
  EXPECT_NE(t.sql.find(" FROM " + (t.rollup.empty() ? t.root_table : t.rollup) + " "), std::string::npos) << t.sql;
  return t.rollup;
}

}  // namespace

TEST(ask_rollup, AlignedRangesAndCoarseBucketsUseTheFirstRollupThatFits) {
  EXPECT_EQ(source(metric("sales")), "facts_shop_month");
  EXPECT_EQ(source(ranged(metric("sales"), "2024-01-01", "2024-12-31")), "facts_shop_month");
  EXPECT_EQ(source(ranged(metric("sales"), "2024-02-01", "2024-02-29")), "facts_shop_month");
  EXPECT_EQ(source(ranged(metric("sales"), "2024-04-01", "")), "facts_shop_month");
  EXPECT_EQ(source(ranged(metric("sales"), "2024-01-01", "2024-12-31", "quarter")), "facts_shop_month");
  EXPECT_EQ(source(ranged(metric("sales"), "", "", "month")), "facts_shop_month");
  EXPECT_EQ(source(metric("revenue")), "facts_shop_month");
  EXPECT_EQ(source(metric("peak")), "facts_shop_month");
  EXPECT_EQ(source(metric("double_sales")), "facts_shop_month");
  auto by_shop = metric("sales");
  by_shop.group_by = {"shop"};
  by_shop.filters = {{"shop", "=", {"north"}}};
  EXPECT_EQ(source(by_shop), "facts_shop_month");
}

TEST(ask_rollup, RangesOffTheGrainFallToAFinerRollupOrTheBase) {
  // Mid-month: only the day rollup fits, and it keeps no 'amount'.
  EXPECT_EQ(source(ranged(metric("sales"), "2024-01-05", "2024-01-31")), "facts_item_day");
  EXPECT_EQ(source(ranged(metric("revenue"), "2024-01-05", "2024-01-31")), "");
  EXPECT_EQ(source(ranged(metric("revenue"), "2024-01-01", "2024-01-30")), "");
  EXPECT_EQ(source(ranged(metric("sales"), "2024-01-01", "2024-12-31", "week")), "facts_item_day");
  EXPECT_EQ(source(ranged(metric("revenue"), "2024-01-01", "2024-12-31", "week")), "");
  EXPECT_EQ(source(ranged(metric("revenue"), "2024-01-01", "2024-12-31", "day")), "");
  EXPECT_EQ(source(ranged(metric("sales"), "2024-01-01", "2024-12-31", "day")), "facts_item_day");
}

TEST(ask_rollup, MetricsThatDoNotReaggregateReadTheBase) {
  EXPECT_EQ(source(metric("orders")), "");
  EXPECT_EQ(source(metric("avg_qty")), "");
  EXPECT_EQ(source(metric("per_order")), "");
  auto both = metric("sales");
  both.metrics.push_back("orders");
  EXPECT_EQ(source(both), "");
}

TEST(ask_rollup, DimensionsFollowTheRollupsIdentifiers) {
  auto by_brand = ranged(metric("sales"), "2023-01-01", "2023-12-31");
  by_brand.group_by = {"brand"};
  EXPECT_EQ(source(by_brand), "facts_brand_year");
  // A month range: the brand rollup is yearly, the item rollup is daily and reaches brands too.
  by_brand = ranged(by_brand, "2023-03-01", "2023-03-31");
  EXPECT_EQ(source(by_brand), "facts_item_day");
  auto by_item = metric("sales");
  by_item.group_by = {"item"};
  EXPECT_EQ(source(by_item), "facts_item_day");
  auto by_channel = metric("sales");  // a column no rollup keeps
  by_channel.group_by = {"channel"};
  EXPECT_EQ(source(by_channel), "");
  auto count = metric("sales");
  count.count_distinct = {"brand"};
  EXPECT_EQ(source(count), "facts_brand_year");
}

TEST(ask_rollup, TimeAsAFilterOrColumnDetailAndOptOutReadTheBase) {
  auto on_day = metric("sales");
  on_day.filters = {{"dt", "=", {"2024-03-01"}}};
  EXPECT_EQ(source(on_day), "");
  auto by_dt = metric("sales");
  by_dt.group_by = {"dt"};
  EXPECT_EQ(source(by_dt), "");
  Dsl detail;
  detail.query_type = "detail";
  detail.group_by = {"shop"};
  EXPECT_EQ(source(detail), "");
  EXPECT_EQ(source(metric("sales"), /*use=*/false), "");
}

TEST(ask_rollup, DeclarationsAreChecked) {
  auto err = [](const std::string& from, const std::string& to, const std::string& needle) {
    std::string y = kModel;
    const auto p = y.find(from);
    ASSERT_NE(p, std::string::npos) << from;
    y.replace(p, from.size(), to);
    try {
      SemanticModel::parse(y, "shop.yaml");
      FAIL() << "expected: " << needle;
    } catch (const yak::Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("shop.yaml"), std::string::npos) << e.what();
    }
  };
  err("base: facts, grain: month", "base: fact, grain: month", "unknown table 'fact'");
  err("grain: month", "grain: week", "grain' should be day, month, quarter or year");
  err("columns: [shop, qty, amount]}", "columns: []}", "field 'columns'");
  err("{name: brand_id, type: foreign}]\n  - name: facts_item_day",
      "{name: shop_id, type: foreign}]\n  - name: facts_item_day", "no table has it as primary");
  err("name: facts_item_day", "name: items", "has the name of a table");

  const auto m = SemanticModel::parse(kModel, "shop.yaml");
  Schema s = {{"facts", {"dt", "item_id", "shop", "channel", "qty", "amount"}},
              {"items", {"item_id", "brand_id", "title"}},
              {"brands", {"brand_id", "name"}},
              {"facts_shop_month", {"dt", "shop", "qty", "amount"}},
              {"facts_brand_year", {"dt", "shop", "brand_id", "qty", "amount"}},
              {"facts_item_day", {"dt", "shop", "item_id", "qty"}}};
  EXPECT_NO_THROW(m.validate_against(s));
  auto missing = s;
  missing.erase("facts_item_day");
  EXPECT_THROW(m.validate_against(missing), yak::Error);
  auto no_col = s;
  no_col["facts_brand_year"] = {"dt", "shop", "qty", "amount"};
  try {
    m.validate_against(no_col);
    FAIL();
  } catch (const yak::Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown column 'brand_id'"), std::string::npos) << e.what();
  }
}
