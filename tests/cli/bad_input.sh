#!/usr/bin/env bash
# Every kind of broken model folder or prompt: exit code 2, one line on stderr naming the file and
# field, nothing on stdout, no crash.
set -u
yak=$1 golden=$2
tmp=$(mktemp -d)
source "$(dirname "$0")/lib/checks.sh"
trap 'rm -rf "$tmp"' EXIT

fresh() {  # a writable copy of a golden model
  rm -rf "$tmp/m"
  cp -r "$golden/models/$1" "$tmp/m"
}

expect_error "missing folder" "no config.json" "$yak" generate -m "$tmp/nope" --prompt-ids "1 2"

fresh llama_mha_f32
head -c 1000 "$golden/models/llama_mha_f32/model.safetensors" > "$tmp/m/model.safetensors"
expect_error "truncated safetensors" "model.safetensors" "$yak" generate -m "$tmp/m" --prompt-ids "1 2"

fresh llama_mha_f32
printf '\x10\x00\x00\x00\x00\x00\x00\x00{"a":1}' > "$tmp/m/model.safetensors"
expect_error "header past the end" "exceeds the file size" "$yak" info -m "$tmp/m"

fresh llama_mha_f32
python3 - "$tmp/m/model.safetensors" <<'PY'
import json, struct, sys
p = sys.argv[1]
b = open(p, 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n])
k = next(k for k in h if k != '__metadata__')
h[k]['data_offsets'][1] += 10**9
nh = json.dumps(h).encode()
open(p, 'wb').write(struct.pack('<Q', len(nh)) + nh + b[8 + n:])
PY
expect_error "offsets past the end" "outside the data section" "$yak" info -m "$tmp/m"

fresh llama_mha_f32
sed -i 's/"intermediate_size": [0-9]*/"intermediate_size": 100/' "$tmp/m/config.json"
expect_error "shape disagrees with config" "config.json implies" "$yak" generate -m "$tmp/m" --prompt-ids "1 2"

fresh llama_mha_f32
sed -i 's/LlamaForCausalLM/GPTNeoXForCausalLM/' "$tmp/m/config.json"
expect_error "unknown architecture" "unsupported architecture 'GPTNeoXForCausalLM'" "$yak" info -m "$tmp/m"

fresh llama_rope_yarn
sed -i 's/"yarn"/"longrope"/' "$tmp/m/config.json"
expect_error "unknown rope type" "unsupported rope type 'longrope'" "$yak" info -m "$tmp/m"

fresh llama_mha_f32
printf '{"architectures": ["LlamaForCausalLM"],\n "vocab_size": 320,,\n}' > "$tmp/m/config.json"
expect_error "broken JSON" "invalid JSON at line 2" "$yak" info -m "$tmp/m"

fresh llama_mha_f32
expect_error "id outside vocabulary" "outside the vocabulary" "$yak" generate -m "$tmp/m" --prompt-ids "1 99999"
expect_error "non-numeric id" "not a non-negative integer" "$yak" generate -m "$tmp/m" --prompt-ids "1 x"
expect_error "unknown flag" "--bogus" "$yak" generate -m "$tmp/m" --bogus

if [[ -f "$golden/tokenizer/tiny_bpe.json" ]]; then
  fresh llama_mha_f32
  cp "$golden/tokenizer/tiny_bpe.json" "$tmp/m/tokenizer.json"
  expect_error "prompt not UTF-8" "invalid UTF-8" "$yak" generate -m "$tmp/m" -p "$(printf 'ok \xff\xfe bad')"
fi

echo "$passes passed, $fails failed"
[[ $fails -eq 0 ]]
