#!/usr/bin/env bash
# `yak generate --image` on a tiny random Qwen3-VL (tools/golden/make_vl_goldens.py): from PNG files
# and a chat message to greedy tokens, equal to transformers' Qwen3VLProcessor + generate() for one
# and for two images (images before the text, and placed by <image> markers); `yak info` shows the
# tower; bad input exits 2 with a message naming the problem.
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
gen() { "$yak" generate -m "$m" --chat-template auto --ids --ignore-eos -n 12 -t 1 "$@" 2>&1; }
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

echo "vision: $passes passed, $fails failed"
[[ $fails -eq 0 ]]
