// The semantic model: business names (Chinese and English) over physical tables, loaded from YAML.
// Questions see one logical table per data set; identifiers say how the physical tables join.
#pragma once
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "yak/ask/database.h"
#include "yak/base/json.h"

namespace yak::ask {

struct Identifier {
  std::string name;  // shared by the tables it joins, e.g. song_id
  bool primary = false;
  std::string expr;  // column in this table, defaults to name
};

// One physical binding of a logical dimension or metric.
struct Binding {
  std::string table;
  std::string expr;  // SQL over the table's bare columns
};

struct Dimension {
  std::string name;  // logical name, also the output column
  std::string zh, en;
  std::vector<std::string> aliases;
  bool time = false;             // type: time (values are YYYY-MM-DD text)
  bool sensitive = false;        // refused unless the user is allowed
  bool load_values = true;       // read DISTINCT values into the knowledge base
  std::string value_alias_expr;  // a second column whose values name the same member (name_en)
  std::map<std::string, std::vector<std::string>> value_aliases;  // stored value -> what people say
  std::vector<Binding> bindings;  // conformed dimension: one binding per table that has it
};

struct Metric {
  std::string name;
  std::string zh, en;
  std::vector<std::string> aliases;
  std::string unit;
  Binding binding;      // table + aggregate expression, e.g. SUM(plays); empty table for derived
  std::string formula;  // derived: expression over other metrics' names
  bool derived() const { return !formula.empty(); }
};

struct TermFilter {
  std::string dimension, op = "=";
  std::vector<std::string> values;
};

// A business word: a filter ("华语歌曲" -> language = 'zh'), a metric, or both.
struct Term {
  std::string name;
  std::vector<std::string> aliases;
  std::vector<TermFilter> filters;
  std::string metric;
  std::string dimension;  // the entity the word names, e.g. 华语歌曲 -> song
};

struct Table {
  std::string name;
  std::vector<Identifier> identifiers;
  std::string time_dimension;  // the table's own time dimension (logical name)
};

// A pre-aggregated copy of a fact table (`base`) at a coarser time grain: the columns it keeps
// have the base table's names and meaning, its time column holds the first day of each period,
// its measures are summed, and its identifiers say how it joins (e.g. artist_id where the base
// only has song_id). The translator reads it instead of the base when the question's metrics
// (SUM/MIN/MAX only), dimensions and time range allow, so the answer is the same.
struct Rollup {
  std::string name;  // the physical table
  std::string base;
  std::string grain;                    // day | month | quarter | year
  std::string time_column;              // the base's time column, holding period starts here
  std::vector<std::string> columns;     // base columns kept (dimensions and measures)
  std::vector<Identifier> identifiers;  // foreign identifiers it joins by
};

// An example question for the LLM parser's prompt. Without a DSL the rule parser must understand
// it (checked when the model is loaded against a database).
struct ModelExample {
  std::string question;
  Json dsl;           // null: the rule parser's DSL
  std::string where;  // file:line for messages
};

struct SemanticModel {
  std::string name, description;
  std::string source;  // file name for messages
  std::vector<Table> tables;
  std::vector<Dimension> dimensions;
  std::vector<Metric> metrics;
  std::vector<Term> terms;
  std::vector<ModelExample> examples;  // few-shot examples for the LLM parser
  std::vector<Rollup> rollups;         // tried in the order given: list the smallest first
  std::string default_time_dimension;  // used when a question gives a time range and names no time
  std::string default_granularity = "day";
  std::string default_metric;       // used by rankings that name no metric ("最火的歌")
  int default_time_range_days = 0;  // > 0: questions with metrics and no time get the last N days

  static SemanticModel load(const std::filesystem::path& path);
  static SemanticModel parse(const std::string& yaml, const std::string& where);

  const Table* table(const std::string& name) const;
  const Dimension* dimension(const std::string& name) const;
  const Metric* metric(const std::string& name) const;
  const Term* term(const std::string& name) const;

  // Checks every table and bare column against the database: unknown ones throw yak::Error
  // naming the file, the field and what the database has.
  void validate_against(const Schema& schema) const;

  // Metric names a derived metric refers to, in order of appearance (no duplicates).
  std::vector<std::string> metric_refs(const Metric& m) const;
  // The tables a metric reads, following derived formulas.
  std::vector<std::string> metric_tables(const std::string& name) const;
};

// Bare column names used in an expression (identifiers that are neither keywords, functions,
// nor qualified). Shared by validation and the translator.
std::vector<std::string> expr_columns(const std::string& expr);

}  // namespace yak::ask
