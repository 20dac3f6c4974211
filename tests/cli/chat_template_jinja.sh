#!/usr/bin/env bash
# Jinja chat templates from the command line: the checkpoint's own template is used by default
# (`yak info` says so; tests/cli/chat_e2e.sh checks its greedy output against transformers),
# --chat-template FILE.jinja replaces it (the same template from a file gives the same prompt
# ids, a different one different ids), OpenRLHF's --tokenizer_chat_template feeds SFT data, and a
# broken or refusing template is a clear error naming the template line (exit 2).
set -u
yak=$1 golden=$2
m=$golden/models/qwen2_chat
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/lib/checks.sh"

info=$("$yak" info -m "$m" 2>&1)
if [[ $info == *"chat template    jinja, the checkpoint's own"* ]]; then pass; else fail "yak info: $info"; fi

# The checkpoint's template copied to a file renders the same prompt; an edited copy does not.
cp "$m/chat_template.jinja" "$tmp/same.jinja"
auto=$("$yak" generate -m "$m" --chat-template auto -p "Hello there" --print-prompt)
file=$("$yak" generate -m "$m" --chat-template "$tmp/same.jinja" -p "Hello there" --print-prompt)
if [[ $auto == *"Hello there"* && $auto == "$file" ]]; then pass; else fail "same template from a file: '$auto' vs '$file'"; fi
# ... and the same greedy tokens.
a=$("$yak" generate -m "$m" --chat-template auto -p "Hello there" -n 4 --temp 0 --ids)
b=$("$yak" generate -m "$m" --chat-template "$tmp/same.jinja" -p "Hello there" -n 4 --temp 0 --ids)
if [[ -n $a && $a == "$b" ]]; then pass; else fail "same template, other tokens: '$a' vs '$b'"; fi
printf '%s' $'{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content | upper }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}'>"$tmp/upper.jinja"
upper=$("$yak" generate -m "$m" --chat-template "$tmp/upper.jinja" -p "Hello there" --system "Be brief" --print-prompt; echo .)
want=$'<|im_start|>system\nBE BRIEF<|im_end|>\n<|im_start|>user\nHELLO THERE<|im_end|>\n<|im_start|>assistant\n.'
if [[ $upper == "$want" ]]; then pass; else fail "edited template: $(printf %q "$upper") want $(printf %q "$want")"; fi

# Errors: a template that does not parse, one that raises, a missing file.
printf 'line one\n{{ messages[0].content }\n' >"$tmp/broken.jinja"
expect_error "broken template" "broken.jinja:2" "$yak" generate -m "$m" --chat-template "$tmp/broken.jinja" -p hi -n 1
printf '{%% if messages[0].role == "user" %%}\n{{ raise_exception("Only system-first conversations") }}\n{%% endif %%}' >"$tmp/strict.jinja"
expect_error "raise_exception" "strict.jinja:2: Only system-first conversations" "$yak" generate -m "$m" --chat-template "$tmp/strict.jinja" -p hi -n 1
expect_error "missing template file" "no-such.jinja: no such file" "$yak" generate -m "$m" --chat-template "$tmp/no-such.jinja" -p hi -n 1

# OpenRLHF's --tokenizer_chat_template: SFT renders its data with the given template (the
# raising one proves it is the template used: it stops with its message).
printf '%s\n' '{"input": [{"role": "user", "content": "hi"}], "output": "hello"}' >"$tmp/sft.jsonl"
"$yak" train sft --pretrain "$m" --dataset "$tmp/sft.jsonl" --input_key input --output_key output --apply_chat_template \
  --tokenizer_chat_template "$tmp/upper.jinja" --max_steps 1 --train_batch_size 1 --micro_train_batch_size 1 \
  --max_len 64 --save_path "$tmp/out" >"$tmp/sft.log" 2>&1
if [[ $? -eq 0 && -f $tmp/out/model.safetensors ]]; then pass; else fail "sft with --tokenizer_chat_template: $(tail -3 "$tmp/sft.log")"; fi
expect_error "sft with a raising template" "strict.jinja:2: Only system-first conversations" "$yak" train sft --pretrain "$m" \
  --dataset "$tmp/sft.jsonl" --input_key input --output_key output --apply_chat_template \
  --tokenizer_chat_template "$tmp/strict.jinja" --max_steps 1 --max_len 64 --save_path "$tmp/out2"

echo "chat_template_jinja: $passes passed, $fails failed"
[[ $fails -eq 0 ]]
