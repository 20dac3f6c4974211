#!/usr/bin/env bash
# Tokenizer, chat template, engine, EOS and detokenizer together: `yak generate --chat-template auto`
# and `yak chat` on a tiny Qwen2 folder with a real tokenizer print exactly what transformers'
# apply_chat_template + generate + decode produced (tests/golden/models/qwen2_chat/chat_golden.json).
set -u
yak=$1 golden=$2
m=$golden/models/qwen2_chat
fails=0 passes=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
check() {  # check what got want
  if [[ $2 == "$3" ]]; then passes=$((passes + 1)); else echo "FAIL $1:"; echo "  got  $(printf %q "$2")"; echo "  want $(printf %q "$3")"; fails=$((fails + 1)); fi
}
n=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["max_new_tokens"])' "$m/chat_golden.json")
field() { python3 -c 'import json,sys;c=json.load(open(sys.argv[1]))["cases"][int(sys.argv[2])];v=c[sys.argv[3]];print(" ".join(map(str,v)) if isinstance(v,list) else v,end="")' "$m/chat_golden.json" "$1" "$2"; }

# Case 0: one user turn through `generate`.
user=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["cases"][0]["messages"][0]["content"],end="")' "$m/chat_golden.json")
got=$("$yak" generate -m "$m" --chat-template auto -p "$user" -n "$n" --temp 0 --ids)
check "generate ids" "$got" "$(field 0 greedy_ids)"
got=$("$yak" generate -m "$m" --chat-template auto -p "$user" -n "$n" --temp 0)
check "generate streamed text" "$got" "$(field 0 greedy_text)"

# Same turn through the interactive chat (stdin), which streams the answer to stdout.
got=$(printf '%s\n/quit\n' "$user" | "$yak" chat -m "$m" -n "$n" --temp 0 2>/dev/null)
check "chat text" "$got" "$(field 0 greedy_text)"

# /reset forgets the first exchange: the same question gets the same first answer again, while
# without the reset the history changes the answer.
want=$(field 0 greedy_text)
got=$(printf '%s\n/reset\n%s\n/quit\n' "$user" "$user" | "$yak" chat -m "$m" -n "$n" --temp 0 2>/dev/null)
check "chat after /reset" "$got" "$want"$'\n'"$want"
got=$(printf '%s\n%s\n/quit\n' "$user" "$user" | "$yak" chat -m "$m" -n "$n" --temp 0 2>/dev/null)
if [[ $got != "$want"$'\n'"$want" ]]; then passes=$((passes + 1)); else echo "FAIL: the second turn ignored the history"; fails=$((fails + 1)); fi

# Case 1 (system + three turns) is checked through the library's Conversation in C++ tests; here the
# rendered prompt ids must match transformers' apply_chat_template.
python3 -c 'import json,sys;open(sys.argv[2],"w").write(json.load(open(sys.argv[1]))["cases"][1]["prompt_text"])' "$m/chat_golden.json" "$tmp/prompt.txt"
got=$("$yak" tokenize --tokenizer "$m" --file "$tmp/prompt.txt")
check "rendered prompt ids" "$got" "$(field 1 prompt_ids)"

echo "$passes passed, $fails failed"
[[ $fails -eq 0 ]]
