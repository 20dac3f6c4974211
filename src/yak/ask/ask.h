// One question end to end: map, parse by rules (and by a model when the rules are not sure
// enough and one is configured), translate, check the SQL with the guard, run it with bound
// values, a row limit and a timeout.
#pragma once
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "yak/ask/database.h"
#include "yak/ask/dsl.h"
#include "yak/ask/knowledge.h"
#include "yak/ask/llm.h"
#include "yak/ask/mapper.h"
#include "yak/ask/plugins.h"
#include "yak/ask/semantic.h"
#include "yak/ask/sql_guard.h"
#include "yak/ask/translator.h"

namespace yak::ask {

struct AskOptions {
  Date today;              // relative dates count from here
  double threshold = 0.6;  // rule confidence below which the question is not understood
  int64_t max_rows = 1000;
  int timeout_ms = 5000;
  bool allow_sensitive = false;
  std::vector<RowFilter> row_filters;  // when set, rollups are not used
  bool use_rollups = true;
  const LlmParser* llm = nullptr;    // asked when the rules fall below the threshold
  bool llm_always = false;           // ask the model even when the rules understood
  // A model that cannot answer (unreachable, busy, prompt too long): an error (false, the CLI)
  // or an answer not understood that says why (true, a server answering many clients).
  bool llm_failure_answers = false;
  const Plugins* plugins = nullptr;  // documents and function plug-ins
};

struct Citation {
  Passage passage;
  double score = 0;
};

struct Answer {
  std::string question;
  Mapping mapping;
  bool understood = false;
  std::string message;  // when not understood
  Dsl dsl;
  std::string sql;  // as checked and run, values as ? parameters
  std::vector<Value> params;
  QueryResult result;
  std::string path = "rule";  // rule | llm | docs | plugin:NAME
  std::string text;           // docs and plug-ins: the answer in words
  std::vector<Citation> citations;
  std::vector<std::string> notes;    // the corrector's changes, the vote
  std::vector<std::string> replies;  // the model's raw replies (llm path)

  // {"question","dsl","sql","columns","rows","path"}; a question not understood has "error";
  // documents and plug-ins add "text" and "citations" [{"source": "file:first-last", "heading",
  // "text", "score"}].
  Json to_json() const;
};

class Asker {
 public:
  // Validates the model against the database and builds the knowledge base.
  Asker(SemanticModel model, Database& db);
  Answer ask(const std::string& question, const AskOptions& opt) const;
  // Runs a DSL the caller wrote (or corrected).
  Answer run_dsl(const std::string& question, const Dsl& dsl, const AskOptions& opt) const;

  const SemanticModel& model() const { return model_; }
  const KnowledgeBase& knowledge() const { return kb_; }
  // Reads the dimension values from the database again (new songs, artists...); returns the
  // number of knowledge-base entries. Not safe while another thread asks.
  size_t refresh_knowledge();
  // The semantic model's examples with their DSL (few-shot material for the LLM parser); the
  // rules read relative dates from `today`.
  std::vector<Example> examples_for(const Date& today) const;

 private:
  SemanticModel model_;
  Database& db_;
  KnowledgeBase kb_;
  std::unique_ptr<SqlDialect> dialect_;
  std::vector<std::string> sensitive_;
  // Documents or a function plug-in answer the question; nullopt when neither should.
  std::optional<Answer> try_plugins(const Answer& a, const std::optional<Dsl>& rules,
                                    const AskOptions& opt) const;  // table.column of sensitive dimensions
};

// Prints the result as an aligned text table (UTF-8 aware), CSV (RFC 4180) or nothing else.
std::string format_table(const QueryResult& r);
std::string format_csv(const QueryResult& r);

// A line chart for trends, a bar chart for rankings and breakdowns; false when the answer has
// no chart (one row, or no numeric column).
bool write_chart(const std::filesystem::path& path, const Answer& a);

}  // namespace yak::ask
