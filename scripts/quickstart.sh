#!/usr/bin/env bash
# README's first command: installs the Debian packages, builds build/bin/yak, runs the main job
# (`yak quickstart`: a tokenizer and a tiny LLaMA-style model trained from scratch on generated
# facts, pretraining, SFT, held-out accuracy before/after, chat, loss curves as PNG), then the engine
# on checkpoints the project ships (tiny random models made by transformers in tools/golden, whose
# outputs are gibberish by design but must equal transformers' token for token) and tokenizes text
# with the tokenizers it ships. Uses ../shared/data's real tokenizers when present.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
yak=build/bin/yak
m=tests/golden/models/qwen3_qknorm
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

say yak info -m $m
$yak info -m $m

prompt=$(python3 -c 'import json;print(" ".join(map(str,json.load(open("'$m'/golden.json"))["prompts"][1])))')
say yak generate -m $m --prompt-ids "\"$prompt\"" -n 32 --temp 0 --ids --verbose
$yak generate -m $m --prompt-ids "$prompt" -n 32 --temp 0 --ids --verbose --ignore-eos
echo "transformers' greedy continuation of the same prompt:"
python3 -c 'import json;print(" ".join(map(str,json.load(open("'$m'/golden.json"))["greedy"][1])))'

say yak generate -m $m --prompt-ids "1 2 3" --prompt-ids "4 5 6 7 8" -n 8 --temp 0.8 --top-p 0.9 --seed 1 --ids
$yak generate -m $m --prompt-ids "1 2 3" --prompt-ids "4 5 6 7 8" -n 8 --temp 0.8 --top-p 0.9 --seed 1 --ids --ignore-eos

c=tests/golden/models/qwen2_chat
say yak info -m $c
$yak info -m $c
say yak generate -m $c --chat-template auto -p "\"Hello, yak! 你好\"" -n 24 --temp 0
$yak generate -m $c --chat-template auto -p "Hello, yak! 你好" -n 24 --temp 0
echo "transformers (apply_chat_template + generate + decode) printed:"
python3 -c 'import json;print(json.load(open("'$c'/chat_golden.json"))["cases"][0]["greedy_text"])'
say "printf 'Hello, yak! 你好\\n/quit\\n' | yak chat -m $c -n 24 --temp 0"
printf 'Hello, yak! 你好\n/quit\n' | $yak chat -m $c -n 24 --temp 0

tiny=tests/golden/tokenizer/tiny_bpe.json
if [[ -f $tiny ]]; then
  say yak tokenize --tokenizer $tiny "\"Hello world, 你好\""
  $yak tokenize --tokenizer $tiny "Hello world, 你好"
fi
qwen2=../shared/data/tokenizers/qwen2
if [[ -d $qwen2 ]]; then
  say yak tokenize --tokenizer $qwen2 --json "\"去年QQ音乐播放量最高的10位歌手\""
  $yak tokenize --tokenizer $qwen2 --json "去年QQ音乐播放量最高的10位歌手"
else
  echo "(../shared/data not present: skipping the real Qwen2 tokenizer demo)"
fi

say yak quickstart --dir quickstart-out
$yak quickstart --dir quickstart-out
