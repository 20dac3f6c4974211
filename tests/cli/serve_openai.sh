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
init_qwen2 "$tmp/draft" "$m" 9 32 64 1 2 1 256 || bad "draft init"
if start -m "$m" --api-key sk-test --parallel 4 --max-body-mb 1 --draft-model "$tmp/draft" --draft-max 3 \
  --draft-p-min 0; then  # a random draft is never sure: draft every round anyway
  grep -q "speculative decoding with" "$tmp/srv.txt" || bad "the draft model is not announced"
  "$venv/bin/python" "$here/serve/openai_client.py" "$yak" "$m" "$url" sk-test speculative ||
    bad "openai client checks with a draft model"
  stop
fi
# A draft must share the tokenizer: another vocabulary is refused before anything is served.
mkdir -p "$tmp/othertok" && cp "$golden/tokenizer/tiny_bpe_gpt2.json" "$tmp/othertok/tokenizer.json"
init_qwen2 "$tmp/otherdraft" "$tmp/othertok" 0 32 64 1 2 1 256 || bad "draft init (other tokenizer)"
timeout 60 "$yak" serve -m "$m" --port 0 --draft-model "$tmp/otherdraft" >"$tmp/d.out" 2>"$tmp/d.err"
rc=$?
[[ $rc -eq 2 ]] && grep -q "must share the tokenizer" "$tmp/d.err" ||
  bad "a draft with another tokenizer: exit $rc, $(cat "$tmp/d.err")"

# Tool calls need room for the tool definitions in the prompt: a small random model with a long
# context and the golden tokenizer. The golden checkpoint's own template has no tools, so the
# built-in chatml family (Qwen's tool format) renders them; then Qwen2.5's real template through
# the Jinja interpreter, when ../shared/data has it.
init_qwen2 "$tmp/tools" "$m" 5 64 128 2 4 2 2048 || bad "model init"
if start -m "$tmp/tools" --api-key sk-test --parallel 4 --chat-template chatml; then
  "$venv/bin/python" "$here/serve/tools_client.py" "$url" sk-test || bad "tool-call checks (chatml)"
  stop
fi
qwen25=$here/../../shared/data/chat-templates/Qwen-Qwen2.5-7B-Instruct.jinja
if [[ -f $qwen25 ]]; then
  if start -m "$tmp/tools" --api-key sk-test --parallel 4 --chat-template "$qwen25"; then
    "$venv/bin/python" "$here/serve/tools_client.py" "$url" sk-test || bad "tool-call checks (Qwen2.5's Jinja template)"
    stop
  fi
else
  echo "serve_openai: Qwen2.5's Jinja template not in ../shared/data/chat-templates; tool calls checked with chatml only"
fi

# A model slow enough that one long request holds the only slot for seconds.
init_qwen2 "$tmp/slow" "$m" 3 384 1024 6 6 2 4096 || bad "model init"
if start -m "$tmp/slow" --parallel 1 --queue 1 --ctx-size 4096 --chat-template none; then
  "$venv/bin/python" "$here/serve/busy_client.py" "$url" || bad "busy server checks"
  stop
fi

[[ $fails -eq 0 ]] && echo "serve_openai: all checks passed" || exit 1
