"""Markdown tables from bench/serve_load.py's JSON lines (scripts/bench-serve.sh)."""
import json
import sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
names = list(dict.fromkeys(r["name"] for r in rows))
print("| server | clients | requests | errors | tok/s (end to end) | TTFT p50 / p99 s | ITL p50 / p99 ms | peak RSS MB |")
print("|---|---|---|---|---|---|---|---|")
for n in names:
    for r in (r for r in rows if r["name"] == n and r["kind"] == "load"):
        print(f"| {n} | {r['clients']} | {r['requests']} | {r['errors']} | {r['tok_s']:.1f} | "
              f"{r['ttft_p50']:.2f} / {r['ttft_p99']:.2f} | {1000 * r['itl_p50']:.0f} / {1000 * r['itl_p99']:.0f} | "
              f"{r['peak_rss_mb']:.0f} |")
print()
print("| server | mixed load: 16 clients / 1 (end to end) | decode alone: 1 client tok/s | 16 clients tok/s | ratio | TTFT miss s | TTFT hit s | miss / hit |")
print("|---|---|---|---|---|---|---|---|")
for n in names:
    load = {r["clients"]: r for r in rows if r["name"] == n and r["kind"] == "load"}
    dec = {r["clients"]: r for r in rows if r["name"] == n and r["kind"] == "decode"}
    p = next((r for r in rows if r["name"] == n and r["kind"] == "prefix"), None)
    if 1 in load and 16 in load and p and 1 in dec and 16 in dec:
        print(f"| {n} | {load[16]['tok_s'] / load[1]['tok_s']:.2f}x | {dec[1]['tok_s']:.1f} | {dec[16]['tok_s']:.1f} | "
              f"{dec[16]['tok_s'] / dec[1]['tok_s']:.2f}x | {p['ttft_miss']:.2f} | {p['ttft_hit']:.3f} | {p['speedup']:.1f}x |")
