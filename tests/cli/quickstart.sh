#!/usr/bin/env bash
# README's main job end to end: tokenizer and model from scratch, pretraining, SFT, evaluation and
# chat. The SFT model must answer held-out questions far better than the pretrained one (measured:
# 2% -> 60% held-out, 99% on the SFT questions) and the saved folder must chat through the CLI.
set -u
yak=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
out=$("$yak" quickstart --dir "$dir" -t 2 2>/dev/null)
code=$?
echo "$out"
[[ $code -eq 0 ]] || { echo "FAIL: quickstart exited $code"; exit 1; }
read -r before after < <(echo "$out" | sed -n 's/.*before SFT \([0-9]*\)%, after SFT \([0-9]*\)%.*/\1 \2/p')
train=$(echo "$out" | sed -n 's/SFT-train accuracy after SFT: \([0-9]*\)%.*/\1/p')
fails=0 passes=0
if (( after - before >= 30 )); then passes=$((passes + 1)); else echo "FAIL: held-out accuracy $before% -> $after%"; fails=$((fails + 1)); fi
if (( train >= 80 )); then passes=$((passes + 1)); else echo "FAIL: SFT-train accuracy $train%"; fails=$((fails + 1)); fi
reply=$(printf 'What is 2 plus 3?\n/quit\n' | "$yak" chat -m "$dir/sft" -n 4 --temp 0 2>/dev/null)
if [[ -n $reply ]]; then passes=$((passes + 1)); else echo "FAIL: no chat reply"; fails=$((fails + 1)); fi
for f in corpus.txt tokenizer.model sft/config.json sft/model.safetensors sft/tokenizer.model pt-metrics.jsonl; do
  if [[ -s $dir/$f ]]; then passes=$((passes + 1)); else echo "FAIL: missing $f"; fails=$((fails + 1)); fi
done
echo "$passes passed, $fails failed"
[[ $fails -eq 0 ]]
