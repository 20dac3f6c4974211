// Execution accuracy: questions with hand-written reference SQL (JSONL), and result-set
// comparison (order-insensitive unless the question ranks).
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "yak/ask/database.h"

namespace yak::ask {

struct EvalQuestion {
  int id = 0;
  std::string type, question, sql;
  bool ordered = false;
};

// One JSON object a line: id, type, question, sql, optional ordered. Errors name file and line.
std::vector<EvalQuestion> load_questions(const std::filesystem::path& path);

// Same number of columns and rows and the same cells (numbers within 1e-9 relative), in order
// when `ordered`, else as multisets of rows. `why` says the first difference.
bool same_result(const QueryResult& got, const QueryResult& want, bool ordered, std::string* why = nullptr);

}  // namespace yak::ask
