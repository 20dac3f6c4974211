"""Checks that what yak trains loads in transformers and PEFT with the same greedy output.

By hand (needs the venv): trains a full SFT model and a LoRA adapter (with modules_to_save) on a tiny
generated dataset with build/bin/yak, then compares yak's and transformers'/PEFT's greedy tokens.

Run: python tools/golden/check_exports.py [path/to/yak]
"""
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

ROOT = Path(__file__).resolve().parents[2]
yak = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "build/bin/yak")
base = ROOT / "tests/golden/models/qwen2_chat"
prompt = [5, 6, 7]


def hf_greedy(model):
    ids = torch.tensor([prompt])
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=6, do_sample=False, eos_token_id=None, pad_token_id=0,
                             attention_mask=torch.ones_like(ids))
    return out[0, len(prompt):].tolist()


def yak_greedy(*args):
    out = subprocess.run([yak, "generate", *args, "--prompt-ids", " ".join(map(str, prompt)), "-n", "6", "--temp", "0",
                          "--ids", "--ignore-eos"], capture_output=True, text=True, check=True).stdout
    return [int(x) for x in out.split()]


with tempfile.TemporaryDirectory() as d:
    random.seed(0)
    with open(f"{d}/add.jsonl", "w") as f:
        for _ in range(64):
            a, b = random.randint(0, 9), random.randint(0, 9)
            f.write(json.dumps({"input": f"{a}+{b}=", "output": str(a + b)}) + "\n")
    common = ["--pretrain", str(base), "--dataset", f"{d}/add.jsonl", "--train_batch_size", "8",
              "--micro_train_batch_size", "4", "--max_epochs", "1", "--learning_rate", "1e-2", "--max_len", "32"]
    subprocess.run([yak, "train", "sft", *common, "--save_path", f"{d}/full"], check=True, capture_output=True)
    subprocess.run([yak, "train", "sft", *common, "--save_path", f"{d}/adapter", "--lora_rank", "4",
                    "--modules_to_save", "lm_head"], check=True, capture_output=True)
    full_hf = hf_greedy(AutoModelForCausalLM.from_pretrained(f"{d}/full", dtype=torch.float32))
    full_yak = yak_greedy("-m", f"{d}/full")
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32), f"{d}/adapter")
    lora_hf = hf_greedy(peft)
    lora_yak = yak_greedy("-m", str(base), "--lora", f"{d}/adapter")
    ok = full_hf == full_yak and lora_hf == lora_yak
    print("full SFT   yak", full_yak, "transformers", full_hf)
    print("LoRA       yak", lora_yak, "PEFT", lora_hf)
    print("2 passed, 0 failed" if ok else "mismatch")
    sys.exit(0 if ok else 1)
