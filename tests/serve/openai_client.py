"""yak serve driven by the official `openai` package (and plain HTTP for what it does not
cover): chat, completions, streaming, n, seeds, logprobs, embeddings, tokenize, metrics, the
prefix cache, errors, a full queue and a client that goes away. Replies at temperature 0 are
compared with `yak generate` on the same model. Prints FAIL lines; exits 1 on any."""
import base64
import json
import math
import re
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import jsonschema
import openai
from checks import check, fails, summarize  # noqa: F401

yak, model, base, key = sys.argv[1:5]
speculative = sys.argv[5:6] == ["speculative"]  # the server runs with a draft model


client = openai.OpenAI(base_url=base, api_key=key, max_retries=0, timeout=120)
root = base[: -len("/v1")]


def raw(method, path, body=None, headers=None, auth=True):
    h = {"Content-Type": "application/json"}
    if auth:
        h["Authorization"] = "Bearer " + key
    h.update(headers or {})
    data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(root + path, data=data, headers=h, method=method)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def generate(*args):
    out = subprocess.run([yak, "generate", "-m", model, "--temperature", "0", *args], capture_output=True, check=True)
    return out.stdout[:-1]  # the streamed text, then one newline


def token_bytes(logprobs):
    return b"".join(bytes(t.bytes) for t in logprobs.content)


# Models.
ids = [m.id for m in client.models.list().data]
check(ids == ["qwen2_chat"], f"models: {ids}")

# Chat at temperature 0 equals `yak generate --chat-template auto` (byte for byte: the logprobs'
# bytes are the raw tokens; content is their UTF-8 reading).
msgs = [{"role": "user", "content": "Tell me about yaks."}]
r = client.chat.completions.create(model="qwen2_chat", messages=msgs, max_tokens=20, temperature=0, logprobs=True,
                                   top_logprobs=3)
want = generate("-p", "Tell me about yaks.", "--chat-template", "auto", "-n", "20")
got = token_bytes(r.choices[0].logprobs)
check(got == want, f"chat bytes {got!r} != yak generate {want!r}")
check(r.choices[0].message.content == got.decode("utf-8", "replace") or "\ufffd" in r.choices[0].message.content,
      "chat content is the tokens' text")
check(r.choices[0].finish_reason in ("stop", "length"), f"finish_reason {r.choices[0].finish_reason}")
check(r.usage.completion_tokens == len(r.choices[0].logprobs.content), "usage counts the tokens")
for t in r.choices[0].logprobs.content:
    tops = [x.logprob for x in t.top_logprobs]
    check(len(tops) == 3 and tops == sorted(tops, reverse=True), "top_logprobs: three, best first")
    check(abs(t.logprob - tops[0]) < 1e-6, "greedy picks the most likely token")
    check(sum(math.exp(x) for x in tops) <= 1 + 1e-5, "probabilities sum to at most 1")

# Completions at temperature 0: a text prompt and the same prompt as token ids.
c = client.completions.create(model="qwen2_chat", prompt="The yak", max_tokens=12, temperature=0, logprobs=2)
want = generate("-p", "The yak", "-n", "12")
got = "".join(c.choices[0].logprobs.tokens).encode("utf-8", "replace")
check(c.choices[0].text.encode() == want or b"\xef\xbf\xbd" in c.choices[0].text.encode(),
      f"completion text {c.choices[0].text!r} != yak generate {want!r}")
tok = json.loads(raw("POST", "/tokenize", {"content": "The yak", "add_special": True})[2])
check(tok["count"] == len(tok["tokens"]) and tok["tokens"], "tokenize")
c2 = client.completions.create(model="qwen2_chat", prompt=tok["tokens"], max_tokens=12, temperature=0)
check(c2.choices[0].text == c.choices[0].text, "token-id prompt gives the same completion")
det = json.loads(raw("POST", "/detokenize", {"tokens": tok["tokens"]})[2])
check(det["content"].endswith("The yak"), f"detokenize: {det}")

# Streaming equals the whole reply for the same seed; usage comes last.
kw = dict(model="qwen2_chat", messages=msgs, max_tokens=24, temperature=0.9, top_p=0.95, seed=42)
whole = client.chat.completions.create(**kw)
parts, finish, usage, roles = [], None, None, 0
for ch in client.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True}):
    if ch.usage:
        usage = ch.usage
    for ci in ch.choices:
        roles += ci.delta.role == "assistant"
        parts.append(ci.delta.content or "")
        finish = ci.finish_reason or finish
