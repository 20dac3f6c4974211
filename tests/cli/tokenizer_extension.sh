#!/usr/bin/env bash
# Tokenizer extension end to end: train two SentencePiece models, merge them, resize a golden model
# to the merged vocabulary; and every kind of bad input exits 2 with one line and writes nothing.
set -u
yak=$1 golden=$2
tmp=$(mktemp -d)
source "$(dirname "$0")/lib/checks.sh"
trap 'rm -rf "$tmp"' EXIT

expect_ok() {  # expect_ok "what" cmd...
  local what=$1
  shift
  if "$@" >"$tmp/out" 2>"$tmp/err"; then pass; else fail "$what: exit $?; stderr: $(tail -3 "$tmp/err")"; fi
}

expect_absent() {  # expect_absent "what" path...
  local what=$1
  shift
  for p in "$@"; do [[ -e $p ]] && { fail "$what: $p was written"; return; }; done
  pass
}

# Two small corpora in different scripts, 2,000 lines each.
awk 'BEGIN { srand(1); split("ka to ri ne su mo la pi ve do an er th", s, " ");
  for (i = 0; i < 2000; i++) { line = ""; n = 4 + int(rand() * 8);
    for (j = 0; j < n; j++) { w = ""; m = 1 + int(rand() * 3); for (k = 0; k < m; k++) w = w s[1 + int(rand() * 13)];
      line = line (j ? " " : "") w }
    print line } }' > "$tmp/latin.txt"
awk 'BEGIN { srand(2); split("的 一 是 不 了 人 我 在 有 他 这 中 大 来 上 国 个 到 说 们", s, " ");
  for (i = 0; i < 2000; i++) { line = ""; n = 6 + int(rand() * 12);
    for (j = 0; j < n; j++) line = line s[1 + int(rand() * int(1 + rand() * 20))];
    print line } }' > "$tmp/han.txt"

expect_ok "train bpe" "$yak" tokenizer train --input "$tmp/latin.txt" --model-prefix "$tmp/latin" --vocab-size 300 \
  --model-type bpe --byte-fallback --user-defined-symbols "<sep>,<cls>"
[[ -s $tmp/latin.model && $(wc -l < "$tmp/latin.vocab") -eq 300 ]] && pass || fail "train bpe: latin.model/.vocab"
expect_ok "train unigram" "$yak" tokenizer train --input "$tmp/han.txt,$tmp/han.txt" --model-prefix "$tmp/han" \
  --vocab-size 200 --model-type unigram --character-coverage 1.0
expect_ok "merge" "$yak" tokenizer merge --base "$tmp/latin.model" --add "$tmp/han.model" --out "$tmp/merged"
grep -q "from the base" "$tmp/out" && pass || fail "merge: summary line: $(cat "$tmp/out")"
vocab=$(sed -n 's/.*tokenizer.model: \([0-9]*\) pieces.*/\1/p' "$tmp/out")
expect_ok "tokenize with merged" "$yak" tokenize --tokenizer "$tmp/merged" "说们 kato"
n_merged=$(wc -w < "$tmp/out")
expect_ok "tokenize with base" "$yak" tokenize --tokenizer "$tmp/latin.model" "说们 kato"
n_base=$(wc -w < "$tmp/out")
((n_merged < n_base)) && pass || fail "merged tokenizer should need fewer tokens ($n_merged vs $n_base)"

# Resize a golden model (vocab 320) to the merged tokenizer.
expect_ok "resize" "$yak" model resize-embeddings -m "$golden/models/llama_mha_f32" --tokenizer "$tmp/merged" \
  --out "$tmp/resized" --pad-to-multiple-of 8
want=$(( (vocab + 7) / 8 * 8 ))
grep -q "\"vocab_size\": $want" "$tmp/resized/config.json" && pass || fail "resize: vocab_size $want in config.json"
[[ -s $tmp/resized/tokenizer.model && -s $tmp/resized/model.safetensors ]] && pass || fail "resize: output files"
expect_ok "generate with resized" "$yak" generate -m "$tmp/resized" --prompt-ids "1 5 9" --max-new-tokens 3

