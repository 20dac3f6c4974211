// Copies a SQLite warehouse (the demo) into another database: every table, typed from SQLite's
// declared types, with the columns the semantic model uses as time dimensions (and the rollups'
// time columns) as dates, keyed like the source's primary key.
#pragma once
#include <cstdint>

#include "yak/ask/database.h"
#include "yak/ask/semantic.h"
#include "yak/ask/sqlite_db.h"

namespace yak::ask {

struct CopyStats {
  int64_t tables = 0, rows = 0;
};

// The table definitions copy_database creates, in the source's table order.
std::vector<TableDef> describe_tables(SqliteDb& src, const SemanticModel& m);

CopyStats copy_database(SqliteDb& src, const SemanticModel& m, Database& dst);

}  // namespace yak::ask
