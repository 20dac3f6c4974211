#!/usr/bin/env bash
# yak eval longbench end to end: scoring given predictions (per-dataset means worked out by hand
# here), then answering with the golden tiny model under LongBench's config-file shapes, a prompt
# longer than --max_len cut from the middle, and bad input refused.
set -u
yak=$1 golden=$2
m=$golden/models/qwen2_chat
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/lib/checks.sh"

python3 - "$tmp" <<'PY'
import json, sys
d = sys.argv[1]
rows = [
    # hotpotqa (QA F1): 1, 0.8 ("the eiffel tower paris" vs "eiffel tower"), 0 -> 60.00
    {"dataset": "hotpotqa", "input": "q", "context": "c", "answers": ["Paris"], "pred": "Paris"},
    {"dataset": "hotpotqa", "input": "q", "context": "c", "answers": ["Eiffel Tower"], "pred": "The Eiffel Tower, Paris!"},
    {"dataset": "hotpotqa", "input": "q", "context": "c", "answers": ["Rome"], "pred": "London"},
    # passage_count: 1 and 0.5 -> 75.00
    {"dataset": "passage_count", "input": "q", "context": "c", "answers": ["4"], "pred": "4"},
    {"dataset": "passage_count", "input": "q", "context": "c", "answers": ["4"], "pred": "4 or 5"},
    # trec (classification, first line only): 1 -> 100.00
    {"dataset": "trec", "input": "q", "context": "c", "answers": ["Person"], "all_classes": ["Person", "Location"],
     "pred": "\nPerson\nLocation"},
]
with open(f"{d}/scored.jsonl", "w") as f:
    for r in rows: f.write(json.dumps(r) + "\n")
with open(f"{d}/ask.jsonl", "w") as f:
    f.write(json.dumps({"dataset": "hotpotqa", "input": "Who wrote it?", "context": "Alice wrote the book. " * 200,
                        "answers": ["Alice"], "length": 800}) + "\n")
    f.write(json.dumps({"dataset": "samsum", "input": "Summarize.", "context": "A: hi\nB: hello", "answers": ["greetings"]}) + "\n")
json.dump({"hotpotqa": "Answer from the passages.\n\n{context}\n\nQuestion: {input}\nAnswer:",
           "samsum": "{context}\n\n{input}"}, open(f"{d}/prompts.json", "w"))
json.dump({"hotpotqa": 4, "samsum": 6}, open(f"{d}/maxlen.json", "w"))
PY
out=$("$yak" eval longbench --data "$tmp/scored.jsonl" --json "$tmp/scores.json" 2>&1)
python3 - "$tmp/scores.json" <<'PY' && pass || fail "scores of given predictions: $out"
import json, sys
s = json.load(open(sys.argv[1]))["scores"]
want = {"hotpotqa": 60.0, "passage_count": 75.0, "trec": 100.0}
bad = {k: (s.get(k), v) for k, v in want.items() if s.get(k) != v}
if bad: print("got / want:", bad)
sys.exit(1 if bad else 0)
PY
if [[ $out == *"hotpotqa                 qa_f1                   3    60.00"* ]]; then pass; else fail "table: $out"; fi

# LongBench-E: the same predictions in length buckets (0-4k below 4000, 4-8k below 8000, 8k+).
python3 - "$tmp" <<'PY'
import json, sys
d = sys.argv[1]
rows = [json.loads(l) for l in open(f"{d}/scored.jsonl")]
for r, n in zip(rows, [3999, 4000, 8000, 10, 7999, 12000]):
    r["length"] = n
with open(f"{d}/scored_e.jsonl", "w") as f:
    for r in rows: f.write(json.dumps(r) + "\n")
PY
out=$("$yak" eval longbench --data "$tmp/scored_e.jsonl" --e --json "$tmp/scores_e.json" 2>&1)
python3 - "$tmp/scores_e.json" <<'PY' && pass || fail "LongBench-E buckets: $out"
import json, sys
s = json.load(open(sys.argv[1]))["scores_e"]
# hotpotqa: 1 (3999), 0.8 (4000), 0 (8000); passage_count: 1 (10), 0.5 (7999); trec: 1 (12000)
want = {"hotpotqa": {"0-4k": 100.0, "4-8k": 80.0, "8k+": 0.0},
        "passage_count": {"0-4k": 100.0, "4-8k": 50.0, "8k+": None},
        "trec": {"0-4k": None, "4-8k": None, "8k+": 100.0}}
if s != want: print("got", s, "want", want)
sys.exit(0 if s == want else 1)
PY

"$yak" eval longbench -m "$m" --data "$tmp/ask.jsonl" --prompt-config "$tmp/prompts.json" --maxlen-config "$tmp/maxlen.json" \
  --max_len 128 --json "$tmp/ask.json" >"$tmp/ask.txt" 2>"$tmp/ask.err" || fail "answering: $(tail -2 "$tmp/ask.err")"
python3 - "$tmp/ask.json" <<'PY' && pass || fail "answers"
import json, sys
p = json.load(open(sys.argv[1]))["predictions"]
sys.exit(0 if len(p) == 2 and all(isinstance(x["pred"], str) for x in p) and "\n" not in p[1]["pred"] else 1)
PY

# Chinese answers over jieba's words when its dictionary is installed (LongBench's scoring), else over
# characters with a notice: pred 答案/是/清华大学 vs 清华大学 -> F1 0.5; by characters 4 of 7 -> 8/11.
printf '{"dataset": "multifieldqa_zh", "input": "q", "context": "c", "answers": ["清华大学"], "pred": "答案是清华大学"}\n' >"$tmp/zh.jsonl"
out=$("$yak" eval longbench --data "$tmp/zh.jsonl" --json "$tmp/zh.json" 2>&1)
if [[ -f /usr/lib/python3/dist-packages/jieba/dict.txt || -n ${YAK_JIEBA_DIR:-} ]]; then want_zh="50.0 jieba"; else want_zh="72.73 characters"; fi
got_zh=$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["scores"]["multifieldqa_zh"], j["chinese_words"])' "$tmp/zh.json")
[[ $got_zh == "$want_zh" ]] && pass || fail "Chinese scoring: got '$got_zh' want '$want_zh': $out"
expect_error "a --jieba folder without the dictionary" "dict.txt: cannot open" "$yak" eval longbench --data "$tmp/zh.jsonl" --jieba "$tmp"

printf '{"dataset": "gsm8k", "input": "q", "answers": ["1"]}\n' >"$tmp/bad.jsonl"
expect_error "unknown dataset" "bad.jsonl:1" "$yak" eval longbench --data "$tmp/bad.jsonl"
printf '{"dataset": "hotpotqa", "input": "q"}\n' >"$tmp/bad2.jsonl"
expect_error "no answers" "bad2.jsonl:1: missing field 'answers'" "$yak" eval longbench --data "$tmp/bad2.jsonl"
echo "eval_longbench: $passes passed, $fails failed"
[[ $fails -eq 0 ]]
