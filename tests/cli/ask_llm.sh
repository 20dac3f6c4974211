#!/usr/bin/env bash
# yak ask --llm openai:URL end to end against the scripted chat server on loopback: a question the
# rules cannot read answered through the model (JSON path "llm" with the corrector's notes),
# --confirm into a few-shot file, ask eval counting the model's answers, and the errors: a dead
# server, a bad --llm value, --confirm without a file (exit 2, one line on stderr).
set -u
yak=$1
server=$(dirname "$yak")/scripted_chat_server
tmp=$(mktemp -d)
source "$(dirname "$0")/lib/checks.sh"
pid=
trap '[[ -n $pid ]] && kill $pid 2>/dev/null; rm -rf "$tmp"' EXIT

[[ -x $server ]] || { echo "FAIL $server was not built"; exit 1; }
"$yak" ask demo --dir "$tmp/demo" >/dev/null 2>&1 || { echo "FAIL ask demo"; exit 1; }
sem="$tmp/demo/semantic.yaml" db="sqlite:$tmp/demo/music.db"
q1="老唐的歌在QQ上一共被听了多少次"
cat >"$tmp/script.json" <<JSON
[{"when": "Question: $q1\nJSON:",
  "replies": ["{\"metrics\": [\"play_count\"], \"filters\": [{\"dimension\": \"singer\", \"values\": [\"唐俊子\"]}, {\"dimension\": \"platform\", \"values\": [\"qq\"]}]}"]}]
JSON
"$server" "$tmp/script.json" "$tmp/port" 2>"$tmp/server.err" &
pid=$!
for _ in $(seq 50); do [[ -s $tmp/port ]] && break; sleep 0.1; done
[[ -s $tmp/port ]] || { echo "FAIL the scripted server did not start: $(cat "$tmp/server.err")"; exit 1; }
url="openai:http://127.0.0.1:$(cat "$tmp/port")/v1"
ask() { "$yak" ask "$@" --semantic "$sem" --db "$db" --today 2024-12-31; }

# Without a model the rules give up (exit 3); with one the question is answered.
ask "$q1" >/dev/null 2>&1
[[ $? -eq 3 ]] && pass || fail "the rules alone should not understand '$q1'"
if ask "$q1" --llm "$url" --format json >"$tmp/a.json" 2>"$tmp/a.err"; then
  grep -q '"path":"llm"' "$tmp/a.json" && pass || fail "json path should be llm: $(cat "$tmp/a.json")"
  grep -q "play_count' -> 'plays'" "$tmp/a.json" && pass || fail "json should carry the corrector's notes"
  grep -q '"rows":\[\[[0-9]' "$tmp/a.json" && pass || fail "json should have a number: $(cat "$tmp/a.json")"
else
  fail "ask --llm: $(cat "$tmp/a.err")"
fi
ask "$q1" --llm "$url" >"$tmp/a.txt" 2>&1
grep -q "^path:     llm" "$tmp/a.txt" && grep -q "^note:     value 'qq' -> 'QQ音乐'" "$tmp/a.txt" && pass ||
  fail "table output should show the path and notes: $(cat "$tmp/a.txt")"

# --confirm keeps the question and its DSL as a few-shot example.
ask "$q1" --llm "$url" --fewshot "$tmp/shots.jsonl" --confirm >"$tmp/c.txt" 2>&1
[[ $(wc -l <"$tmp/shots.jsonl") -eq 1 ]] && grep -q '"question":"老唐的歌' "$tmp/shots.jsonl" && pass ||
  fail "--confirm should append one line: $(cat "$tmp/c.txt")"

# ask eval counts what the model answered.
cat >"$tmp/q.jsonl" <<JSON
{"id": 1, "type": "metric", "question": "总播放量是多少", "sql": "SELECT SUM(plays) FROM daily_plays"}
{"id": 2, "type": "filter", "question": "$q1", "sql": "SELECT SUM(p.plays) FROM daily_plays p JOIN songs s ON p.song_id = s.song_id JOIN artists a ON s.artist_id = a.artist_id WHERE a.name = '唐俊子' AND p.platform = 'QQ音乐'"}
JSON
"$yak" ask eval --semantic "$sem" --db "$db" --reference "$db" --questions "$tmp/q.jsonl" --llm "$url" >"$tmp/e.txt" 2>&1
grep -q "all .* 2/ 2" "$tmp/e.txt" && grep -q "answered 1 questions, 1 right" "$tmp/e.txt" && pass ||
  fail "ask eval --llm: $(cat "$tmp/e.txt")"

expect_error "dead server" "127.0.0.1:1" ask "$q1" --llm "openai:http://127.0.0.1:1/v1"
expect_error "bad --llm" "expected local:DIR or openai:" ask "$q1" --llm "gpt4"
expect_error "missing local model" "no such model folder" ask "$q1" --llm "local:$tmp/none"
expect_error "confirm without file" "--confirm needs --fewshot" ask "$q1" --confirm
expect_error "always without llm" "--llm-always needs --llm" ask "$q1" --llm-always

echo "$passes passed, $fails failed"
[[ $fails -eq 0 ]]
