#!/usr/bin/env bash
# yak ask serve: questions over HTTP (the answer JSON of --format json), knowledge-base refresh on
# demand, health, bad requests (400 with a message), and a clean stop on SIGTERM. The same checks
# then run against `yak serve -m MODEL --semantic --db` (one question service in both servers).
# Requests go through bash's /dev/tcp so the test needs no HTTP client.
set -u
yak=$1 golden=${2:-}
tmp=$(mktemp -d)
source "$(dirname "$0")/lib/checks.sh"
pid=
trap '[[ -n $pid ]] && kill $pid 2>/dev/null; rm -rf "$tmp"' EXIT

request() {  # request METHOD PATH [BODY] -> status line and body on stdout
  local body=${3:-}
  exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
  printf '%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
    "$1" "$2" "$(printf '%s' "$body" | wc -c)" "$body" >&3
  cat <&3
  exec 3<&-
}

"$yak" ask demo --dir "$tmp/demo" >/dev/null 2>&1 || { echo "FAIL ask demo"; exit 1; }
checks() {  # checks SERVER-COMMAND...: start it on the demo and ask
  "$@" --semantic "$tmp/demo/semantic.yaml" --db "sqlite:$tmp/demo/music.db" --today 2024-12-31 \
    --port 0 >"$tmp/out" 2>"$tmp/err" &
  pid=$!
  for _ in $(seq 300); do grep -q "api/ask" "$tmp/out" 2>/dev/null && break; sleep 0.1; done
  port=$(sed -n 's/.*127.0.0.1:\([0-9]*\).*/\1/p' "$tmp/out" | head -1)
  [[ -n $port ]] || { fail "$* did not start: $(cat "$tmp/err")"; return; }

  request POST /api/ask '{"question": "2024年各平台的播放量"}' >"$tmp/a"
  grep -q "^HTTP/1.1 200" "$tmp/a" && grep -q '"path":"rule"' "$tmp/a" && grep -q '"rows":\[\["QQ音乐",' "$tmp/a" && pass ||
    fail "POST /api/ask: $(cat "$tmp/a")"
  request POST /api/ask '{"question": "今年各平台的播放量", "today": "2023-06-30"}' >"$tmp/b"
  grep -q '"time_range":\["2023-01-01","2023-12-31"\]' "$tmp/b" && pass || fail "'today' in the request: $(cat "$tmp/b")"
  request POST /api/ask '{"question": "hello there"}' >"$tmp/c"
  grep -q "^HTTP/1.1 200" "$tmp/c" && grep -q '"error":"not understood' "$tmp/c" && pass ||
    fail "a question not understood is an answer with 'error': $(cat "$tmp/c")"
  request POST /api/ask '{"q": 1}' >"$tmp/d"
  grep -q "^HTTP/1.1 400" "$tmp/d" && grep -q "question" "$tmp/d" && pass || fail "a bad request should be 400: $(cat "$tmp/d")"
  request POST /api/ask '{"question": "x", "today": "yesterday"}' >"$tmp/e"
  grep -q "^HTTP/1.1 400" "$tmp/e" && pass || fail "a bad 'today' should be 400: $(cat "$tmp/e")"
  request POST /api/refresh >"$tmp/r"
  grep -q "^HTTP/1.1 200" "$tmp/r" && grep -q '"entries":[1-9]' "$tmp/r" && pass || fail "POST /api/refresh: $(cat "$tmp/r")"
  request GET /api/health >"$tmp/h"
  grep -q '"status":"ok"' "$tmp/h" && grep -q '"server":"SQLite' "$tmp/h" && pass || fail "GET /api/health: $(cat "$tmp/h")"

  kill -TERM $pid
  wait $pid
  code=$?
  pid=
  [[ $code -eq 0 ]] && pass || fail "SIGTERM should stop the server cleanly (exit $code): $(cat "$tmp/err")"
}

checks "$yak" ask serve
if [[ -n $golden ]]; then
  checks "$yak" serve -m "$golden/models/qwen2_chat"
fi

echo "$passes passed, $fails failed"
[[ $fails -eq 0 ]]
