#!/usr/bin/env bash
# yak generate with constrained output: a JSON schema (inline and from a file; the output parsed
# and checked by Python's json module, independent of yak), a GBNF grammar, and bad grammars and
# schemas refused with exit 2 and a message naming the flag, the line or the keyword.
set -u
yak=$1 golden=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/lib/checks.sh"
m=$golden/models/qwen2_chat

schema='{"type":"object","properties":{"name":{"type":"string","maxLength":8},"n":{"type":"integer"},"ok":{"type":"boolean"}},"required":["name","n"],"additionalProperties":false}'
for seed in 1 2 3; do
  "$yak" generate -m "$m" -p "Describe:" -n 150 --temperature 1 --seed $seed --json-schema "$schema" >"$tmp/out" 2>"$tmp/err" ||
    { fail "generate --json-schema (seed $seed): $(cat "$tmp/err")"; continue; }
  python3 - "$tmp/out" <<'PY' && pass || fail "seed $seed: output does not follow the schema: $(cat "$tmp/out")"
import json, sys
o = json.loads(open(sys.argv[1], encoding="utf-8").read())
assert isinstance(o, dict) and set(o) <= {"name", "n", "ok"} and {"name", "n"} <= set(o)
assert isinstance(o["name"], str) and len(o["name"]) <= 8 and type(o["n"]) is int
assert "ok" not in o or type(o["ok"]) is bool
PY
done
printf '%s' "$schema" >"$tmp/schema.json"
"$yak" generate -m "$m" -p "Describe:" -n 150 --temperature 1 --seed 4 --json-schema "$tmp/schema.json" >"$tmp/out2" 2>"$tmp/err" &&
  python3 -c 'import json,sys; json.loads(open(sys.argv[1]).read())' "$tmp/out2" && pass ||
  fail "--json-schema FILE: $(cat "$tmp/out2" "$tmp/err")"

out=$("$yak" generate -m "$m" -p "Yes or no?" -n 20 --temperature 1 --seed 5 --grammar 'root ::= "yes" | "no" | "maybe" "!"{1,3}')
[[ $out =~ ^(yes|no|maybe!{1,3})$ ]] && pass || fail "--grammar: got '$out'"
printf 'root ::= digit+ "."\ndigit ::= [0-9]\n' >"$tmp/g.gbnf"
out=$("$yak" generate -m "$m" -p "A number:" -n 12 --temperature 1 --seed 6 --grammar-file "$tmp/g.gbnf")
[[ $out =~ ^[0-9]+\.?$ ]] && pass || fail "--grammar-file: got '$out'"

expect_error "undefined rule" "rule 'digits' is used but never defined" "$yak" generate -m "$m" -p x --grammar 'root ::= digits'
printf 'root ::= "a"\n\nroot ::= "b"\n' >"$tmp/twice.gbnf"
expect_error "rule defined twice" "twice.gbnf: line 3" "$yak" generate -m "$m" -p x --grammar-file "$tmp/twice.gbnf"
expect_error "unsupported keyword" "'pattern' is not supported" "$yak" generate -m "$m" -p x \
  --json-schema '{"type":"string","pattern":"a+"}'
expect_error "two constraints" "give one of" "$yak" generate -m "$m" -p x --grammar 'root ::= "a"' --json-schema '{}'

echo "$passes passed, $fails failed"
[[ $fails -eq 0 ]]
