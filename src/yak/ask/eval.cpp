#include "yak/ask/eval.h"

#include <algorithm>
#include <cmath>
#include <fstream>

#include "yak/base/error.h"
#include "yak/base/json.h"

namespace yak::ask {

std::vector<EvalQuestion> load_questions(const std::filesystem::path& path) {
  std::ifstream f(path);
  if (!f) throw Error(path.string() + ": cannot read the questions");
  std::vector<EvalQuestion> out;
  std::string line;
  int n = 0;
  while (std::getline(f, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path.string() + ":" + std::to_string(n);
    const auto j = parse_json(line, where);
    EvalQuestion q;
    q.id = json_get<int>(j, "id", where);
    q.type = json_get<std::string>(j, "type", where);
    q.question = json_get<std::string>(j, "question", where);
    q.sql = json_get<std::string>(j, "sql", where);
    q.ordered = json_get_or<bool>(j, "ordered", false, where);
    out.push_back(std::move(q));
  }
  return out;
}

namespace {

bool same_cell(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    const double x = a.as_double(), y = b.as_double();
    return std::fabs(x - y) <= 1e-9 * std::max({1.0, std::fabs(x), std::fabs(y)});
  }
  return a.type == b.type && a.to_string() == b.to_string();
}

std::string key(const std::vector<Value>& row) {
  std::string k;
  for (auto& v : row) {
    if (v.is_number()) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.9g", v.as_double());
      k += buf;
    } else {
      k += v.to_string();
    }
    k += '\x1f';
  }
  return k;
}

}  // namespace

bool same_result(const QueryResult& got, const QueryResult& want, bool ordered, std::string* why) {
  auto say = [&](const std::string& s) {
    if (why) *why = s;
    return false;
  };
  if (got.columns.size() != want.columns.size())
    return say(std::to_string(got.columns.size()) + " columns, want " + std::to_string(want.columns.size()));
  if (got.rows.size() != want.rows.size())
    return say(std::to_string(got.rows.size()) + " rows, want " + std::to_string(want.rows.size()));
  std::vector<const std::vector<Value>*> a, b;
  for (auto& r : got.rows) a.push_back(&r);
  for (auto& r : want.rows) b.push_back(&r);
  if (!ordered) {
    auto by_key = [](auto* x, auto* y) { return key(*x) < key(*y); };
    std::sort(a.begin(), a.end(), by_key);
    std::sort(b.begin(), b.end(), by_key);
  }
  for (size_t i = 0; i < a.size(); ++i)
    for (size_t c = 0; c < a[i]->size(); ++c)
      if (!same_cell((*a[i])[c], (*b[i])[c]))
        return say("row " + std::to_string(i) + " column " + std::to_string(c) + ": " + (*a[i])[c].to_string() +
                   ", want " + (*b[i])[c].to_string());
  return true;
}

}  // namespace yak::ask
