"""Speculative decoding on loopback: one client sends the same prompts to yak serve with and
without a draft model (the caller restarts the server between runs) and reports decode tokens/s,
the draft's acceptance from /metrics, and whether the greedy texts are identical. Standard
library only.

  python3 bench/spec_client.py --url http://127.0.0.1:PORT --prompts FILE --name NAME [--temperature T]

FILE holds one prompt per line as a JSON string. Prints one JSON line; with --texts OUT the completions are
written as JSON for the next run to compare with (--compare OUT)."""
import argparse
import json
import re
import time
import urllib.request


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


def metric(text, name):
    m = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--prompts", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--texts")
    ap.add_argument("--compare")
    a = ap.parse_args()
    prompts = [json.loads(line) for line in open(a.prompts, encoding="utf-8") if line.strip()]
    # One warm-up request (page pool, buffer pool, caches), not counted.
    post(a.url + "/v1/completions", {"prompt": prompts[0], "max_tokens": 8, "temperature": 0})
    texts, tokens, seconds = [], 0, 0.0
    for i, p in enumerate(prompts):
        body = {"prompt": p, "max_tokens": a.max_tokens, "temperature": a.temperature, "seed": 1000 + i,
                "ignore_eos": True}
        t0 = time.perf_counter()
        r = post(a.url + "/v1/completions", body)
        seconds += time.perf_counter() - t0
        tokens += r["usage"]["completion_tokens"]
        texts.append(r["choices"][0]["text"])
    with urllib.request.urlopen(a.url + "/metrics", timeout=60) as r:
        m = r.read().decode()
    drafted = metric(m, "yak_speculative_draft_tokens_total")
    kept = metric(m, "yak_speculative_accepted_tokens_total")
    out = {"name": a.name, "temperature": a.temperature, "requests": len(prompts), "tokens": tokens,
           "seconds": round(seconds, 3), "tok_s": round(tokens / seconds, 2), "drafted": int(drafted),
           "kept": int(kept), "acceptance": round(kept / drafted, 4) if drafted else None,
           "steps": int(metric(m, "yak_steps_total"))}
    if a.texts:
        json.dump(texts, open(a.texts, "w"))
    if a.compare:
        ref = json.load(open(a.compare))
        out["identical_to_reference"] = sum(x == y for x, y in zip(texts, ref))
    print(json.dumps(out), flush=True)


main()
