#include "yak/ask/loader.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "yak/base/error.h"

namespace yak::ask {

std::vector<TableDef> describe_tables(SqliteDb& src, const SemanticModel& m) {
  // (table, column) pairs that hold dates.
  std::set<std::pair<std::string, std::string>> dates;
  for (auto& d : m.dimensions)
    if (d.time)
      for (auto& b : d.bindings) {
        const auto cols = expr_columns(b.expr);
        if (cols.size() == 1 && cols[0] == b.expr) dates.insert({b.table, b.expr});
      }
  for (auto& r : m.rollups) dates.insert({r.name, r.time_column});
  std::vector<TableDef> out;
  QueryOptions o;
  o.max_rows = 100000;
  for (auto& [name, _] : src.schema()) {
    TableDef t;
    t.name = name;
    const auto info = src.query("SELECT name, type, pk FROM pragma_table_info(?) ORDER BY cid", {Value::text(name)}, o);
    std::vector<std::pair<int64_t, std::string>> key;
    for (auto& row : info.rows) {
      std::string type = row[1].to_string();
      for (auto& c : type) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      ColumnDef c{row[0].to_string(), "text"};
      if (dates.count({name, c.name}))
        c.type = "date";
      else if (type.find("INT") != std::string::npos)
        c.type = "integer";
      else if (type.find("REAL") != std::string::npos || type.find("FLOA") != std::string::npos ||
               type.find("DOUB") != std::string::npos)
        c.type = "real";
      if (row[2].i > 0) key.push_back({row[2].i, c.name});
      t.columns.push_back(std::move(c));
    }
    std::sort(key.begin(), key.end());
    for (auto& [_, k] : key) t.key.push_back(k);
    out.push_back(std::move(t));
  }
  return out;
}

CopyStats copy_database(SqliteDb& src, const SemanticModel& m, Database& dst) {
  CopyStats st;
  QueryOptions all;
  all.max_rows = INT64_MAX;
  all.timeout_ms = 600000;
  for (auto& t : describe_tables(src, m)) {
    std::string cols;
    for (auto& c : t.columns) cols += (cols.empty() ? "" : ", ") + c.name;
    const auto rows = src.query("SELECT " + cols + " FROM " + t.name, {}, all);
    dst.load_table(t, rows.rows);
    ++st.tables;
    st.rows += static_cast<int64_t>(rows.rows.size());
  }
  return st;
}

}  // namespace yak::ask
