#!/usr/bin/env bash
# LoRA through the CLI: `yak train sft --lora_rank` writes a PEFT adapter, `generate --lora` uses it,
# `yak lora merge` folds it in with the same greedy output; a full-training run resumes from its
# checkpoint; bad flags exit 2 without writing anything.
set -u
yak=$1 golden=$2
m=$golden/models/qwen2_chat
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 passes=0
ok() { passes=$((passes + 1)); }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
python3 - "$tmp/add.jsonl" <<'PY'
import json, random, sys
random.seed(0)
with open(sys.argv[1], "w") as f:
    for _ in range(64):
        a, b = random.randint(0, 9), random.randint(0, 9)
        f.write(json.dumps({"input": f"{a}+{b}=", "output": str(a + b)}) + "\n")
PY
"$yak" train sft --pretrain "$m" --dataset "$tmp/add.jsonl" --save_path "$tmp/adapter" --lora_rank 4 --lora_alpha 8 \
  --target_modules q_proj,v_proj,up_proj --train_batch_size 8 --micro_train_batch_size 4 --max_epochs 2 \
  --learning_rate 1e-2 --max_len 32 -t 1 >"$tmp/log" 2>&1 || bad "lora training: $(tail -1 "$tmp/log")"
[[ -f $tmp/adapter/adapter_config.json && -f $tmp/adapter/adapter_model.safetensors ]] && ok || bad "no adapter written"
[[ -f $tmp/adapter-loss.png ]] && ok || bad "no loss curve"
grep -q '"r": 4' "$tmp/adapter/adapter_config.json" && ok || bad "adapter_config.json lacks r"
with=$("$yak" generate -m "$m" --lora "$tmp/adapter" -p "3+4=" -n 4 --temp 0 --ids --ignore-eos -t 1)
without=$("$yak" generate -m "$m" -p "3+4=" -n 4 --temp 0 --ids --ignore-eos -t 1)
[[ $with != "$without" ]] && ok || bad "the adapter changed nothing"
"$yak" lora merge --base "$m" --adapter "$tmp/adapter" --out "$tmp/merged" >/dev/null 2>&1 && ok || bad "merge failed"
merged=$("$yak" generate -m "$tmp/merged" -p "3+4=" -n 4 --temp 0 --ids --ignore-eos -t 1)
[[ $merged == "$with" ]] && ok || bad "merged model ($merged) differs from base+adapter ($with)"

# QLoRA: the same training over a base kept in 4-bit blocks trains (loss falls), saves a PEFT adapter
# that applies over the original base, and says what it quantized.
"$yak" train sft --pretrain "$m" --dataset "$tmp/add.jsonl" --save_path "$tmp/qlora" --lora_rank 4 --lora_alpha 8 \
  --target_modules q_proj,v_proj,up_proj --train_batch_size 8 --micro_train_batch_size 4 --max_epochs 2 \
  --learning_rate 1e-2 --max_len 32 -t 1 --load_in_4bit >"$tmp/qlog" 2>&1 || bad "QLoRA training: $(tail -1 "$tmp/qlog")"
grep -q "^QLoRA: projection weights .* MB in Q4_K" "$tmp/qlog" && ok || bad "QLoRA did not report its quantization: $(head -3 "$tmp/qlog")"
[[ -f $tmp/qlora/adapter_model.safetensors ]] && ok || bad "no QLoRA adapter"
python3 - "$tmp/qlora-metrics.jsonl" <<'PY' && ok || bad "QLoRA loss did not fall"
import json, sys
losses = [r["loss"] for r in map(json.loads, open(sys.argv[1])) if r.get("split", "train") == "train" and "loss" in r]
assert len(losses) >= 4 and sum(losses[-2:]) < sum(losses[:2]), losses
PY
"$yak" generate -m "$m" --lora "$tmp/qlora" -p "3+4=" -n 4 --temp 0 --ids --ignore-eos -t 1 >/dev/null 2>&1 && ok ||
  bad "the QLoRA adapter does not apply over the base"

