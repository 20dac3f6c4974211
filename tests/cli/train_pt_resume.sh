#!/usr/bin/env bash
# `yak train pt` through the CLI: packing, an eval split from a json@DIR folder, metrics and
# TensorBoard files, and a run stopped at step 4 (checkpoint every 2) that resumes to the same
# final weights as an uninterrupted run; the progress bar's total honours --max_steps, a run
# without an eval split warns about nothing, and every step's peak memory is logged.
set -u
yak=$1 golden=$2
m=$golden/models/qwen2_chat
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 passes=0
ok() { passes=$((passes + 1)); }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
mkdir -p "$tmp/data"
python3 - "$tmp/data" <<'PY'
import json, random, sys
random.seed(1)
words = "the yak eats grass on high mountains and drinks cold water near the lake".split()
for split, n in (("train", 120), ("test", 12)):
    with open(f"{sys.argv[1]}/{split}.jsonl", "w") as f:
        for _ in range(n):
            f.write(json.dumps({"text": " ".join(random.choice(words) for _ in range(random.randint(4, 12)))}) + "\n")
PY
common=(--pretrain "$m" --dataset "json@$tmp/data" --max_len 32 --packing_samples --train_batch_size 4
        --micro_train_batch_size 2 --max_epochs 2 --learning_rate 5e-3 --seed 3 -t 1)
"$yak" train pt "${common[@]}" --save_path "$tmp/straight" --use_tensorboard "$tmp/tb" >"$tmp/out1" 2>"$tmp/err1" || bad "straight run: $(tail -1 "$tmp/err1")"
grep -q "eval loss" "$tmp/out1" && ok || bad "no eval loss printed: $(cat "$tmp/out1")"
[[ -s $tmp/straight-metrics.jsonl ]] && ok || bad "no metrics"
grep -q '"split":"eval"' "$tmp/straight-metrics.jsonl" && ok || bad "no eval metrics"
ls "$tmp"/tb/events.out.tfevents.* >/dev/null 2>&1 && ok || bad "no TensorBoard events"
[[ -s $tmp/straight-loss.png ]] && ok || bad "no loss curve"
"$yak" train pt "${common[@]}" --save_path "$tmp/resumed" --ckpt_path "$tmp/ckpt" --save_steps 2 --max_steps 5 >/dev/null 2>"$tmp/err3" \
  || bad "first half"
grep -q "train pt 5/5 " "$tmp/err3" && ok || bad "the progress bar does not end at --max_steps 5/5: $(tail -1 "$tmp/err3")"
grep -q '"peak_memory_mb"' "$tmp/straight-metrics.jsonl" && ok || bad "no peak memory in the metrics"
printf '{"text": "the yak eats grass on high mountains and drinks cold water"}\n%.0s' $(seq 1 40) >"$tmp/one.jsonl"
"$yak" train pt --pretrain "$m" --dataset "$tmp/one.jsonl" --max_len 8 --train_batch_size 2 --micro_train_batch_size 2 \
  --max_steps 1 -t 1 >/dev/null 2>"$tmp/err4" || bad "run without eval split: $(tail -1 "$tmp/err4")"
grep -q "make no block" "$tmp/err4" && bad "warned about an eval split that was never asked for" || ok
[[ $(cat "$tmp/ckpt/latest") == global_step_4 ]] && ok || bad "latest is $(cat "$tmp/ckpt/latest")"
"$yak" train pt "${common[@]}" --save_path "$tmp/resumed" --ckpt_path "$tmp/ckpt" --save_steps 2 --load_checkpoint >/dev/null 2>"$tmp/err2" \
  || bad "resume: $(tail -1 "$tmp/err2")"
grep -q "resumed from" "$tmp/err2" && ok || bad "did not resume"
cmp -s "$tmp/straight/model.safetensors" "$tmp/resumed/model.safetensors" && ok || bad "resumed weights differ from the uninterrupted run"
echo "$passes passed, $fails failed"
[[ $fails -eq 0 ]]
