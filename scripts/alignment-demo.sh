#!/usr/bin/env bash
# The measurements of docs/ALIGNMENT.md, reproduced: `yak quickstart` (pretraining, a short SFT and
# GRPO on generated addition questions), then PPO with a critic (GAE) from the same SFT model,
# both judged by exact-match accuracy on the 45 held-out questions. Curves land in OUT/*.png.
#   bash scripts/alignment-demo.sh [OUT]   (default: alignment-out)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-alignment-out}
bash scripts/build.sh
yak=build/bin/yak
$yak quickstart --dir "$out"
common=(--prompt_data "$out/sft.jsonl" --eval_dataset "$out/heldout.jsonl" --input_key input --label_key output
  --apply_chat_template --reward_fn exact_match --rollout_batch_size 32 --micro_rollout_batch_size 256
  --train_batch_size 64 --micro_train_batch_size 64 --generate_max_len 6 --num_episodes 30 --eval_steps 10
  --init_kl_coef 0 --n_samples_per_prompt 8 --seed 1)
$yak train ppo --pretrain "$out/sft" --advantage_estimator gae --actor_learning_rate 2e-4 \
  --critic_learning_rate 1e-3 --save_path "$out/ppo" "${common[@]}"
echo "curves: $out/grpo.png (GRPO, from the quickstart), $out/ppo-loss.png (PPO)"
