"""Checks yak on the tokenizer.json that transformers builds from the Qwen2 two-file tokenizer.

That file (11 MB, derived from ../shared/data) cannot be committed, so this check runs by hand:
it converts with transformers into a temporary folder and compares `yak tokenize` with the
committed goldens (tests/golden/tokenizer/qwen2_ids.json).

Run: python tools/golden/check_qwen2_tokenizer_json.py [path/to/yak]
"""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from transformers import AutoTokenizer

ROOT = Path(__file__).resolve().parents[2]
yak = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "build/bin/yak")
golden = json.loads((ROOT / "tests/golden/tokenizer/qwen2_ids.json").read_text())
with tempfile.TemporaryDirectory() as d:
    AutoTokenizer.from_pretrained(str(ROOT.parent / "shared/data/tokenizers/qwen2")).save_pretrained(d)
    bad = 0
    for case in golden["cases"]:
        text = Path(d) / "text.txt"
        text.write_text(case["text"])
        out = subprocess.run([yak, "tokenize", "--tokenizer", f"{d}/tokenizer.json", "--file", str(text)],
                             capture_output=True, text=True, check=True).stdout.split()
        if [int(x) for x in out] != case["ids"]:
            bad += 1
            print("mismatch:", repr(case["text"][:60]))
print(f"{len(golden['cases']) - bad} passed, {bad} failed")
sys.exit(1 if bad else 0)