check("".join(parts) == whole.choices[0].message.content, "stream == whole reply for one seed")
check(finish == whole.choices[0].finish_reason and roles == 1, f"stream finish {finish}, roles {roles}")
check(usage is not None and usage.completion_tokens == whole.usage.completion_tokens, f"stream usage {usage}")
again = client.chat.completions.create(**kw)
check(again.choices[0].message.content == whole.choices[0].message.content, "a seed reproduces its reply")

# n samples: choice i is what seed + i gives alone.
multi = client.chat.completions.create(**{**kw, "n": 3, "seed": 5})
check([x.index for x in multi.choices] == [0, 1, 2], "n=3 gives three choices")
for i in range(3):
    one = client.chat.completions.create(**{**kw, "seed": 5 + i})
    check(multi.choices[i].message.content == one.choices[0].message.content, f"n choice {i} == seed {5 + i} alone")
check(multi.usage.prompt_tokens == whole.usage.prompt_tokens, "usage counts the shared prompt once")

# Stop strings end the text before them.
full = client.completions.create(model="qwen2_chat", prompt="The yak", max_tokens=30, temperature=0).choices[0].text
if len(full) > 6:
    stop = full[3:5]
    s = client.completions.create(model="qwen2_chat", prompt="The yak", max_tokens=30, temperature=0, stop=[stop])
    check(s.choices[0].text == full[: full.find(stop)] and s.choices[0].finish_reason == "stop",
          f"stop {stop!r}: {s.choices[0].text!r}")

# Prefix cache: a long shared system prompt is computed once.
system = " ".join(f"rule {i}: be kind to yaks." for i in range(8))
first = client.chat.completions.create(model="qwen2_chat", max_tokens=4, temperature=0,
                                       messages=[{"role": "system", "content": system}, {"role": "user", "content": "a"}])
second = client.chat.completions.create(model="qwen2_chat", max_tokens=4, temperature=0,
                                        messages=[{"role": "system", "content": system}, {"role": "user", "content": "b"}])
cached = second.usage.prompt_tokens_details.cached_tokens
check(cached >= 64 and cached % 64 == 0 and cached <= second.usage.prompt_tokens, f"prefix cache hit: {cached}")

# Embeddings: unit vectors, floats and base64 alike, one per input.
e = client.embeddings.create(model="qwen2_chat", input=["a yak", "a hill"])
check(len(e.data) == 2 and all(len(d.embedding) == 64 for d in e.data), "two 64-d embeddings")
check(all(abs(sum(x * x for x in d.embedding) - 1) < 1e-4 for d in e.data), "embeddings are unit length")
status, _, body = raw("POST", "/v1/embeddings", {"input": "a yak", "encoding_format": "float"})
floats = json.loads(body)["data"][0]["embedding"]
check(max(abs(a - b) for a, b in zip(floats, e.data[0].embedding)) < 1e-6, "float and base64 embeddings agree")

# Constrained output: every reply of a random model parses (json_object) and validates against
# the schema (json_schema; checked by the independent `jsonschema` package), streamed or not.
for seed in (1, 2):
    j = client.chat.completions.create(model="qwen2_chat", messages=msgs, temperature=1.0, seed=seed, n=3,
                                       max_tokens=190, response_format={"type": "json_object"})
    for ch in j.choices:
        try:
            check(isinstance(json.loads(ch.message.content), dict), f"json_object gives an object: {ch.message.content!r}")
        except ValueError:
            check(False, f"json_object reply is not JSON: {ch.message.content!r} ({ch.finish_reason})")
person = {"type": "object", "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 16},
    "age": {"type": "integer", "minimum": 0},
    "languages": {"type": "array", "items": {"type": "string", "enum": ["zh", "en", "fr"]}, "maxItems": 3},
    "address": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12},
                                                 "zip": {"type": ["string", "null"], "maxLength": 6}},
                "required": ["city"], "additionalProperties": False},
    "verified": {"type": "boolean"}},
    "required": ["name", "age", "languages"], "additionalProperties": False}
fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": person, "strict": True}}
replies = []
for seed in (3, 4, 5):
    j = client.chat.completions.create(model="qwen2_chat", messages=msgs, temperature=1.0, seed=seed, n=3,
                                       max_tokens=190, response_format=fmt)
    replies += [(ch.message.content, ch.finish_reason) for ch in j.choices]
parts = []
for chunk in client.chat.completions.create(model="qwen2_chat", messages=msgs, temperature=1.0, seed=9,
                                            max_tokens=190, response_format=fmt, stream=True):
    if chunk.choices and chunk.choices[0].delta.content:
        parts.append(chunk.choices[0].delta.content)
