#!/usr/bin/env bash
# The ask benchmark on every engine: SQLite (embedded), then private ClickHouse and MariaDB
# servers on loopback (scripts/lib/servers.sh) with the demo loaded. Prints bench_ask's accuracy
# and latency for each.   scripts/bench-ask-servers.sh [BUILD_DIR] [ROUNDS]
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build}
rounds=${2:-5}
tmp=$(mktemp -d)
source "$src/scripts/lib/servers.sh"
trap 'stop_servers; rm -rf "$tmp"' EXIT

echo "== SQLite"
"$build/bin/bench_ask" "$rounds"
if start_clickhouse "$tmp/ch"; then
  "$build/bin/yak" ask demo --dir "$tmp/demo-ch" --db "$CH_URL" | grep "^loaded into"
  echo "== ClickHouse"
  "$build/bin/bench_ask" "$rounds" "$CH_URL"
else
  echo "ClickHouse skipped: $SERVER_ERROR"
fi
if start_mariadb "$tmp/maria"; then
  "$build/bin/yak" ask demo --dir "$tmp/demo-maria" --db "$MARIA_LOADER" | grep "^loaded into"
  echo "== MariaDB"
  "$build/bin/bench_ask" "$rounds" "$MARIA_URL"
else
  echo "MariaDB skipped: $SERVER_ERROR"
fi
