#!/usr/bin/env bash
# yak ask end to end: the demo, JSON output with the documented keys, CSV, charts, a question that
# is not understood (exit 3), injection attempts that change nothing, and bad input (exit 2, one
# line on stderr naming the file or flag).
set -u
yak=$1
tmp=$(mktemp -d)
source "$(dirname "$0")/lib/checks.sh"
trap 'rm -rf "$tmp"' EXIT

if ! "$yak" ask demo --dir "$tmp/demo" >"$tmp/demo.out" 2>&1; then
  fail "ask demo: $(tail -3 "$tmp/demo.out")"
else
  [[ -s $tmp/demo/music.db && -s $tmp/demo/semantic.yaml ]] && pass || fail "ask demo wrote no database or model"
  grep -q "^question: 去年QQ音乐播放量最高的10位歌手" "$tmp/demo.out" && pass || fail "ask demo did not answer"
  ls "$tmp/demo"/chart*.png >/dev/null 2>&1 && pass || fail "ask demo wrote no chart"
fi
db="sqlite:$tmp/demo/music.db"
sem="$tmp/demo/semantic.yaml"
ask() { "$yak" ask "$@" --semantic "$sem" --db "$db" --today 2024-12-31; }

# JSON: exactly the documented keys, and the numbers of the reference SQL.
ask "2024年各平台的播放量" --format json >"$tmp/a.json" 2>"$tmp/a.err"
python3 - "$tmp/a.json" "$tmp/demo/music.db" <<'PY' && pass || fail "json output"
import json, sqlite3, sys
a = json.loads(open(sys.argv[1]).read())
assert sorted(a) == sorted(["question", "dsl", "sql", "columns", "rows", "path"]), sorted(a)
assert a["path"] == "rule" and a["columns"] == ["platform", "plays"], a
want = dict(sqlite3.connect(sys.argv[2]).execute(
    "SELECT platform, SUM(plays) FROM daily_plays WHERE dt LIKE '2024-%' GROUP BY platform").fetchall())
assert {r[0]: r[1] for r in a["rows"]} == want, (a["rows"], want)
assert "?" in a["sql"] and "2024" not in a["sql"], a["sql"]  # values are bound, not spliced
PY

ask "近7天每天的收入" --format csv >"$tmp/b.csv" && [[ $(head -1 "$tmp/b.csv") == "day,revenue" && $(wc -l <"$tmp/b.csv") -eq 8 ]] \
  && pass || fail "csv output: $(head -3 "$tmp/b.csv")"

ask "2024年每月播放量趋势" --chart "$tmp/trend.png" >/dev/null && [[ $(head -c 4 "$tmp/trend.png" | tail -c 3) == PNG ]] \
  && pass || fail "trend chart"
ask "top 5 songs by likes last month" --chart "$tmp/top.png" >/dev/null && [[ -s $tmp/top.png ]] && pass || fail "bar chart"

# Not understood: exit 3, what was recognised on stderr.
ask "今天天气怎么样" >"$tmp/c.out" 2>"$tmp/c.err"
code=$?
[[ $code -eq 3 && $(cat "$tmp/c.err") == *"not understood"* && $(cat "$tmp/c.err") == *"天气"* ]] && pass \
  || fail "not understood: exit $code, stderr $(cat "$tmp/c.err")"

# Injection in the question changes nothing: the database is untouched and read-only.
before=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT COUNT(*) FROM songs').fetchone()[0])" "$tmp/demo/music.db")
for q in "'; DROP TABLE songs; --" "QQ音乐的播放量'; DELETE FROM daily_plays; --" "播放量 UNION SELECT name FROM sqlite_master" \
         "1; ATTACH DATABASE '/tmp/x.db' AS x"; do
  ask "$q" --format json >/dev/null 2>&1
  code=$?
  [[ $code -eq 0 || $code -eq 3 ]] && pass || fail "injection '$q': exit $code"
done
after=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT COUNT(*) FROM songs').fetchone()[0])" "$tmp/demo/music.db")
[[ $before == "$after" && $before -gt 0 ]] && pass || fail "songs changed: $before -> $after"

# Sensitive dimension refused unless allowed; row filters narrow every read.
ask "各性别的歌手数量" >/dev/null 2>"$tmp/s.err"; code=$?
[[ $code -eq 3 && $(cat "$tmp/s.err") == *sensitive* ]] && pass || fail "sensitive: exit $code $(cat "$tmp/s.err")"
all=$(ask "总播放量" --format csv | tail -1)
qq=$(ask "总播放量" --format csv --row-filter "daily_plays:platform = 'QQ音乐'" | tail -1)
want=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"SELECT SUM(plays) FROM daily_plays WHERE platform='QQ音乐'\").fetchone()[0])" "$tmp/demo/music.db")
[[ $qq == "$want" && $all != "$qq" ]] && pass || fail "row filter: $qq want $want (all $all)"

# Bad input: exit 2, one line.
printf 'name: [\n' >"$tmp/bad.yaml"
expect_error "bad yaml" "bad.yaml" "$yak" ask "播放量" --semantic "$tmp/bad.yaml" --db "$db"
sed 's/expr: SUM(plays)/expr: SUM(playz)/' "$sem" >"$tmp/col.yaml"
expect_error "unknown column" "unknown column 'playz'" "$yak" ask "播放量" --semantic "$tmp/col.yaml" --db "$db"
sed 's/formula: likes \* 1.0 \/ plays/formula: like_rate * 2/' "$sem" >"$tmp/cycle.yaml"
expect_error "derived cycle" "cycle" "$yak" ask "播放量" --semantic "$tmp/cycle.yaml" --db "$db"
expect_error "missing model" "nope.yaml" "$yak" ask "播放量" --semantic "$tmp/nope.yaml" --db "$db"
expect_error "bad db url" "expected sqlite:PATH" "$yak" ask "播放量" --semantic "$sem" --db "postgres://u@h/db"
expect_error "missing db" "no such database file" "$yak" ask "播放量" --semantic "$sem" --db "sqlite:$tmp/none.db"
printf 'not a database at all, just some text bytes that are long enough to look like a header' >"$tmp/junk.db"
expect_error "junk db" "junk.db" "$yak" ask "播放量" --semantic "$sem" --db "sqlite:$tmp/junk.db"
expect_error "bad today" "--today" "$yak" ask "播放量" --semantic "$sem" --db "$db" --today 2024-13-01
expect_error "bad row filter" "SQL refused" "$yak" ask "播放量" --semantic "$sem" --db "$db" --row-filter "daily_plays:1; DROP TABLE songs"
expect_error "no question" "expected a question" "$yak" ask --semantic "$sem" --db "$db"

echo "$passes passed, $fails failed"
[[ $fails -eq 0 ]]
