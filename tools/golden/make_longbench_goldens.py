"""LongBench scorer goldens from the packages LongBench's metrics.py calls: ROUGE-L F from the
`rouge` package 1.0.1 (`Rouge().get_scores([pred], [ref], avg=True)["rouge-l"]["f"]`, 0 when it
raises) and code edit similarity from fuzzywuzzy 0.18.0 with python-Levenshtein
(`fuzz.ratio(pred, ref) / 100`), over pairs written here. The other scorers (QA F1,
classification, retrieval, counting) are checked against hand-computed values in
tests/infer_longbench_test.cpp.

Run: python tools/golden/make_longbench_goldens.py   (pip install rouge==1.0.1 fuzzywuzzy==0.18.0
     python-Levenshtein==0.27.1)
Writes tests/golden/eval/longbench_scorers.json.
"""
import json
from pathlib import Path

from fuzzywuzzy import fuzz
from rouge import Rouge

OUT = Path(__file__).resolve().parents[2] / "tests" / "golden" / "eval" / "longbench_scorers.json"

ROUGE_PAIRS = [
    ("the cat sat on the mat", "the cat is on the mat"),
    ("A meeting was held. The budget was approved.", "The budget was approved at the meeting."),
    ("completely different words here", "nothing in common at all"),
    ("repeated repeated repeated words", "repeated words"),
    ("Alice met Bob. Bob met Carol. Carol left.", "Carol met Alice. Bob left early."),
    ("", "the reference"),
    ("...", "the reference"),
    ("one two three four five six", "six five four three two one"),
    ("Summary:   spaced    out text .  second part", "spaced out text. second part here"),
    ("他 们 在 开 会", "他 们 开 会 了"),
]
CODE_PAIRS = [
    ("    return x + 1\n", "    return x + 1"),
    ("```python\n# comment\n    return x - 1", "    return x + 1"),
    ("\n\nfor i in range(10):", "for i in range(n):"),
    ("// note\nint y = 2;", "int x = 2;"),
    ("", "anything"),
    ("完全不同", "def f(): pass"),
]


def rouge_l(p, r):
    try:
        return Rouge().get_scores([p], [r], avg=True)["rouge-l"]["f"]
    except Exception:
        return 0.0


def first_code_line(pred):
    for line in pred.lstrip("\n").split("\n"):
        if "`" not in line and "#" not in line and "//" not in line:
            return line
    return ""


def main():
    doc = {
        "made_by": "tools/golden/make_longbench_goldens.py (rouge 1.0.1, fuzzywuzzy 0.18.0 + python-Levenshtein)",
        "rouge_l": [{"prediction": p, "reference": r, "f": rouge_l(p, r)} for p, r in ROUGE_PAIRS],
        # fuzz.ratio on the first line that is not a comment or a code fence, as LongBench picks it.
        "code_sim": [{"prediction": p, "reference": r, "score": fuzz.ratio(first_code_line(p), r) / 100}
                     for p, r in CODE_PAIRS],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"{len(ROUGE_PAIRS)} ROUGE-L and {len(CODE_PAIRS)} code-similarity pairs -> {OUT}")


if __name__ == "__main__":
    main()
