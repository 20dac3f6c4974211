"""Reward-model golden: transformers' Qwen2ForSequenceClassification (score head on the last token).

Builds tests/golden/models/qwen2_rm from the tiny qwen2_bias_tied checkpoint with a seeded random
score head, saves it with save_pretrained, and writes rm_golden.json: the score of each prompt
(batch of one, no padding, so the pooled position is the last token).

Run: python tools/golden/make_rm_golden.py
"""
import json
import shutil
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForSequenceClassification

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "tests/golden/models/qwen2_bias_tied"
OUT = ROOT / "tests/golden/models/qwen2_rm"

torch.manual_seed(0)
model = AutoModelForSequenceClassification.from_pretrained(SRC, num_labels=1, dtype=torch.float32,
                                                           attn_implementation="eager").eval()
with torch.no_grad():
    model.score.weight.copy_(torch.randn(model.score.weight.shape) * 0.2)
if OUT.exists():
    shutil.rmtree(OUT)
model.save_pretrained(OUT)
prompts = json.loads((SRC / "golden.json").read_text())["prompts"]
scores = []
with torch.no_grad():
    for p in prompts:
        out = model(torch.tensor([p]), attention_mask=torch.ones(1, len(p), dtype=torch.long))
        scores.append(out.logits[0, 0].item())
(OUT / "rm_golden.json").write_text(json.dumps({
    "source": "qwen2_bias_tied + random score head (std 0.2, seed 0)",
    "prompts": prompts, "scores": scores,
    "versions": {"torch": torch.__version__, "transformers": transformers.__version__}}, indent=1) + "\n")
print(scores)