# Bad input: exit 2, one line, nothing written.
expect2() {
  local what=$1; shift
  "$@" >/dev/null 2>"$tmp/err"
  local code=$?
  if [[ $code -eq 2 && $(wc -l <"$tmp/err") -eq 1 ]]; then ok; else bad "$what: exit $code, stderr: $(cat "$tmp/err")"; fi
}
expect2 "unknown target module" "$yak" train sft --pretrain "$m" --dataset "$tmp/add.jsonl" --save_path "$tmp/x1" --lora_rank 4 --target_modules qkv
[[ ! -e $tmp/x1 ]] && ok || bad "output written after an error"
expect2 "--load_in_4bit without LoRA" "$yak" train sft --pretrain "$m" --dataset "$tmp/add.jsonl" --save_path "$tmp/x4" --load_in_4bit
grep -q "needs --lora_rank" "$tmp/err" && ok || bad "--load_in_4bit without LoRA: $(cat "$tmp/err")"
expect2 "adapter for another base" "$yak" generate -m "$golden/models/qwen3_qknorm" --lora "$tmp/adapter" --prompt-ids "1 2"
expect2 "merge into existing folder" "$yak" lora merge --base "$m" --adapter "$tmp/adapter" --out "$tmp/merged"
printf '{"input": "1+1=", "output": "2"}\n{"input": "2+2=" "output": "4"}\n' > "$tmp/broken.jsonl"
expect2 "broken JSONL line" "$yak" train sft --pretrain "$m" --dataset "$tmp/broken.jsonl" --save_path "$tmp/x2"
grep -q "broken.jsonl:2" "$tmp/err" && ok || bad "the error does not name line 2: $(cat "$tmp/err")"
printf '{"prompt": "1+1=", "output": "2"}\n' > "$tmp/nokey.jsonl"
expect2 "missing input key" "$yak" train sft --pretrain "$m" --dataset "$tmp/nokey.jsonl" --save_path "$tmp/x3"
grep -q "input" "$tmp/err" && ok || bad "the error does not name the key"
[[ ! -e $tmp/x2 && ! -e $tmp/x3 ]] && ok || bad "output written after an error"
# A reward model trained as a LoRA adapter keeps its score head; `lora merge --is_rm` writes a
# sequence classifier (without --is_rm the merge is refused: it would drop the head).
for i in 0 1 2 3 4 5 6 7; do printf '{"prompt": "Q%d?", "chosen": "yes %d", "rejected": "no %d"}\n' $i $i $i; done >"$tmp/pairs.jsonl"
"$yak" train rm --pretrain "$m" --dataset "$tmp/pairs.jsonl" --max_steps 2 --train_batch_size 2 --micro_train_batch_size 2 \
  --lora_rank 4 --save_path "$tmp/rm-lora" >/dev/null 2>&1 || bad "rm with LoRA"
expect2 "merging an RM adapter without --is_rm" "$yak" lora merge --base "$m" --adapter "$tmp/rm-lora" --out "$tmp/rm-x"
"$yak" lora merge --base "$m" --adapter "$tmp/rm-lora" --out "$tmp/rm-merged" --is_rm >/dev/null 2>&1 &&
  grep -q ForSequenceClassification "$tmp/rm-merged/config.json" && ok || bad "lora merge --is_rm"
# The reward statistics a full save writes into config.json travel beside the adapter and into the merge.
python3 - "$tmp/rm-lora/config_extra.json" "$tmp/rm-merged/config.json" <<'PY' && ok || bad "RM mean/std not carried through the adapter"
import json, sys
extra, merged = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert isinstance(extra["mean"], float) and extra["std"] > 0, extra
assert merged["mean"] == extra["mean"] and merged["std"] == extra["std"], (merged.get("mean"), extra)
PY
echo "$passes passed, $fails failed"
[[ $fails -eq 0 ]]
