"""Markdown tables from bench/serve_load.py's JSON lines (scripts/bench-serve.sh)."""
import json
import sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
names = list(dict.fromkeys(r["name"] for r in rows))
print("| server | clients | requests | errors | tok/s (end to end) | decode tok/s | TTFT p50 / p99 s | ITL p50 / p99 ms | peak RSS MB |")
print("|---|---|---|---|---|---|---|---|---|")
for n in names:
    for r in (r for r in rows if r["name"] == n and r["kind"] == "load"):
        print(f"| {n} | {r['clients']} | {r['requests']} | {r['errors']} | {r['tok_s']:.1f} | {r['decode_tok_s']:.1f} | "
              f"{r['ttft_p50']:.2f} / {r['ttft_p99']:.2f} | {1000 * r['itl_p50']:.0f} / {1000 * r['itl_p99']:.0f} | "
              f"{r['peak_rss_mb']:.0f} |")
print()
print("| server | 16 clients / 1 client (end to end) | decode | TTFT miss s | TTFT hit s | miss / hit |")
print("|---|---|---|---|---|---|")
for n in names:
    load = {r["clients"]: r for r in rows if r["name"] == n and r["kind"] == "load"}
    p = next((r for r in rows if r["name"] == n and r["kind"] == "prefix"), None)
    if 1 in load and 16 in load and p:
        print(f"| {n} | {load[16]['tok_s'] / load[1]['tok_s']:.2f}x | {load[16]['decode_tok_s'] / load[1]['decode_tok_s']:.2f}x | "
              f"{p['ttft_miss']:.2f} | {p['ttft_hit']:.3f} | {p['speedup']:.1f}x |")
