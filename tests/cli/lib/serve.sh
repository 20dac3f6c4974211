# Shared by the yak serve test scripts (source after setting $yak, $tmp and a bad() reporter).
#
# need_venv VENV "import a, b" PACKAGE...: the packages in the venv beside the build (shared by
# the scripts: installed under a lock, created only when absent); exits 77 with the reason when
# they cannot be installed.
need_venv() {
  local venv=$1 probe=$2
  shift 2
  "$venv/bin/python" -c "$probe" 2>/dev/null && return 0
  (
    flock 9
    [[ -x $venv/bin/python ]] || python3 -m venv "$venv"
    "$venv/bin/python" -c "$probe" 2>/dev/null || "$venv/bin/pip" install -q "$@"
  ) 9>"$venv.lock" >"$tmp/pip.log" 2>&1
  if ! "$venv/bin/python" -c "$probe" 2>/dev/null; then
    echo "SKIP: $* could not be installed into $venv: $(tail -3 "$tmp/pip.log")"
    exit 77
  fi
}

# serve_start NAME ARGS...: `yak serve --port 0 ARGS...` in the background, logs in $tmp/NAME.*;
# sets pid and url (the /v1 base the server printed).
serve_start() {
  local name=$1
  shift
  "$yak" serve --port 0 "$@" >"$tmp/$name.txt" 2>"$tmp/$name.err" &
  pid=$!
  url=
  for _ in $(seq 300); do
    url=$(grep -o 'http://[^ ]*/v1' "$tmp/$name.txt" 2>/dev/null)
    [[ -n $url ]] && return 0
    sleep 0.1
  done
  bad "serve printed no URL: $(cat "$tmp/$name.txt" "$tmp/$name.err")"
  return 1
}

# serve_stop PID NAME: SIGTERM; the server must drain, report its stop and exit 0.
serve_stop() {
  local p=$1 name=$2
  kill -TERM "$p"
  wait "$p"
  local rc=$?
  [[ $rc -eq 0 ]] || bad "$name serve exited $rc after SIGTERM: $(tail -3 "$tmp/$name.err")"
  grep -q "stopped" "$tmp/$name.err" || bad "$name serve did not report its stop"
}

# init_qwen2 OUT TOKENIZER SEED HIDDEN INTERMEDIATE LAYERS HEADS KV_HEADS CTX: a random Qwen2
# model over the golden checkpoints' 501-token vocabulary (EOS 4), written by `yak model init`
# with TOKENIZER's files; its config is kept as OUT.json.
init_qwen2() {
  cat >"$1.json" <<JSON
{"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": $4, "intermediate_size": $5,
 "num_hidden_layers": $6, "num_attention_heads": $7, "num_key_value_heads": $8, "vocab_size": 501,
 "max_position_embeddings": $9, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": true,
 "eos_token_id": 4}
JSON
  "$yak" model init --config "$1.json" --out "$1" --tokenizer "$2" --seed "$3" >/dev/null
}
