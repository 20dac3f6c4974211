#!/usr/bin/env bash
# LoRA vs QLoRA (--load_in_4bit) on a random Qwen2.5-0.5B-shaped model (24 layers, hidden 896,
# intermediate 4864, f32 checkpoint from `yak model init`): peak resident memory (GNU time),
# tokens/s and the first losses of 4 SFT steps each. Usage: scripts/bench-qlora.sh [threads]
set -euo pipefail
cd "$(dirname "$0")/.."
yak=build/bin/yak
threads=${1:-$(nproc)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$work" <<'PY'
import json, random, sys
d = sys.argv[1]
c = json.load(open("tests/golden/models/qwen2_chat/config.json"))
c.update({"hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
          "num_key_value_heads": 2, "head_dim": 64, "max_position_embeddings": 4096})
json.dump(c, open(f"{d}/config.json", "w"), indent=1)
random.seed(0)
with open(f"{d}/data.jsonl", "w") as f:
    for _ in range(64):
        a, b = random.randint(0, 99), random.randint(0, 99)
        f.write(json.dumps({"input": f"What is {a}+{b}? ", "output": f"{a}+{b}={a + b}."}) + "\n")
PY
"$yak" model init --config "$work/config.json" --out "$work/model" --tokenizer tests/golden/models/qwen2_chat --seed 1
printf '%-6s %14s %12s %10s  %s\n' mode "peak RSS MB" "tokens/s" "wall s" "losses"
for mode in lora qlora; do
  extra=()
  [[ $mode == qlora ]] && extra=(--load_in_4bit)
  /usr/bin/time -f "%M %e" -o "$work/time-$mode" "$yak" train sft --pretrain "$work/model" --dataset "$work/data.jsonl" \
    --save_path "$work/out-$mode" --lora_rank 8 --lora_alpha 16 --target_modules all-linear --train_batch_size 4 \
    --micro_train_batch_size 4 --max_steps 4 --learning_rate 1e-3 --max_len 48 -t "$threads" "${extra[@]}" \
    >"$work/log-$mode" 2>&1
  read -r rss wall <"$work/time-$mode"
  python3 - "$work/out-$mode-metrics.jsonl" "$mode" "$rss" "$wall" <<'PY'
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
tps = sum(r["tokens_per_second"] for r in rs[1:]) / max(1, len(rs) - 1)  # the first step warms up
print(f"{sys.argv[2]:<6} {int(sys.argv[3]) / 1024:14.0f} {tps:12.1f} {float(sys.argv[4]):10.1f}  "
      + " ".join(f"{r['loss']:.4f}" for r in rs))
PY
done
grep -h "^QLoRA" "$work/log-qlora"
