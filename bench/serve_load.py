"""Load test of an OpenAI-compatible server on loopback (yak serve, llama.cpp's llama-server):
concurrent streaming clients with mixed prompt lengths, then time to first token with a shared
~1k-token system prompt (prefix-cache hits) against fresh ones (misses). Standard library only.

  python3 bench/serve_load.py --url http://127.0.0.1:8080 --pid PID --name yak [--levels 1,4,16,64]

Prints one JSON line per measurement (aggregate decode tok/s, TTFT and inter-token latency
p50/p99, errors, the server's peak resident memory from /proc/PID/status) for
scripts/bench-serve.sh to tabulate. Every request is bounded (max_tokens, ignore_eos), and the
whole run is bounded in count; nothing leaves the machine."""
import argparse
import http.client
import json
import random
import statistics
import sys
import threading
import time
import urllib.parse

WORDS = ("yak grass hill snow river stone wind cloud herd valley path night light water bread salt road "
         "wool tent fire song field sky winter summer trail").split()


def text_of(n_words, rng):
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(p / 100 * (len(xs) - 1)))))
    return xs[k]


def stream_completion(url, prompt, max_tokens, timeout=600):
    """One streamed /v1/completions request: (ok, ttft, inter-token gaps, chunks, completion tokens)."""
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    body = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True,
                       "ignore_eos": True, "stream_options": {"include_usage": True}})
    t0 = time.perf_counter()
    try:
        conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
        r = conn.getresponse()
        if r.status != 200:
            r.read()
            return False, 0, [], 0, 0
        first, last, gaps, chunks, tokens, done = None, None, [], 0, None, False
        buf = b""
        while True:
            line = r.fp.readline()
            if not line:
                break
            line = line.strip()
            if not line.startswith(b"data: "):
                continue
            data = line[6:]
            if data == b"[DONE]":
                done = True
                break
            j = json.loads(data)
            if j.get("usage"):
                tokens = j["usage"].get("completion_tokens")
            for c in j.get("choices", []):
                if c.get("text"):
                    now = time.perf_counter()
                    if first is None:
                        first = now
                    else:
                        gaps.append(now - last)
                    last = now
                    chunks += 1
        ok = done and first is not None
        return ok, (first - t0) if first else 0, gaps, chunks, tokens if tokens is not None else chunks
    except (OSError, http.client.HTTPException, json.JSONDecodeError):
        return False, 0, [], 0, 0
    finally:
        conn.close()


def peak_rss_mb(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def run_level(url, clients, requests_per_client, max_tokens, seed, lengths=(8, 32, 96, 192)):
    rng = random.Random(seed)
    # Mixed prompt lengths: short questions, paragraphs, long documents.
    jobs = [[text_of(rng.choice(lengths), rng) for _ in range(requests_per_client)] for _ in range(clients)]
    results, lock = [], threading.Lock()

    def client(prompts):
        for p in prompts:
            res = stream_completion(url, p, max_tokens)
            with lock:
                results.append(res)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(j,)) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ok = [r for r in results if r[0]]
    tokens = sum(r[4] for r in ok)
    ttft = [r[1] for r in ok]
    gaps = [g for r in ok for g in r[2]]
    # Each request's own decode rate (tokens after the first over the time after the first); with
    # every client busy, clients x the median is the aggregate decode rate.
    rates = [(len(r[2])) / sum(r[2]) for r in ok if r[2] and sum(r[2]) > 0]
    return {"clients": clients, "requests": len(results), "errors": len(results) - len(ok),
            "short": sum(1 for r in ok if r[4] != max_tokens), "tokens": tokens, "wall_s": wall,
            "tok_s": tokens / wall,
            "decode_tok_s": clients * statistics.median(rates) if rates else float("nan"), "ttft_p50": pct(ttft, 50), "ttft_p99": pct(ttft, 99),
            "itl_p50": pct(gaps, 50), "itl_p99": pct(gaps, 99)}


def run_prefix(url, seed, system_words, trials):
    rng = random.Random(seed)
    system = text_of(system_words, rng)
    # Misses: a different long system prompt each time (nothing to share).
    misses = []
    for i in range(trials):
        other = text_of(system_words, random.Random(seed * 100 + i))
        misses.append(stream_completion(url, other + "\nQuestion: " + text_of(6, rng) + "\nAnswer:", 4)[1])
    stream_completion(url, system + "\nQuestion: " + text_of(6, rng) + "\nAnswer:", 4)  # primes the cache
    hits = [stream_completion(url, system + "\nQuestion: " + text_of(6, rng) + "\nAnswer:", 4)[1]
            for _ in range(trials)]
    return {"ttft_miss": statistics.median(misses), "ttft_hit": statistics.median(hits),
            "speedup": statistics.median(misses) / statistics.median(hits)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--levels", default="1,4,16,64")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--system-words", type=int, default=1000, help="words of the shared system prompt (~1k tokens)")
    ap.add_argument("--prefix-trials", type=int, default=3)
    a = ap.parse_args()
    stream_completion(a.url, "warm up", 4)
    for c in [int(x) for x in a.levels.split(",")]:
        per = 2 if c <= 16 else 1  # bounded: 2 requests per client up to 16 clients, 1 beyond
        r = run_level(a.url, c, per, a.max_tokens, seed=c)
        r.update(name=a.name, kind="load", peak_rss_mb=peak_rss_mb(a.pid))
        print(json.dumps(r), flush=True)
    # Decode alone: every client starts together with a short prompt, so nearly every step is
    # a decode step of all of them (the aggregate decode rate the batch reaches).
    for c in (1, 16):
        r = run_level(a.url, c, 1, a.max_tokens, seed=100 + c, lengths=(4,))
        r.update(name=a.name, kind="decode", peak_rss_mb=peak_rss_mb(a.pid))
        print(json.dumps(r), flush=True)
    r = run_prefix(a.url, 7, a.system_words, a.prefix_trials)
    r.update(name=a.name, kind="prefix", peak_rss_mb=peak_rss_mb(a.pid))
    print(json.dumps(r), flush=True)


if __name__ == "__main__":
    sys.exit(main())
