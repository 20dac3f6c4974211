#!/usr/bin/env bash
# `--alpha` (Chinese-LLaMA-Alpaca-2's NTK rope scaling) through the CLI: a number gives exactly the
# output of the same checkpoint with rope_theta raised by a^(d/(d-2)); auto and 1 leave a prompt
# inside the trained context as transformers' greedy continuation; bad values and rope types exit 2.
set -u
yak=$1 golden=$2
m=$golden/models/llama_mha_f32
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 passes=0
ok() { passes=$((passes + 1)); }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
mapfile -t lines < <(python3 - "$m/golden.json" <<'PY'
import json, sys
g = json.load(open(sys.argv[1]))
for p, c in zip(g["prompts"], g["greedy"]):
    print(" ".join(map(str, p)) + "|" + " ".join(map(str, c)))
PY
)
# The same checkpoint with theta * 4^(16/14), written by Python from config.json.
mkdir -p "$tmp/raised"
cp "$m"/*.safetensors "$m/generation_config.json" "$tmp/raised/"
python3 - "$m/config.json" "$tmp/raised/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
d = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
c["rope_parameters"]["rope_theta"] *= 4.0 ** (d / (d - 2))
json.dump(c, open(sys.argv[2], "w"), indent=2)
PY
changed=0
for line in "${lines[@]}"; do
  prompt=${line%%|*} want=${line##*|}
  gen() { "$yak" generate --prompt-ids "$prompt" -n 32 --temp 0 --ignore-eos --ids -t 1 "$@" 2>&1; }
  [[ $(gen -m "$m" --alpha auto) == "$want" ]] && ok || bad "--alpha auto changed a prompt inside the context"
  [[ $(gen -m "$m" --alpha 1) == "$want" ]] && ok || bad "--alpha 1 changed the output"
  a4=$(gen -m "$m" --alpha 4)
  [[ $a4 == "$(gen -m "$tmp/raised")" ]] && ok || bad "--alpha 4 differs from rope_theta x 4^(d/(d-2))"
  [[ $a4 != "$want" ]] && changed=$((changed + 1))
done
[[ $changed -gt 0 ]] && ok || bad "--alpha 4 changed no continuation"
for v in 0 -1 abc; do
  "$yak" generate -m "$m" --prompt-ids "1 2" -n 2 --ids --alpha "$v" >"$tmp/out" 2>&1
  [[ $? -eq 2 ]] && grep -q "expected a positive number or 'auto'" "$tmp/out" && ok || bad "--alpha $v: $(cat "$tmp/out")"
done
"$yak" generate -m "$golden/models/llama_rope_yarn" --prompt-ids "1 2" -n 2 --ids --alpha 2 >"$tmp/out" 2>&1
[[ $? -eq 2 ]] && grep -q "default or linear rope" "$tmp/out" && ok || bad "--alpha on yarn: $(cat "$tmp/out")"
echo "$passes passed, $fails failed"
[[ $fails -eq 0 ]]
