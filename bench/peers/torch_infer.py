"""PyTorch CPU inference speed on the bench model folder, loaded the way a new user would load it
(transformers, torch_dtype=bfloat16, default attention): one 512-token prefill, then 128 greedy
decode steps with the KV cache. Prints one JSON line.

    python bench/peers/torch_infer.py MODEL_DIR --threads 2 [--prompt 512 --decode 128]
"""
import argparse
import json
import time

import torch
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--decode", type=int, default=128)
    ap.add_argument("--dtype", default="bfloat16")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=getattr(torch, a.dtype)).eval()
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(0, 150000, (1, a.prompt), generator=g)
    best_prefill = best_decode = 0.0
    with torch.inference_mode():
        for _ in range(2):  # the first run warms up (page faults, oneDNN kernels)
            t0 = time.perf_counter()
            out = model(input_ids=ids, use_cache=True)
            prefill = time.perf_counter() - t0
            past = out.past_key_values
            nxt = out.logits[:, -1:].argmax(-1)
            t1 = time.perf_counter()
            for _ in range(a.decode):
                out = model(input_ids=nxt, past_key_values=past, use_cache=True)
                past = out.past_key_values
                nxt = out.logits[:, -1:].argmax(-1)
            decode = time.perf_counter() - t1
            best_prefill = max(best_prefill, a.prompt / prefill)
            best_decode = max(best_decode, a.decode / decode)
    print(json.dumps({"peer": "pytorch", "torch": torch.__version__, "threads": a.threads, "dtype": a.dtype,
                      "prefill_tokens_per_s": best_prefill, "decode_tokens_per_s": best_decode}))


if __name__ == "__main__":
    main()
