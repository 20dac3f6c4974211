#!/usr/bin/env bash
# yak ask --plugins end to end with the music demo's documents and exchange-rate plug-in: a
# definition answered from the documents with citations, a plug-in answer with its table, data
# questions untouched, and bad plug-in files or flags (exit 2, one line on stderr).
set -u
yak=$1
src=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
source "$(dirname "$0")/lib/checks.sh"
trap 'rm -rf "$tmp"' EXIT

"$yak" ask demo --dir "$tmp/demo" >/dev/null 2>&1 || { echo "FAIL ask demo"; exit 1; }
plugins="$src/examples/music/plugins.yaml"
ask() { "$yak" ask "$@" --semantic "$tmp/demo/semantic.yaml" --db "sqlite:$tmp/demo/music.db" --today 2024-12-31; }

ask "点赞率是什么意思" --plugins "$plugins" --format json >"$tmp/d.json" 2>"$tmp/d.err" || fail "docs: $(cat "$tmp/d.err")"
grep -q '"path":"docs"' "$tmp/d.json" && grep -q '"source":"docs/metrics.md:' "$tmp/d.json" && pass ||
  fail "a definition should be answered from docs/metrics.md: $(cat "$tmp/d.json")"
ask "What does like rate mean?" --plugins "$plugins" >"$tmp/d.txt" 2>&1
grep -q "^  \[1\] docs/metrics.md:" "$tmp/d.txt" && pass || fail "table output should cite: $(cat "$tmp/d.txt")"

ask "美元兑人民币汇率是多少" --plugins "$plugins" --format json >"$tmp/p.json" 2>&1
grep -q '"path":"plugin:fx_rate"' "$tmp/p.json" && grep -q '"rows":\[\["USD",7.1\]' "$tmp/p.json" && pass ||
  fail "the exchange-rate plug-in should answer: $(cat "$tmp/p.json")"
ask "2024年各平台的播放量" --plugins "$plugins" --format json >"$tmp/q.json" 2>&1
grep -q '"path":"rule"' "$tmp/q.json" && pass || fail "a data question should stay on the rule path: $(cat "$tmp/q.json")"

printf 'plugins:\n  - name: x\n    command: c\n' >"$tmp/bad.yaml"
expect_error "plug-in without description" "bad.yaml:2: missing field 'description'" ask "q" --plugins "$tmp/bad.yaml"
printf 'documents: [nowhere]\n' >"$tmp/nodocs.yaml"
expect_error "missing documents" "nowhere: no such document" ask "q" --plugins "$tmp/nodocs.yaml"
printf 'plugins:\n  - {name: broken, description: 汇率 exchange rate, command: "exit 5"}\n' >"$tmp/broken.yaml"
expect_error "failing plug-in" "plug-in 'broken': exited with status 5" ask "汇率" --plugins "$tmp/broken.yaml"
expect_error "embed without plugins" "--embed-model needs --plugins" ask "q" --embed-model "$tmp"

echo "$passes passed, $fails failed"
[[ $fails -eq 0 ]]
