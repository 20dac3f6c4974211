#!/usr/bin/env bash
# `yak generate --image` on a tiny random Qwen3-VL (tools/golden/make_vl_goldens.py): from PNG files
# and a chat message to greedy tokens, equal to transformers' Qwen3VLProcessor + generate() for one
# and for two images (images before the text, and placed by <image> markers); `yak info` shows the
# tower; --messages files and `yak chat`'s /image give the same prompts; bad input exits 2 with a
# message naming the problem.
set -u
yak=$1 golden=$2
m=$golden/vision/qwen3_vl
img=$golden/vision/images
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 passes=0
ok() { passes=$((passes + 1)); }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
mapfile -t cases < <(python3 - "$m/golden.json" <<'PY'
import json, sys
g = json.load(open(sys.argv[1]))
for c in g["end_to_end"]:
    print("|".join([c["text"], " ".join(c["images"]), " ".join(map(str, c["greedy"]))]))
PY
)
[[ ${#cases[@]} -eq 2 ]] && ok || bad "golden.json holds ${#cases[@]} end-to-end cases, expected 2"
n=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["new_tokens"])' "$m/golden.json")  # 24
gen() { "$yak" generate -m "$m" --chat-template auto --ids --ignore-eos -n $n -t 1 "$@" 2>&1; }
for c in "${cases[@]}"; do
  IFS='|' read -r text files want <<<"$c"
  args=()
  for f in $files; do args+=(--image "$img/$f"); done
  got=$(gen "${args[@]}" -p "$text")
  [[ $got == "$want" ]] && ok || bad "images [$files]: got '$got', transformers '$want'"
  # The same images placed by markers at the start give the same prompt, so the same tokens.
  markers=""
  for f in $files; do markers+="<image>"; done
  got=$(gen "${args[@]}" -p "$markers$text")
  [[ $got == "$want" ]] && ok || bad "images [$files] by markers: got '$got'"
done
# Placing the image after the text is another prompt: other tokens (the images are really used).
first=${cases[0]}
IFS='|' read -r text files want <<<"$first"
after=$(gen --image "$img/$files" -p "$text<image>")
[[ -n $after && $after != "$want" ]] && ok || bad "an image after the text gave the same tokens"
other=$(gen --image "$img/grey_13x9.png" -p "$text")
[[ -n $other && $other != "$want" ]] && ok || bad "another image gave the same tokens"

# --messages: OpenAI-style parts; a path beside the file and a data: URL give the two-image case.
IFS='|' read -r text files want <<<"${cases[1]}"
read -r f1 f2 <<<"$files"
cp "$img/$f1" "$tmp/first.png"
printf '[{"role":"user","content":[{"type":"image_url","image_url":{"url":"first.png"}},{"type":"image_url","image_url":{"url":"data:image/png;base64,%s"}},{"type":"text","text":"%s"}]}]' \
  "$(base64 -w0 "$img/$f2")" "$text" >"$tmp/chat.json"
got=$("$yak" generate -m "$m" --messages "$tmp/chat.json" --ids --ignore-eos -n $n -t 1 2>&1)
[[ $got == "$want" ]] && ok || bad "--messages: got '$got', transformers '$want'"
# Qwen's own part spelling and a file:// URL: the same prompt.
printf '{"messages":[{"role":"user","content":[{"type":"image","image":"file://%s"},{"type":"image","image":"%s"},{"type":"text","text":"%s"}]}]}' \
  "$tmp/first.png" "$(cd "$img" && pwd)/$f2" "$text" >"$tmp/chat2.json"
got=$("$yak" generate -m "$m" --messages "$tmp/chat2.json" --ids --ignore-eos -n $n -t 1 2>&1)
[[ $got == "$want" ]] && ok || bad "--messages with image parts and file://: got '$got'"

# The template from a processor's chat_template.json, and with no template file the built-in
# qwen3-vl family: the checkpoint's prompt either way.
mkdir -p "$tmp/json_tmpl" "$tmp/no_tmpl"
for f in "$(cd "$m" && pwd)"/*; do
  name=$(basename "$f")
  [[ $name == chat_template.jinja ]] && continue
  ln -s "$f" "$tmp/json_tmpl/$name"
  ln -s "$f" "$tmp/no_tmpl/$name"
done
python3 -c 'import json,sys; print(json.dumps({"chat_template": open(sys.argv[1]).read()}))' "$m/chat_template.jinja" \
  >"$tmp/json_tmpl/chat_template.json"
for d in json_tmpl no_tmpl; do
  got=$("$yak" generate -m "$tmp/$d" --messages "$tmp/chat.json" --ids --ignore-eos -n $n -t 1 2>&1)
  [[ $got == "$want" ]] && ok || bad "--messages with $d: got '$got', transformers '$want'"
done

# yak chat: /image attaches a picture to the next message; the reply is generate's.
IFS='|' read -r text files want <<<"${cases[0]}"
chat=$(printf '/image %s\n%s\n' "$img/$files" "$text" | "$yak" chat -m "$m" -n $n --temp 0 -t 1 2>"$tmp/chat.err")
single=$("$yak" generate -m "$m" --chat-template auto --image "$img/$files" -p "$text" -n $n --temp 0 -t 1 2>&1)
[[ -n $chat && $chat == "$single" ]] && ok || bad "chat with /image: '$chat' vs generate '$single'"
grep -q "(1 image for the next message)" "$tmp/chat.err" && ok || bad "chat did not confirm the image: $(cat "$tmp/chat.err")"
printf '/image %s\nhi\n' "$tmp/none.png" | "$yak" chat -m "$m" -n 2 -t 1 >/dev/null 2>"$tmp/chat.err"
[[ $? -eq 0 ]] && grep -q "cannot open the image" "$tmp/chat.err" && ok || bad "chat /image of a missing file: $(cat "$tmp/chat.err")"
printf '/image %s\nhi\n' "$img/$files" | "$yak" chat -m "$golden/models/qwen2_chat" -n 2 -t 1 >/dev/null 2>"$tmp/chat.err"
grep -q "cannot see images" "$tmp/chat.err" && ok || bad "chat /image on a text model: $(cat "$tmp/chat.err")"

"$yak" info -m "$m" >"$tmp/info" 2>&1 && grep -q "vision tower     depth 3, hidden 32" "$tmp/info" &&
  grep -q "deepstack        features of blocks 0, 2" "$tmp/info" && ok || bad "yak info: $(cat "$tmp/info")"

expect_error() {  # want-substring, args...
  local want=$1
  shift
  out=$("$yak" generate "$@" 2>&1)
  rc=$?
  [[ $rc -eq 2 && $out == *"$want"* ]] && ok || bad "generate $* -> rc $rc: $out (wanted '$want')"
}
expect_error "needs a vision-language model" -m "$golden/models/qwen3_qknorm" --image "$img/rgb_45x70.png" -p hi
expect_error "2 <image> markers for 1 images" -m "$m" --image "$img/rgb_45x70.png" -p "<image> and <image>"
expect_error "cannot open the image" -m "$m" --image "$tmp/none.png" -p hi
head -c 100 "$img/rgb_45x70.png" >"$tmp/cut.png"
expect_error "cut.png: PNG" -m "$m" --image "$tmp/cut.png" -p hi
printf 'GIF89a....' >"$tmp/x.gif"
expect_error "not an image this build reads" -m "$m" --image "$tmp/x.gif" -p hi
expect_error "one prompt" -m "$m" --image "$img/rgb_45x70.png" -p a -p b

msg() { printf '%s' "$1" >"$tmp/m.json"; expect_error "$2" -m "$m" --messages "$tmp/m.json"; }
msg '[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]' "not fetched over the network"
msg '[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,@@@"}}]}]' "invalid base64"
msg '[{"role":"assistant","content":[{"type":"image","image":"a.png"}]}]' "images go in user messages"
msg '[{"role":"user","content":[{"type":"audio"}]}]' "part type 'audio' is not supported"
msg '{"role":"user"}' "'messages' must be a non-empty array"
msg 'not json' "not valid JSON"
expect_error "carries the whole conversation" -m "$m" --messages "$tmp/chat.json" -p hi

echo "vision: $passes passed, $fails failed"
[[ $fails -eq 0 ]]
