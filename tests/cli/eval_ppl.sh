#!/usr/bin/env bash
# yak eval ppl end to end: the perplexity, KL divergence and top-1 agreement transformers gives
# for the shipped text (tests/golden/ppl, tools/golden/make_ppl_golden.py) within 1e-4 relative,
# the JSON report with its windows, and bad settings refused with exit 2.
set -u
yak=$1 golden=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0 passes=0
check() {  # check NAME CONDITION
  if eval "$2"; then passes=$((passes + 1)); else echo "FAIL: $1"; fails=$((fails + 1)); fi
}
out=$("$yak" eval ppl -m "$golden/models/llama_bpe" -f "$golden/ppl/text.txt" --ctx 64 --stride 24 \
  --kl-divergence "$golden/models/qwen2_bpe" --json "$dir/ppl.json" -t 2 2>/dev/null)
code=$?
check "eval ppl exits 0 (got $code): $out" "[[ $code -eq 0 ]]"
check "prints perplexity: $out" "[[ '$out' == *'perplexity '* && '$out' == *'top-1 agreement'* ]]"
verdict=$(python3 - "$dir/ppl.json" "$golden/ppl/expected.json" <<'PY'
import json, sys
got, exp = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
case = next(c for c in exp["cases"] if c["ctx"] == 64 and c["stride"] == 24)
rel = lambda a, b: abs(a / b - 1)
ok = (rel(got["ppl"], case["llama_bpe"]["ppl"]) < 1e-4 and rel(got["kl_mean"], case["kl_llama_vs_qwen2"]["kl_mean"]) < 1e-4
      and abs(got["top1_agreement"] - case["kl_llama_vs_qwen2"]["top1"]) <= 1 / got["scored"] + 1e-12
      and got["scored"] == case["llama_bpe"]["scored"] and len(got["windows"]) > 1
      and sum(w["scored"] for w in got["windows"]) == got["scored"])
print("ok" if ok else f"ppl {got['ppl']} vs {case['llama_bpe']['ppl']}, kl {got['kl_mean']} vs {case['kl_llama_vs_qwen2']}")
PY
)
check "matches transformers: $verdict" "[[ '$verdict' == ok ]]"
"$yak" eval ppl -m "$golden/models/llama_bpe" -f "$golden/ppl/text.txt" --ctx 16 --stride 32 >/dev/null 2>"$dir/err"
code=$?
check "stride > ctx exits 2 (got $code)" "[[ $code -eq 2 ]] && grep -q stride $dir/err"
"$yak" eval ppl -m "$golden/models/llama_bpe" -f "$dir/missing.txt" >/dev/null 2>"$dir/err"
code=$?
check "missing text exits 2 (got $code)" "[[ $code -eq 2 ]] && grep -q missing.txt $dir/err"
echo "$passes passed, $fails failed"
[[ $fails -eq 0 ]]