replies.append(("".join(parts), "stop"))
order = list(person["properties"])
for text, finish in replies:
    try:
        obj = json.loads(text)
        jsonschema.validate(obj, person)
        keys = [k for k in obj]
        check(keys == sorted(keys, key=order.index), f"properties in the schema's order: {keys}")
        check(finish == "stop", f"a complete object ends with stop: {finish}")
    except (ValueError, jsonschema.ValidationError) as ex:
        check(False, f"json_schema reply {text!r} ({finish}): {ex}")
status, _, body = raw("POST", "/v1/completions", {"prompt": "Answer:", "grammar": 'root ::= " yes" | " no"',
                                                  "temperature": 1.0, "seed": 1, "max_tokens": 8})
c = json.loads(body)
check(status == 200 and c["choices"][0]["text"] in (" yes", " no") and c["choices"][0]["finish_reason"] == "stop",
      f"grammar: {status} {body[:200]!r}")

# Errors: OpenAI's shape and status, naming the field.
try:
    openai.OpenAI(base_url=base, api_key="wrong", max_retries=0).models.list()
    check(False, "a wrong key is refused")
except openai.AuthenticationError as ex:
    check(ex.status_code == 401 and ex.body["code"] == "invalid_api_key", f"401 body {ex.body}")
check(raw("GET", "/health", auth=False)[0] == 200, "/health needs no key")
for bad, param in [({"temperature": 5}, "temperature"), ({"top_logprobs": 3}, "top_logprobs"),
                   ({"n": 0}, "n"), ({"stop": 3}, "stop"), ({"max_tokens": "x"}, "max_tokens"),
                   ({"response_format": {"type": "xml"}}, "response_format"),
                   ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {
                       "type": "integer", "maximum": 3}}}}, "response_format.json_schema"),
                   ({"extra_body": {"grammar": "root ::= missing"}}, "grammar"),
                   ({"tools": [{"type": "function"}]}, "tools[0]")]:
    try:
        client.chat.completions.create(model="qwen2_chat", messages=msgs, **bad)
        check(False, f"{bad} is refused")
    except openai.BadRequestError as ex:
        check(ex.body.get("param") == param and ex.body.get("type") == "invalid_request_error", f"{bad}: {ex.body}")
try:
    client.completions.create(model="qwen2_chat", prompt="yak " * 400, max_tokens=4)
    check(False, "a prompt past the context is refused")
except openai.BadRequestError as ex:
    check(ex.body.get("code") == "context_length_exceeded", f"context: {ex.body}")
status, _, body = raw("POST", "/v1/chat/completions", b"{not json")
check(status == 400 and "error" in json.loads(body), f"invalid JSON: {status} {body}")
status, _, body = raw("GET", "/v1/nothing")
check(status == 404 and json.loads(body)["error"]["type"] == "not_found_error", f"404: {status} {body}")
status, _, body = raw("POST", "/v1/completions", b'{"prompt": "' + b"a" * (2 << 20) + b'"}')
check(status == 413, f"body too large: {status}")
try:
    client.chat.completions.create(model="qwen2_chat", messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "file:///x.png"}}]}])
    check(False, "images are refused by a text model")
except openai.BadRequestError as ex:
    check("images" in ex.body["message"], f"image: {ex.body}")

# Metrics in Prometheus' text format.
status, headers, body = raw("GET", "/metrics")
text = body.decode()
check(status == 200 and "text/plain" in headers.get("Content-Type", ""), "metrics content type")
for name in ["yak_requests_total", "yak_generation_tokens_total", "yak_queue_length", "yak_kv_cache_usage_ratio",
             "yak_prefix_cache_hit_ratio", "yak_batch_sequences", "yak_speculative_draft_tokens_total",
             "yak_speculative_accepted_tokens_total", "yak_speculative_acceptance_ratio"]:
    check(re.search(rf"^{name}(\{{.*\}})? [0-9.e+-]+$", text, re.M) is not None, f"metric {name}")
finished = int(re.search(r'yak_requests_total\{outcome="finished"\} (\d+)', text).group(1))
check(finished >= 15, f"finished requests counted: {finished}")
drafted = int(re.search(r"^yak_speculative_draft_tokens_total (\d+)$", text, re.M).group(1))
kept = int(re.search(r"^yak_speculative_accepted_tokens_total (\d+)$", text, re.M).group(1))
if speculative:
    check(drafted > 0 and 0 <= kept <= drafted, f"speculative counters: {kept} of {drafted} drafts kept")
else:
    check(drafted == 0 and kept == 0, f"no draft model, yet {drafted} drafts counted")

summarize()
