#!/usr/bin/env bash
# `yak generate --prompt-ids ... --temp 0 --ids` prints transformers' greedy continuation for every
# golden checkpoint: the CLI path end to end, batch of prompts included.
set -u
yak=$1 golden=$2
fails=0 passes=0
for dir in "$golden"/models/*/; do
  name=$(basename "$dir")
  [[ -f $dir/golden.json ]] || continue
  mapfile -t lines < <(python3 - "$dir/golden.json" <<'PY'
import json, sys
g = json.load(open(sys.argv[1]))
for p, c in zip(g["prompts"], g["greedy"]):
    print(" ".join(map(str, p)) + "|" + " ".join(map(str, c)))
PY
)
  for line in "${lines[@]}"; do
    prompt=${line%%|*} want=${line##*|}
    got=$("$yak" generate -m "$dir" --prompt-ids "$prompt" -n 32 --temp 0 --ignore-eos --ids -t 1 2>&1)
    if [[ $got == "$want" ]]; then passes=$((passes + 1)); else echo "FAIL $name: got '$got' want '$want'"; fails=$((fails + 1)); fi
  done
done
echo "$passes passed, $fails failed"
[[ $fails -eq 0 ]]
