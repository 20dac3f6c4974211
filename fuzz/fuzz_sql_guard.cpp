// libFuzzer target: bytes as a SQL statement for the safety checker. Bad input may only surface as
// yak::Error; an accepted statement must print to SQL that is accepted again and prints the same.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "yak/ask/sql_guard.h"
#include "yak/base/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const yak::ask::GuardOptions opt = [] {
    yak::ask::GuardOptions o;
    o.max_limit = 100;
    o.schema = {{"songs", {"song_id", "title", "language"}}, {"artists", {"artist_id", "name", "gender"}}};
    o.sensitive = {"artists.gender"};
    o.row_filters = {{"songs", "language = 'zh'"}};
    return o;
  }();
  const std::string sql(reinterpret_cast<const char*>(data), size);
  try {
    const auto once = yak::ask::guard_sql(sql, opt);
    yak::ask::GuardOptions again = opt;
    again.row_filters.clear();  // already applied
    const auto twice = yak::ask::guard_sql(once.sql, again);
    if (twice.sql != once.sql) std::abort();
  } catch (const yak::Error&) {
  }
  return 0;
}
