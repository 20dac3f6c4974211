"""Reads the JSON lines that scripts/bench-peers.sh collected and prints the side-by-side tables
(markdown) with yak's ratio to each peer and to the bounds measured in the same run.

    python bench/peers/report.py RESULTS.jsonl
"""
import json
import sys


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip().startswith("{")]
    def yak(kind, precision):
        return {r["threads"]: r for r in rows if r.get("peer") == "yak" and kind in r and "weights" not in r
                and r.get("matmul_precision", "high") == precision}
    yak_inf, yak_train = yak("decode_tokens_per_s", "high"), yak("train_tokens_per_s", "high")
    med_inf, med_train = yak("decode_tokens_per_s", "medium"), yak("train_tokens_per_s", "medium")
    llama = {}
    quant_llama, quant_yak = {}, {}
    for r in rows:
        if r.get("peer") == "llama.cpp" and "weights" in r:
            quant_llama.setdefault((r["weights"], r["threads"]), {})[r["test"]] = r["tokens_per_s"]
        elif r.get("peer") == "llama.cpp":
            llama.setdefault(r["threads"], {})[r["test"]] = r["tokens_per_s"]
        elif r.get("peer") == "yak" and "weights" in r and "decode_tokens_per_s" in r:
            quant_yak[(r["weights"], r.get("matmul_precision", "high"), r["threads"])] = r
    torch_inf = {r["threads"]: r for r in rows if r.get("peer") == "pytorch" and "decode_tokens_per_s" in r}
    torch_train = {}
    for r in rows:
        if r.get("peer") == "pytorch" and "train_tokens_per_s" in r:
            torch_train.setdefault(r["threads"], {})["bf16" if r.get("bf16") else "f32"] = r["train_tokens_per_s"]

    def ratio(a, b):
        return f"{a / b:.2f}x" if a and b else "-"

    def num(v, fmt="{:.1f}"):
        return fmt.format(v) if v else "-"

    print("Inference, Qwen2.5-0.5B shape, bf16 weights (decode: 128 tokens after a 512-token prompt; "
          "prefill: 512 tokens)\n")
    print("| threads | yak decode tok/s | llama.cpp tg128@512 | yak / llama.cpp | PyTorch decode | yak / PyTorch "
          "| yak / bandwidth bound | yak prefill tok/s | llama.cpp pp512 | yak / llama.cpp | PyTorch prefill "
          "| yak / PyTorch | yak / compute bound |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for t in sorted(yak_inf):
        y = yak_inf[t]
        l = llama.get(t, {})
        p = torch_inf.get(t, {})
        print(f"| {t} | {num(y['decode_tokens_per_s'], '{:.2f}')} | {num(l.get('tg'), '{:.2f}')} | "
              f"{ratio(y['decode_tokens_per_s'], l.get('tg'))} | {num(p.get('decode_tokens_per_s'), '{:.2f}')} | "
              f"{ratio(y['decode_tokens_per_s'], p.get('decode_tokens_per_s'))} | "
              f"{y['decode_tokens_per_s'] / y['decode_bound_tokens_per_s']:.0%} | "
              f"{num(y['prefill_tokens_per_s'])} | {num(l.get('pp'))} | {ratio(y['prefill_tokens_per_s'], l.get('pp'))} | "
              f"{num(p.get('prefill_tokens_per_s'))} | {ratio(y['prefill_tokens_per_s'], p.get('prefill_tokens_per_s'))} | "
              f"{y['prefill_tokens_per_s'] / y['prefill_bound_tokens_per_s']:.0%} |")
    if yak_inf:
        y = yak_inf[max(yak_inf)]
        print(f"\nBounds: read bandwidth {y['read_gbs']:.1f} GB/s ({max(yak_inf)} threads); prefill peak "
              f"{max(y['fma_gflops'], y.get('amx_f32_accurate_gflops', 0)):.0f} GFLOP/s "
              f"(f32 FMA {y['fma_gflops']:.0f}, AMX f32-accurate {y.get('amx_f32_accurate_gflops', 0):.0f}); "
              f"yak kernels: {y['isa']}")
    if med_inf:
        print("\nWith --matmul-precision medium (activations rounded to bf16 for the products, as llama.cpp and "
              "PyTorch bf16 compute):\n")
        print("| threads | yak prefill tok/s | yak / llama.cpp | yak / PyTorch bf16 | yak decode tok/s |")
        print("|---|---|---|---|---|")
        for t in sorted(med_inf):
            y = med_inf[t]
            print(f"| {t} | {y['prefill_tokens_per_s']:.1f} | {ratio(y['prefill_tokens_per_s'], llama.get(t, {}).get('pp'))} | "
                  f"{ratio(y['prefill_tokens_per_s'], torch_inf.get(t, {}).get('prefill_tokens_per_s'))} | "
                  f"{y['decode_tokens_per_s']:.2f} |")
    if quant_yak:
        print("\nQuantized GGUF files (llama-quantize from the bf16 GGUF; the same files for both), "
              "Qwen2.5-0.5B shape\n")
        print("| weights | yak precision | threads | yak decode tok/s | llama.cpp tg128@512 | yak / llama.cpp "
              "| yak / bandwidth bound | yak prefill tok/s | llama.cpp pp512 | yak / llama.cpp | file MB |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for (w, prec, t) in sorted(quant_yak):
            y = quant_yak[(w, prec, t)]
            l = quant_llama.get((w, t), {})
            print(f"| {w} | {prec} | {t} | {y['decode_tokens_per_s']:.2f} | {num(l.get('tg'), '{:.2f}')} | "
                  f"{ratio(y['decode_tokens_per_s'], l.get('tg'))} | "
                  f"{y['decode_tokens_per_s'] / y['decode_bound_tokens_per_s']:.0%} | {y['prefill_tokens_per_s']:.1f} | "
                  f"{num(l.get('pp'))} | {ratio(y['prefill_tokens_per_s'], l.get('pp'))} | {y.get('weights_mb', 0):.0f} |")
    print("\nTraining, LLaMA 35.7M (vocab 32000, hidden 512, 6 layers, seq 256, batch 8), forward + backward + "
          "AdamW\n")
    print("| threads | yak f32 tok/s | PyTorch f32 | yak / PyTorch f32 | yak medium (bf16 products) | PyTorch bf16 "
          "autocast | yak medium / PyTorch bf16 | yak step peak MB | yak f32 / FMA bound |")
    print("|---|---|---|---|---|---|---|---|---|")
    for t in sorted(yak_train):
        y = yak_train[t]
        p = torch_train.get(t, {})
        med = med_train.get(t, {}).get("train_tokens_per_s")
        print(f"| {t} | {y['train_tokens_per_s']:.0f} | {num(p.get('f32'), '{:.0f}')} | "
              f"{ratio(y['train_tokens_per_s'], p.get('f32'))} | {num(med, '{:.0f}')} | {num(p.get('bf16'), '{:.0f}')} | "
              f"{ratio(med, p.get('bf16'))} | {y['step_peak_mb']:.0f} | "
              f"{y['train_tokens_per_s'] / y['bound_tokens_per_s']:.0%} |")


if __name__ == "__main__":
    main()
