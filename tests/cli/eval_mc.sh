#!/usr/bin/env bash
# yak eval mc end to end. (1) Scoring: a tiny model trained here to answer "C" to every CMMLU-style
# question scores exactly the share of C answers in a generated benchmark folder — by the logits
# of A-D and by the letter it writes — and the JSON agrees with the table. (2) Sanity: a random
# model on real CMMLU subjects (../shared/data/eval/cmmlu) scores about 25%. (3) Bad input.
set -u
yak=$1 golden=$2
m=$golden/models/qwen2_chat
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/lib/checks.sh"

python3 - "$tmp" <<'PY'
import csv, json, random, sys
d = sys.argv[1]
r = random.Random(7)
import os
for split in ("dev", "test"):
    os.makedirs(f"{d}/bench/{split}", exist_ok=True)
answers = {"agronomy": "CCCABDCCBA" * 3, "anatomy": "ABCDABCDAB" * 2}  # 15/30 and 5/20 are C
want = {}
for subject, ans in answers.items():
    for split, rows in (("dev", "ABCDA"), ("test", ans)):
        with open(f"{d}/bench/{split}/{subject}.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["", "Question", "A", "B", "C", "D", "Answer"])
            for i, a in enumerate(rows):
                w.writerow([i, f"第{i}题，{subject}, \"引号\"", "甲", "乙", "丙", "丁", a])
    want[subject] = ans.count("C") / len(ans)
json.dump(want, open(f"{d}/want.json", "w"))
# SFT data: CMMLU's zero-shot prompt for questions like these, always answered "C".
with open(f"{d}/sft.jsonl", "w", encoding="utf-8") as f:
    for i in range(64):
        q = f"第{r.randint(0, 99)}题，{r.choice(list(answers))}, \"引号\"\nA. 甲\nB. 乙\nC. 丙\nD. 丁\n答案是："
        f.write(json.dumps({"input": "以下是关于农学的单项选择题，请直接给出正确答案的选项。\n\n题目：" + q, "output": "C"},
                           ensure_ascii=False) + "\n")
PY
"$yak" train sft --pretrain "$m" --dataset "$tmp/sft.jsonl" --input_key input --output_key output --max_len 512 \
  --train_batch_size 8 --micro_train_batch_size 8 --max_epochs 8 --learning_rate 3e-3 --save_path "$tmp/c-model" \
  >"$tmp/sft.log" 2>&1 || fail "training the always-C model: $(tail -2 "$tmp/sft.log")"
for mode in logits generate; do
  extra=()
  [[ $mode == generate ]] && extra=(--generate --max-new-tokens 2)
  "$yak" eval mc -m "$tmp/c-model" --task cmmlu --data "$tmp/bench" --shots 0 --json "$tmp/$mode.json" "${extra[@]}" \
    >"$tmp/$mode.txt" 2>"$tmp/$mode.err" || fail "eval mc ($mode): $(tail -2 "$tmp/$mode.err")"
  python3 - "$tmp/$mode.json" "$tmp/want.json" "$tmp/$mode.txt" <<'PY' && pass || fail "always-C scores ($mode)"
import json, sys
got, want = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
table = open(sys.argv[3]).read()
ok = True
for s, w in want.items():
    a = got["subjects"][s]["accuracy"]
    if abs(a - w) > 1e-9:
        print(f"{s}: accuracy {a}, want {w} (the share of C answers)"); ok = False
    if f"{100 * w:.2f}%" not in table:
        print(f"{s}: {100 * w:.2f}% not in the table"); ok = False
avg = sum(want.values()) / len(want)
if abs(got["average"] - avg) > 1e-9:
    print("average", got["average"], "want", avg); ok = False
if set(got["predictions"]) != {"C"}:
    print("predictions", set(got["predictions"])); ok = False
sys.exit(0 if ok else 1)
PY
done

# A random model on real CMMLU subjects: about a quarter right.
cmmlu=$(cd "$(dirname "$0")/../.." && pwd)/../shared/data/eval/cmmlu
if [[ -d $cmmlu ]]; then
  "$yak" eval mc -m "$m" --data "$cmmlu" --subjects agronomy,anatomy,arts,astronomy --shots 1 --json "$tmp/rand.json" \
    >/dev/null 2>"$tmp/rand.err" || fail "eval mc on CMMLU: $(tail -2 "$tmp/rand.err")"
  python3 -c 'import json,sys;a=json.load(open(sys.argv[1]))["average"];print(f"random model on 4 CMMLU subjects: {100*a:.1f}%");sys.exit(0 if 0.15<a<0.35 else 1)' \
    "$tmp/rand.json" && pass || fail "random model far from 25%"
else
  echo "eval_mc: ../shared/data/eval/cmmlu absent; the random-model check is skipped"
fi

printf ',Question,A,B,C,D,Answer\n0,"unclosed,甲,乙,丙,丁,A\n' >"$tmp/bench/test/broken.csv"
expect_error "unclosed quote" "broken.csv:2: a quoted field is not closed" "$yak" eval mc -m "$m" --data "$tmp/bench" --subjects broken
rm "$tmp/bench/test/broken.csv"
printf ',Question,A,B,C,D,Answer\n0,q,a,b,c,d,E\n' >"$tmp/bench/test/badans.csv"
expect_error "bad answer" "answer 'E' is not one of A, B, C, D" "$yak" eval mc -m "$m" --data "$tmp/bench" --subjects badans
expect_error "unknown task" "expected cmmlu, ceval or mmlu" "$yak" eval mc -m "$m" --data "$tmp/bench" --task gsm8k
echo "eval_mc: $passes passed, $fails failed"
[[ $fails -eq 0 ]]
