#!/usr/bin/env bash
# yak ask over the MySQL protocol on a real MariaDB (Debian's mariadb-server, installed when
# missing): a private server on loopback with its own data folder (mariadb-install-db), socket
# and free port; the demo loaded by a user with write rights, every example question answered by a
# SELECT-only user and compared with the reference SQL on the SQLite demo (same seed), the row
# limit, injection attempts that change nothing, and clear errors. Exit 77 (skipped) with the
# reason when the server cannot be installed or started.
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

start_mariadb "$tmp/db" || skip "$SERVER_ERROR"
port=$MARIA_PORT version=$MARIA_VERSION loader=$MARIA_LOADER url=$MARIA_URL
sql() { maria_sql "$@"; }

if "$yak" ask demo --dir "$tmp/demo" --db "$loader" >"$tmp/demo.out" 2>&1; then
  grep -q "^loaded into mysql://loader:\*\*\*@127.0.0.1:$port/music (MariaDB " "$tmp/demo.out" && pass \
    || fail "ask demo --db: no load line (or the password printed): $(head -4 "$tmp/demo.out")"
  grep -q "load pw\|load%20pw" "$tmp/demo.out" && fail "the password was printed" || pass
  grep -q "^question: 去年QQ音乐播放量最高的10位歌手" "$tmp/demo.out" && pass || fail "ask demo --db did not answer"
  grep "^loaded into" "$tmp/demo.out"
else
  fail "ask demo --db: $(tail -3 "$tmp/demo.out")"
fi

"$yak" ask eval --semantic "$tmp/demo/semantic.yaml" --db "$url" --reference "sqlite:$tmp/demo/music.db" \
  --questions "$src/examples/music/questions.jsonl" --min-accuracy 1 >"$tmp/eval.out" 2>&1
code=$?
cat "$tmp/eval.out"
[[ $code -eq 0 ]] && pass || fail "eval on MariaDB: exit $code"

ask() { "$yak" ask "$@" --semantic "$tmp/demo/semantic.yaml" --today 2024-12-31; }
ask "2024年各平台的播放量" --db "$url" --format json >"$tmp/a.json" 2>"$tmp/a.err"
python3 - "$tmp/a.json" "$tmp/demo/music.db" <<'PY' && pass || fail "json output: $(cat "$tmp/a.err")"
import json, sqlite3, sys
a = json.loads(open(sys.argv[1]).read())
assert sorted(a) == sorted(["question", "dsl", "sql", "columns", "rows", "path"]), sorted(a)
want = dict(sqlite3.connect(sys.argv[2]).execute(
    "SELECT platform, SUM(plays) FROM daily_plays WHERE dt LIKE '2024-%' GROUP BY platform").fetchall())
assert {r[0]: r[1] for r in a["rows"]} == want, (a["rows"], want)
assert "?" in a["sql"] and "2024" not in a["sql"], a["sql"]
PY
rows=$(ask "列出所有唱片公司" --db "$url" --format csv --max-rows 5 | wc -l)
[[ $rows -eq 6 ]] && pass || fail "row limit: $rows lines (want header + 5)"

# Row filters narrow every read of their table, also through joins (and rollups are then off).
got=$(ask "各地区的播放量" --db "$url" --format csv --row-filter "daily_plays:platform = 'QQ音乐'" --row-filter "artists:genre = '摇滚'" | tail -n +2 | sort)
want=$(python3 -c "import sqlite3,sys; [print(f'{r},{n}') for r, n in sqlite3.connect(sys.argv[1]).execute(\"SELECT a.region, SUM(p.plays) FROM daily_plays p JOIN songs s ON s.song_id = p.song_id JOIN artists a ON a.artist_id = s.artist_id WHERE p.platform = 'QQ音乐' AND a.genre = '摇滚' GROUP BY a.region\")]" "$tmp/demo/music.db" | sort)
[[ -n $want && $got == "$want" ]] && pass || fail "row filters: got $got want $want"

# The time limit reaches the server (max_statement_time): 1 ms is far too little for 30 days of
# daily_plays joined with songs.
ask "近30天分享数最多的5首歌" --db "$url" --timeout-ms 1 >/dev/null 2>"$tmp/t.err"
code=$?
[[ $code -eq 2 && $(cat "$tmp/t.err") == *"ran past its timeout of 1 ms"* ]] && pass || fail "timeout: exit $code $(cat "$tmp/t.err")"

# Injection through a user that could write: the session is read-only and values are bound.
before=$(sql -N -e "SELECT COUNT(*) FROM music.songs")
for q in "'; DROP TABLE songs; --" "QQ音乐的播放量'; DELETE FROM daily_plays; --" "播放量 UNION SELECT user FROM mysql.user" \
         "酷狗\\'; DROP TABLE songs; --的播放量"; do
  ask "$q" --db "$loader" --format json >/dev/null 2>&1
  code=$?
  [[ $code -eq 0 || $code -eq 3 ]] && pass || fail "injection '$q': exit $code"
done
after=$(sql -N -e "SELECT COUNT(*) FROM music.songs")
[[ $before == "$after" && $before -gt 0 ]] && pass || fail "songs changed: $before -> $after"

expect2() {  # what needle cmd...
  local what=$1 needle=$2; shift 2
  "$@" >"$tmp/o" 2>"$tmp/e"; local code=$?
  [[ $code -eq 2 && $(cat "$tmp/e") == *"$needle"* && $(cat "$tmp/e") != *":wrong@"* ]] && pass \
    || fail "$what: exit $code, stderr $(cat "$tmp/e")"
}
expect2 "wrong password" "cannot connect" ask "播放量" --db "mysql://reader:wrong@127.0.0.1:$port/music"
expect2 "no rights on db" "cannot use database" ask "播放量" --db "mysql://reader:read@127.0.0.1:$port/mysql"
expect2 "no user" "expected mysql://USER" ask "播放量" --db "mysql://127.0.0.1:$port/music"

echo "$passes passed, $fails failed (MariaDB $version)"
[[ $fails -eq 0 ]]
