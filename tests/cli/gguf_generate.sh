#!/usr/bin/env bash
# `yak generate|info -m FILE.gguf` on GGUF files written by llama.cpp's converter: greedy tokens
# equal transformers' on the folder each came from (f32 and f16 files), info names the file's
# weights and the vocabulary inside it, and a missing file is a clear error (exit 2).
set -u
yak=$1 golden=$2
fails=0 passes=0
check() {  # check NAME CONDITION
  if eval "$2"; then passes=$((passes + 1)); else echo "FAIL: $1"; fails=$((fails + 1)); fi
}
for model in qwen2_bpe llama_bpe; do
  read -r prompt want < <(python3 - "$golden/gguf/expected.json" "$model" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))[sys.argv[2]]
print(",".join(map(str, e["prompt"])), ",".join(map(str, e["greedy"])))
PY
)
  for t in f32 f16; do
    got=$("$yak" generate -m "$golden/gguf/$model-$t.gguf" --prompt-ids "$prompt" -n 24 --temp 0 --ignore-eos --ids -t 2 2>&1)
    check "$model-$t greedy: got '$got' want '${want//,/ }'" "[[ '$got' == '${want//,/ }' ]]"
  done
done
info=$("$yak" info -m "$golden/gguf/llama_bpe-q8_0.gguf" 2>&1)
check "info shows q8_0 weights: $info" "[[ '$info' == *'q8_0'* ]]"
check "info shows the GGUF vocabulary" "[[ '$info' == *'byte-level BPE (GGUF'* ]]"
err=$(mktemp)
"$yak" generate -m /nonexistent/model.gguf -p hi >/dev/null 2>"$err"
code=$?
check "missing file exits 2 (got $code)" "[[ $code -eq 2 ]]"
check "missing file is named: $(cat "$err")" "grep -q nonexistent/model.gguf $err"
rm -f "$err"
echo "$passes passed, $fails failed"
[[ $fails -eq 0 ]]
