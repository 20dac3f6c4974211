#!/usr/bin/env bash
# yak convert / yak quantize from the CLI: a folder to f16 GGUF and on to Q4_K_M and Q8_0, the
# written files run (f16: transformers' greedy tokens), progress and sizes are printed, and bad
# input exits 2 naming the problem without leaving a file behind.
set -u
yak=$1 golden=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0 passes=0
check() {  # check NAME CONDITION
  if eval "$2"; then passes=$((passes + 1)); else echo "FAIL: $1"; fails=$((fails + 1)); fi
}
out=$("$yak" convert -m "$golden/models/llama_bpe" --out "$dir/m-f16.gguf" --type f16 2>&1)
check "convert f16: $out" "[[ -s $dir/m-f16.gguf && '$out' == *'wrote '*'(f16, '* ]]"
read -r prompt want < <(python3 - "$golden/gguf/expected.json" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))["llama_bpe"]
print(",".join(map(str, e["prompt"])), " ".join(map(str, e["greedy"])))
PY
)
got=$("$yak" generate -m "$dir/m-f16.gguf" --prompt-ids "$prompt" -n 24 --temp 0 --ignore-eos --ids -t 2 2>&1)
check "f16 greedy: got '$got' want '$want'" "[[ '$got' == '$want' ]]"
for t in q4_k_m q8_0; do
  out=$("$yak" quantize "$dir/m-f16.gguf" "$dir/m-$t.gguf" $t 2>&1)
  check "quantize $t: $out" "[[ -s $dir/m-$t.gguf ]]"
  got=$("$yak" generate -m "$dir/m-$t.gguf" --prompt-ids "$prompt" -n 4 --temp 0 --ids -t 2 2>&1)
  check "$t generates: $got" "[[ '$got' =~ ^[0-9]+\ [0-9]+\ [0-9]+\ [0-9]+$ ]]"
done
# and back: a folder from the f16 file runs with transformers' greedy tokens, its config.json has
# the original's settings and its tokenizer.json gives the original tokenizer's ids
out=$("$yak" convert -m "$dir/m-f16.gguf" --out "$dir/back" 2>&1)
check "gguf to folder: $out" "[[ -s $dir/back/model.safetensors && -s $dir/back/tokenizer.json && -s $dir/back/config.json ]]"
got=$("$yak" generate -m "$dir/back" --prompt-ids "$prompt" -n 24 --temp 0 --ignore-eos --ids -t 2 2>&1)
check "folder greedy: got '$got' want '$want'" "[[ '$got' == '$want' ]]"
same=$(python3 - "$dir/back/config.json" "$golden/models/llama_bpe/config.json" <<'PY'
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
keys = ["architectures", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
        "num_key_value_heads", "max_position_embeddings", "tie_word_embeddings", "eos_token_id"]
bad = [k for k in keys if a.get(k) != b.get(k)] + [k for k in ["rope_theta", "rms_norm_eps"] if abs(a[k] / b.get(k, a[k]) - 1) > 1e-6]
print("ok" if not bad else "differs: " + ",".join(bad))
PY
)
check "config.json settings: $same" "[[ '$same' == ok ]]"
text="Hello world, 你好！ 123 yak::tok <|im_start|>user ümlaut café"
a=$("$yak" tokenize --tokenizer "$dir/back" "$text" 2>&1) b=$("$yak" tokenize --tokenizer "$golden/models/llama_bpe" "$text" 2>&1)
check "tokenizer.json ids: '$a' vs '$b'" "[[ -n '$a' && '$a' == '$b' ]]"
"$yak" convert -m "$dir/m-q8_0.gguf" --out "$dir/back-q" >/dev/null 2>"$dir/err"
code=$?
check "quantized GGUF to folder exits 2 (got $code)" "[[ $code -eq 2 ]] && grep -q 'f32, f16 or bf16' $dir/err && [[ ! -e $dir/back-q ]]"
"$yak" convert -m "$golden/models/llama_bpe" --out "$dir/bad.gguf" --type q3_k_xl >/dev/null 2>"$dir/err"
code=$?
check "unknown type exits 2 (got $code)" "[[ $code -eq 2 ]] && grep -q q3_k_xl $dir/err && [[ ! -e $dir/bad.gguf ]]"
"$yak" convert -m "$dir/nowhere" --out "$dir/bad.gguf" >/dev/null 2>"$dir/err"
code=$?
check "missing folder exits 2 (got $code)" "[[ $code -eq 2 ]] && grep -q nowhere $dir/err && [[ ! -e $dir/bad.gguf ]]"
"$yak" quantize "$dir/m-f16.gguf" "$dir/m-f16.gguf" q8_0 >/dev/null 2>"$dir/err"
code=$?
check "quantize onto its input exits 2 (got $code)" "[[ $code -eq 2 ]] && grep -q overwrite $dir/err"
echo "$passes passed, $fails failed"
[[ $fails -eq 0 ]]
