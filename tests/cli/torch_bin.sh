#!/usr/bin/env bash
# PyTorch .bin checkpoints through the CLI (tests/golden/torch, from tools/golden/make_torch_goldens.py):
# `yak generate` on pytorch_model.bin folders (one file; shards + index) prints transformers' greedy
# continuation of the checkpoint they were made from; `yak info` names the format; `yak lora merge`
# reads PEFT's adapter_model.bin into the same weights as the safetensors adapter;
# a folder with a malicious pickle exits 2 naming the refused global, and nothing runs.
set -u
yak=$1 golden=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 passes=0
ok() { passes=$((passes + 1)); }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
greedy_lines() {  # prompt|continuation lines of a golden.json
  python3 - "$1" <<'PY'
import json, sys
g = json.load(open(sys.argv[1]))
for p, c in zip(g["prompts"], g["greedy"]):
    print(" ".join(map(str, p)) + "|" + " ".join(map(str, c)))
PY
}
check_greedy() {  # model golden_json label
  local n=0 line prompt want got
  while IFS= read -r line; do
    prompt=${line%%|*} want=${line##*|}
    got=$("$yak" generate -m "$1" --prompt-ids "$prompt" -n 32 --temp 0 --ignore-eos --ids -t 1 2>&1)
    [[ $got == "$want" ]] && n=$((n + 1)) || bad "$3: got '$got' want '$want'"
  done < <(greedy_lines "$2")
  [[ $n -eq 3 ]] && ok || bad "$3: $n/3 greedy continuations match transformers"
}
check_greedy "$golden/torch/llama_bf16_bin" "$golden/models/llama_bf16/golden.json" "pytorch_model.bin"
check_greedy "$golden/torch/llama_mha_f32_sharded_bin" "$golden/models/llama_mha_f32/golden.json" "sharded .bin"

"$yak" info -m "$golden/torch/llama_mha_f32_sharded_bin" >"$tmp/info" 2>&1 || bad "info: $(tail -1 "$tmp/info")"
grep -q "^format *PyTorch .bin" "$tmp/info" && ok || bad "info does not name the .bin format"
grep -q "^format" <("$yak" info -m "$golden/models/llama_mha_f32" 2>&1) && bad "info names a format for safetensors" || ok

# The adapter as PEFT wrote it with safe_serialization=False merges into the same weights as the
# safetensors adapter.
base=$golden/models/llama_mha_f32
"$yak" lora merge --base "$base" --adapter "$golden/torch/lora_modules_to_save_bin" --out "$tmp/merged-bin" >/dev/null 2>&1 &&
  ok || bad "lora merge of adapter_model.bin"
"$yak" lora merge --base "$base" --adapter "$golden/lora/llama_mha_f32_modules_to_save" --out "$tmp/merged-st" \
  >/dev/null 2>&1 && ok || bad "lora merge of adapter_model.safetensors"
cmp -s "$tmp/merged-bin/model.safetensors" "$tmp/merged-st/model.safetensors" && ok ||
  bad "the .bin adapter merged into other weights than the safetensors one"

marker=/tmp/yak-torch-pickle-was-executed
rm -f "$marker"
mkdir -p "$tmp/evil"
cp "$golden/torch/llama_bf16_bin/config.json" "$tmp/evil/"
cp "$golden/torch/malicious_system.bin" "$tmp/evil/pytorch_model.bin"
"$yak" generate -m "$tmp/evil" --prompt-ids "1 2 3" -n 2 --ids >"$tmp/out" 2>&1
rc=$?
[[ $rc -eq 2 ]] && ok || bad "malicious pickle: exit $rc, want 2"
grep -q "global 'posix.system' is refused" "$tmp/out" && ok || bad "malicious pickle: message $(cat "$tmp/out")"
[[ ! -e $marker ]] && ok || bad "the malicious pickle ran"
echo "$passes passed, $fails failed"
[[ $fails -eq 0 ]]
