"""PyTorch CPU training speed of the bench LLaMA (the same config bench_train builds): forward,
backward and torch.optim.AdamW on random tokens, f32, transformers' LlamaForCausalLM with its
default (sdpa) attention. Prints one JSON line: tokens per second and the config.

    python bench/peers/torch_train.py --threads 2 [--steps 8] [--bf16]
"""
import argparse
import json
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--bf16", action="store_true", help="torch.autocast(cpu, bfloat16) around forward")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=32000, hidden_size=512, intermediate_size=1408, num_hidden_layers=6,
                      num_attention_heads=8, num_key_value_heads=8, max_position_embeddings=1024,
                      tie_word_embeddings=True, rms_norm_eps=1e-5)
    model = LlamaForCausalLM(cfg).train()
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.0)
    times = []
    for step in range(a.warmup + a.steps):
        ids = torch.randint(0, cfg.vocab_size, (a.batch, a.seq))
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step >= a.warmup:
            times.append(time.perf_counter() - t0)
    tps = a.batch * a.seq * len(times) / sum(times)
    print(json.dumps({"peer": "pytorch", "torch": torch.__version__, "threads": a.threads, "params": params,
                      "seq": a.seq, "batch": a.batch, "bf16": a.bf16, "train_tokens_per_s": tps,
                      "step_s": sum(times) / len(times)}))


if __name__ == "__main__":
    main()
