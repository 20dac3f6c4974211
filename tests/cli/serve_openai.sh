#!/usr/bin/env bash
# yak serve against real clients: the official `openai` package (installed from PyPI into a venv
# beside the build) drives tests/serve/openai_client.py against a golden checkpoint behind an API
# key; tests/serve/busy_client.py checks the queue bound (503) and a client that goes away on a
# bigger random model; SIGTERM stops the server cleanly (exit 0). Skips (77) only when the
# package cannot be installed.
set -u
yak=$1 golden=$2
here=$(cd "$(dirname "$0")/.." && pwd)
m=$golden/models/qwen2_chat
venv=$(dirname "$yak")/../openai-venv
fails=0
tmp=$(mktemp -d)
srv=
trap '[[ -n $srv ]] && kill $srv 2>/dev/null; rm -rf "$tmp"' EXIT
bad() { echo "FAIL $1"; fails=$((fails + 1)); }

source "$(dirname "$0")/lib/serve.sh"
# jsonschema (an independent validator) checks the constrained outputs.
need_venv "$venv" "import openai, jsonschema" openai jsonschema

start() { serve_start srv "$@" && srv=$pid; }
stop() {
  serve_stop "$srv" srv
  srv=
}

if start -m "$m" --api-key sk-test --parallel 4 --max-body-mb 1; then
  "$venv/bin/python" "$here/serve/openai_client.py" "$yak" "$m" "$url" sk-test || bad "openai client checks"
  stop
fi

# Speculative decoding: a one-layer draft over the same tokenizer proposes tokens; every check
# above holds unchanged (replies at temperature 0 equal yak generate's without a draft).
cat >"$tmp/draft.json" <<'JSON'
{"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 32, "intermediate_size": 64,
 "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 501,
 "max_position_embeddings": 256, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": true,
 "eos_token_id": 4}
JSON
"$yak" model init --config "$tmp/draft.json" --out "$tmp/draft" --tokenizer "$m" --seed 9 >/dev/null || bad "draft init"
if start -m "$m" --api-key sk-test --parallel 4 --max-body-mb 1 --draft-model "$tmp/draft" --draft-max 3; then
  grep -q "speculative decoding with" "$tmp/srv.txt" || bad "the draft model is not announced"
  "$venv/bin/python" "$here/serve/openai_client.py" "$yak" "$m" "$url" sk-test speculative ||
    bad "openai client checks with a draft model"
  stop
fi
# A draft must share the tokenizer: another vocabulary is refused before anything is served.
mkdir -p "$tmp/othertok" && cp "$golden/tokenizer/tiny_bpe_gpt2.json" "$tmp/othertok/tokenizer.json"
"$yak" model init --config "$tmp/draft.json" --out "$tmp/otherdraft" --tokenizer "$tmp/othertok" >/dev/null ||
  bad "draft init (other tokenizer)"
timeout 60 "$yak" serve -m "$m" --port 0 --draft-model "$tmp/otherdraft" >"$tmp/d.out" 2>"$tmp/d.err"
rc=$?
[[ $rc -eq 2 ]] && grep -q "must share the tokenizer" "$tmp/d.err" ||
  bad "a draft with another tokenizer: exit $rc, $(cat "$tmp/d.err")"

# Tool calls need room for the tool definitions in the prompt: a small random model with a long
# context and the golden tokenizer and chat template.
cat >"$tmp/tools.json" <<'JSON'
{"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128,
 "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 501,
 "max_position_embeddings": 2048, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": true,
 "eos_token_id": 4}
JSON
"$yak" model init --config "$tmp/tools.json" --out "$tmp/tools" --tokenizer "$m" --seed 5 >/dev/null || bad "model init"
if start -m "$tmp/tools" --api-key sk-test --parallel 4; then
  "$venv/bin/python" "$here/serve/tools_client.py" "$url" sk-test || bad "tool-call checks"
  stop
fi

# A model slow enough that one long request holds the only slot for seconds.
cat >"$tmp/config.json" <<'JSON'
{"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 384, "intermediate_size": 1024,
 "num_hidden_layers": 6, "num_attention_heads": 6, "num_key_value_heads": 2, "vocab_size": 501,
 "max_position_embeddings": 4096, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": true,
 "eos_token_id": 4}
JSON
"$yak" model init --config "$tmp/config.json" --out "$tmp/slow" --tokenizer "$m" --seed 3 >/dev/null ||
  bad "model init"
if start -m "$tmp/slow" --parallel 1 --queue 1 --ctx-size 4096 --chat-template none; then
  "$venv/bin/python" "$here/serve/busy_client.py" "$url" || bad "busy server checks"
  stop
fi

[[ $fails -eq 0 ]] && echo "serve_openai: all checks passed" || exit 1