# Bad input: exit 2, one line, nothing written.
expect_error "train: missing input" "no such file" "$yak" tokenizer train --input "$tmp/nope.txt" \
  --model-prefix "$tmp/t1" --vocab-size 100 --model-type bpe
expect_error "train: vocab size 0" "--vocab-size" "$yak" tokenizer train --input "$tmp/latin.txt" \
  --model-prefix "$tmp/t1" --vocab-size 0 --model-type bpe
expect_error "train: model type" "--model-type" "$yak" tokenizer train --input "$tmp/latin.txt" \
  --model-prefix "$tmp/t1" --vocab-size 100 --model-type word2vec
expect_error "train: coverage" "--character-coverage" "$yak" tokenizer train --input "$tmp/latin.txt" \
  --model-prefix "$tmp/t1" --vocab-size 100 --model-type bpe --character-coverage 0
expect_error "train: prefix folder missing" "does not exist" "$yak" tokenizer train --input "$tmp/latin.txt" \
  --model-prefix "$tmp/nodir/t1" --vocab-size 100 --model-type bpe
expect_error "train: vocab too large" "SentencePiece training failed" "$yak" tokenizer train --input "$tmp/latin.txt" \
  --model-prefix "$tmp/t1" --vocab-size 100000 --model-type unigram
expect_absent "train: bad input" "$tmp/t1.model" "$tmp/t1.vocab" "$tmp/nodir"

expect_error "merge: missing base" "no such file" "$yak" tokenizer merge --base "$tmp/nope.model" \
  --add "$tmp/han.model" --out "$tmp/m1"
expect_error "merge: base not a model" "not a SentencePiece model" "$yak" tokenizer merge --base "$tmp/latin.txt" \
  --add "$tmp/han.model" --out "$tmp/m1"
expect_error "merge: add not a model" "not a SentencePiece model" "$yak" tokenizer merge --base "$tmp/latin.model" \
  --add "$tmp/latin.vocab" --out "$tmp/m1"
expect_error "merge: base folder without tokenizer.model" "tokenizer.model" "$yak" tokenizer merge --base "$tmp/resized/.." \
  --add "$tmp/han.model" --out "$tmp/m1"
expect_error "merge: base pieces out of range" "cannot keep" "$yak" tokenizer merge --base "$tmp/latin.model" \
  --add "$tmp/han.model" --out "$tmp/m1" --base-pieces 99999
expect_absent "merge: bad input" "$tmp/m1"
echo keep > "$tmp/afile"
echo "not a model" > "$tmp/afile.model"
expect_error "merge: out is a file" "not a folder" "$yak" tokenizer merge --base "$tmp/latin.model" \
  --add "$tmp/han.model" --out "$tmp/afile"
[[ $(cat "$tmp/afile") == keep ]] && pass || fail "merge: out file was changed"
expect_error "merge: out not empty" "not empty" "$yak" tokenizer merge --base "$tmp/latin.model" \
  --add "$tmp/han.model" --out "$tmp/merged"
[[ $(ls "$tmp/merged" | wc -l) -eq 1 ]] && pass || fail "merge: existing folder changed: $(ls "$tmp/merged")"

expect_error "resize: missing model" "no such folder" "$yak" model resize-embeddings -m "$tmp/nope" \
  --tokenizer "$tmp/merged" --out "$tmp/r1"
expect_error "resize: smaller tokenizer" "below the model" "$yak" model resize-embeddings \
  -m "$golden/models/llama_mha_f32" --tokenizer "$tmp/han.model" --out "$tmp/r1"
expect_error "resize: tokenizer not a model" "not a SentencePiece model" "$yak" model resize-embeddings \
  -m "$golden/models/llama_mha_f32" --tokenizer "$tmp/afile.model" --out "$tmp/r1"
expect_error "resize: out is a file" "not a folder" "$yak" model resize-embeddings \
  -m "$golden/models/llama_mha_f32" --tokenizer "$tmp/merged" --out "$tmp/afile"
expect_absent "resize: bad input" "$tmp/r1"
leftovers=$(find "$tmp" -maxdepth 1 -name '.*tmp-*' | wc -l)
((leftovers == 0)) && pass || fail "temporary folders left behind: $leftovers"

echo "$passes passed, $fails failed"
((fails == 0))
