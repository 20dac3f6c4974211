#!/usr/bin/env bash
# Speculative decoding's speed-up on a draft/target pair yak makes itself, on this machine:
#   1. a SentencePiece tokenizer and a 25M-parameter LLaMA target pretrained (2 epochs) on the first 95% of
#      ../shared/data/text/tinyshakespeare.txt (`yak tokenizer train`, `yak train pt`);
#   2. a 2.7M-parameter draft distilled from the target with `yak train kd` on the same text (2 epochs);
#   3. `yak serve` with and without `--draft-model`, one client, 24 prompts from the held-out 5%,
#      128 tokens each, greedy and sampled (bench/spec_client.py): tokens/s, acceptance, and
#      whether the greedy texts are identical.
# Trained models are kept in $YAK_PEERS_DIR/speculative (default ~/.cache/yak-peers) and reused.
#
#   bash scripts/bench-speculative.sh          # DRAFT_MAX="2 4 6" P_MIN="0 0.75" by default
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
text=$root/../shared/data/text/tinyshakespeare.txt
if [[ ! -f $text ]]; then
  echo "bench-speculative: skipped (needs ../shared/data/text/tinyshakespeare.txt)"
  exit 0
fi
work=${YAK_PEERS_DIR:-$HOME/.cache/yak-peers}/speculative
mkdir -p "$work"
bash scripts/build.sh >/dev/null
yak=$root/build/bin/yak
threads=$(nproc)

if [[ ! -f $work/prompts.jsonl ]]; then
  python3 - "$text" "$work" <<'PY'
import json, sys
text, work = open(sys.argv[1], encoding="utf-8").read(), sys.argv[2]
cut = int(len(text) * 0.95)
cut = text.index("\n\n", cut) + 2
open(f"{work}/train.txt", "w", encoding="utf-8").write(text[:cut])
# Distillation pairs: a speech's first line as the prompt, what follows as the response.
blocks = [b for b in text[:cut].split("\n\n") if b.count("\n") >= 2]
with open(f"{work}/kd.jsonl", "w", encoding="utf-8") as f:
    for b in blocks:
        head, _, rest = b.partition("\n")
        f.write(json.dumps({"prompt": head + "\n", "response": rest + "\n\n"}) + "\n")
held = [b for b in text[cut:].split("\n\n") if b.count("\n") >= 2][:24]
with open(f"{work}/prompts.jsonl", "w", encoding="utf-8") as f:
    for b in held:
        f.write(json.dumps(b.split("\n")[0] + "\n" + b.split("\n")[1] + "\n") + "\n")
PY
fi

if [[ ! -f $work/tok/tokenizer.model ]]; then
  mkdir -p "$work/tok"
  "$yak" tokenizer train --input "$work/train.txt" --model-prefix "$work/tok/sp" --vocab-size 4096 --model-type bpe \
    --byte-fallback >/dev/null
  mv "$work/tok/sp.model" "$work/tok/tokenizer.model"
fi

config() {  # name hidden layers heads intermediate tie
  cat >"$work/$1.json" <<JSON
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": $2, "num_hidden_layers": $3,
 "num_attention_heads": $4, "num_key_value_heads": $4, "intermediate_size": $5, "vocab_size": 4096,
 "max_position_embeddings": 1024, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": $6,
 "bos_token_id": 1, "eos_token_id": 2}
JSON
}
if [[ ! -f $work/target/config.json ]]; then
  echo "bench-speculative: pretraining the target (25M parameters)"
  config target 512 6 8 1536 false
  rm -rf "$work/target-init"
  "$yak" model init --config "$work/target.json" --out "$work/target-init" --tokenizer "$work/tok" --seed 1 >/dev/null
  "$yak" train pt --pretrain "$work/target-init" --dataset "$work/train.txt" --max_len 256 --train_batch_size 8 \
    --micro_train_batch_size 8 --max_epochs 2 --learning_rate 1e-3 --lr_scheduler cosine_with_min_lr \
    --lr_warmup_ratio 0.03 --save_path "$work/target" --matmul-precision medium -t "$threads"
fi
if [[ ! -f $work/draft/config.json ]]; then
  echo "bench-speculative: distilling the draft (2.7M parameters) from the target"
  config draft 256 2 4 768 true
  rm -rf "$work/draft-init"
  "$yak" model init --config "$work/draft.json" --out "$work/draft-init" --tokenizer "$work/tok" --seed 2 >/dev/null
  "$yak" train kd --pretrain "$work/draft-init" --teacher_model "$work/target" --dataset "$work/kd.jsonl" \
    --input_key prompt --output_key response --max_len 256 --train_batch_size 16 --micro_train_batch_size 8 \
    --max_epochs 2 --learning_rate 2e-3 --lr_scheduler cosine_with_min_lr --lr_warmup_ratio 0.03 \
    --save_path "$work/draft" --matmul-precision medium -t "$threads"
fi

port=18241
results=$work/results.jsonl
: >"$results"
run() {  # name temperature compare|write [serve args...]
  local name=$1 temp=$2 mode=$3
  shift 3
  "$yak" serve -m "$work/target" --port $port --parallel 1 -t "$threads" "$@" >"$work/serve.log" 2>&1 &
  local pid=$!
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.2; done
  local extra=()
  [[ $mode == write ]] && extra=(--texts "$work/texts-$temp.json")
  [[ $mode == compare ]] && extra=(--compare "$work/texts-$temp.json")
  python3 bench/spec_client.py --url "http://127.0.0.1:$port" --prompts "$work/prompts.jsonl" --name "$name" \
    --temperature "$temp" "${extra[@]}" | tee -a "$results"
  kill -TERM $pid
  wait $pid || true
}
for temp in 0 0.8; do
  run "target alone" $temp write
  for p in ${P_MIN:-0 0.75}; do
    for k in ${DRAFT_MAX:-2 4 6}; do
      run "draft-max $k, p-min $p" $temp compare --draft-model "$work/draft" --draft-max "$k" --draft-p-min "$p"
    done
  done
done
python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
base = {r["temperature"]: r["tok_s"] for r in rows if r["name"] == "target alone"}
print("| temperature | run | tok/s | speed-up | drafts kept | greedy texts identical |")
print("|---|---|---|---|---|---|")
for r in rows:
    acc = f'{r["acceptance"]:.1%}' if r["acceptance"] is not None else "-"
    same = f'{r["identical_to_reference"]}/{r["requests"]}' if "identical_to_reference" in r and r["temperature"] == 0 else "-"
    print(f'| {r["temperature"]} | {r["name"]} | {r["tok_s"]:.1f} | {r["tok_s"] / base[r["temperature"]]:.2f}x | {acc} | {same} |')
PY
