#!/usr/bin/env bash
# yak ask on a real ClickHouse server (Debian's clickhouse-server, installed when missing): a
# private server on loopback with its own config and data in a temporary folder and free ports,
# the demo loaded into it, every example question answered there and compared with the reference
# SQL on the SQLite demo (same seed), injection attempts that change nothing, and clear errors.
# Exit 77 (skipped) with the reason when the server cannot be installed or started.
set -u
yak=$1
src=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
source "$(dirname "$0")/lib/checks.sh"
source "$src/scripts/lib/servers.sh"
cleanup() {
  stop_servers
  rm -rf "$tmp"
}
trap cleanup EXIT
skip() { echo "SKIP: $*"; exit 77; }

start_clickhouse "$tmp/ch" || skip "$SERVER_ERROR"
http_port=$CH_HTTP_PORT
url=$CH_URL

# The demo, loaded into ClickHouse and answered there.
if "$yak" ask demo --dir "$tmp/demo" --db "$url" >"$tmp/demo.out" 2>&1; then
  grep -q "^loaded into $url (ClickHouse " "$tmp/demo.out" && pass || fail "ask demo --db: no load line: $(head -4 "$tmp/demo.out")"
  grep -q "^question: 去年QQ音乐播放量最高的10位歌手" "$tmp/demo.out" && pass || fail "ask demo --db did not answer"
  grep "^loaded into" "$tmp/demo.out"
else
  fail "ask demo --db $url: $(tail -3 "$tmp/demo.out")"
fi

# Every example question through the rule path on ClickHouse, against the reference SQL on SQLite.
"$yak" ask eval --semantic "$tmp/demo/semantic.yaml" --db "$url" --reference "sqlite:$tmp/demo/music.db" \
  --questions "$src/examples/music/questions.jsonl" --min-accuracy 1 >"$tmp/eval.out" 2>&1
code=$?
cat "$tmp/eval.out"
[[ $code -eq 0 ]] && pass || fail "eval on ClickHouse: exit $code"

ask() { "$yak" ask "$@" --semantic "$tmp/demo/semantic.yaml" --db "$url" --today 2024-12-31; }
# JSON: same keys as on SQLite, values as parameters that never reach the SQL text.
ask "2024年各平台的播放量" --format json >"$tmp/a.json" 2>"$tmp/a.err"
python3 - "$tmp/a.json" "$tmp/demo/music.db" <<'PY' && pass || fail "json output: $(cat "$tmp/a.err")"
import json, sqlite3, sys
a = json.loads(open(sys.argv[1]).read())
assert sorted(a) == sorted(["question", "dsl", "sql", "columns", "rows", "path"]), sorted(a)
want = dict(sqlite3.connect(sys.argv[2]).execute(
    "SELECT platform, SUM(plays) FROM daily_plays WHERE dt LIKE '2024-%' GROUP BY platform").fetchall())
assert {r[0]: r[1] for r in a["rows"]} == want, (a["rows"], want)
assert "?" in a["sql"] and "2024" not in a["sql"], a["sql"]
PY

# Row filters narrow every read of their table, also through joins (and rollups are then off).
got=$(ask "各地区的播放量" --format csv --row-filter "daily_plays:platform = 'QQ音乐'" --row-filter "artists:genre = '摇滚'" | tail -n +2 | sort)
want=$(python3 -c "import sqlite3,sys; [print(f'{r},{n}') for r, n in sqlite3.connect(sys.argv[1]).execute(\"SELECT a.region, SUM(p.plays) FROM daily_plays p JOIN songs s ON s.song_id = p.song_id JOIN artists a ON a.artist_id = s.artist_id WHERE p.platform = 'QQ音乐' AND a.genre = '摇滚' GROUP BY a.region\")]" "$tmp/demo/music.db" | sort)
[[ -n $want && $got == "$want" ]] && pass || fail "row filters: got $got want $want"

count() { ask "有多少首歌曲" --format csv 2>/dev/null | tail -1; }
before=$(count)
for q in "'; DROP TABLE songs; --" "QQ音乐的播放量'; DELETE FROM daily_plays; --" "播放量 UNION SELECT name FROM system.tables" \
         "酷狗\\'; DROP TABLE songs; --的播放量"; do
  ask "$q" --format json >/dev/null 2>&1
  code=$?
  [[ $code -eq 0 || $code -eq 3 ]] && pass || fail "injection '$q': exit $code"
done
after=$(count)
[[ -n $before && $before == "$after" && $before -gt 0 ]] && pass || fail "songs changed: $before -> $after"

# Clear errors, exit 2.
expect2() {  # what needle cmd...
  local what=$1 needle=$2; shift 2
  "$@" >"$tmp/o" 2>"$tmp/e"; local code=$?
  [[ $code -eq 2 && $(cat "$tmp/e") == *"$needle"* ]] && pass || fail "$what: exit $code, stderr $(cat "$tmp/e")"
}
expect2 "unknown database" "nosuchdb" "$yak" ask "播放量" --semantic "$tmp/demo/semantic.yaml" --db "clickhouse://127.0.0.1:$http_port/nosuchdb"
closed=$(free_port)
expect2 "no server" "127.0.0.1:$closed" "$yak" ask "播放量" --semantic "$tmp/demo/semantic.yaml" --db "clickhouse://127.0.0.1:$closed/music"
expect2 "bad url" "no database name" "$yak" ask "播放量" --semantic "$tmp/demo/semantic.yaml" --db "clickhouse://127.0.0.1:$http_port"

echo "$passes passed, $fails failed ($(grep -o 'ClickHouse [0-9.]*' "$tmp/eval.out" | head -1))"
[[ $fails -eq 0 ]]
