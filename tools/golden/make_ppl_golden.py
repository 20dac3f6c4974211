#!/usr/bin/env python3
"""Sliding-window perplexity and KL goldens from transformers: tests/golden/ppl/expected.json.

The text is tests/golden/ppl/text.txt, tokenized by transformers with the qwen2_bpe tokenizer
(the ids are stored; yak's tokenizer is checked against them). Windows as transformers'
perplexity recipe: `for begin in range(0, n, stride)`, end = min(begin + ctx, n), labels before
the previous window's end masked; the per-token losses are summed exactly (the recipe's
`loss * (valid - 1)` weighting is an approximation). KL(qwen2_bpe || llama_bpe) over the same
positions (both have the 512-token vocabulary) and their top-1 agreement.

    ~/.venvs/yak-golden/bin/python tools/golden/make_ppl_golden.py
"""
import json
import pathlib

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODELS = ROOT / "tests" / "golden" / "models"
OUT = ROOT / "tests" / "golden" / "ppl"
CASES = [(64, 24), (64, 64), (200, 50)]


def token_logprobs(model, ids, ctx, stride):
    """Per scored token: (position, log-softmax row over the vocabulary)."""
    n = len(ids)
    rows = []
    prev_end = 0
    for begin in range(0, n, stride):
        end = min(begin + ctx, n)
        x = torch.tensor([ids[begin:end]])
        with torch.no_grad():
            logp = torch.log_softmax(model(x).logits[0].double(), dim=-1)
        for t in range(max(prev_end, begin + 1), end):
            rows.append((t, logp[t - begin - 1]))
        prev_end = end
        if end == n:
            break
    return rows


def main():
    tok = AutoTokenizer.from_pretrained(MODELS / "qwen2_bpe")
    text = (OUT / "text.txt").read_text()
    ids = tok(text, add_special_tokens=False)["input_ids"]
    models = {m: AutoModelForCausalLM.from_pretrained(MODELS / m, torch_dtype=torch.float32,
                                                      attn_implementation="eager").eval()
              for m in ("qwen2_bpe", "llama_bpe")}
    out = {"ids": ids, "cases": []}
    for ctx, stride in CASES:
        case = {"ctx": ctx, "stride": stride}
        rows = {m: token_logprobs(models[m], ids, ctx, stride) for m in models}
        for m, r in rows.items():
            nll = -sum(float(lp[ids[t]]) for t, lp in r)
            case[m] = {"nll_sum": nll, "scored": len(r), "ppl": float(torch.exp(torch.tensor(nll / len(r))))}
        ref, mod = rows["qwen2_bpe"], rows["llama_bpe"]
        kl = sum(float((lr.exp() * (lr - lm)).sum()) for (_, lr), (_, lm) in zip(ref, mod))
        top1 = sum(int(lr.argmax() == lm.argmax()) for (_, lr), (_, lm) in zip(ref, mod))
        case["kl_llama_vs_qwen2"] = {"kl_mean": kl / len(ref), "top1": top1 / len(ref)}
        out["cases"].append(case)
        print(ctx, stride, {m: round(case[m]["ppl"], 4) for m in models}, case["kl_llama_vs_qwen2"])
    (OUT / "expected.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
