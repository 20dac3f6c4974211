"""yak serve with a vision-language model, driven by the official `openai` package: pictures as
data: URLs (one, two, streamed), a follow-up turn that takes the cached pages of the same
pictures but not those of another picture of the same size, files under the media folder, and
400s for what the server must refuse. Replies at temperature 0 are compared byte for byte with
`yak generate` on the same messages (whose tokens tests/cli/vision.sh checks against
transformers). Prints FAIL lines; exits 1 on any."""
import base64
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib

import openai
from checks import check, fails, summarize  # noqa: F401

yak, model, images, base, media = sys.argv[1:6]
images, media = os.path.abspath(images), os.path.abspath(media)


client = openai.OpenAI(base_url=base, api_key="sk-vl", max_retries=0, timeout=120)
name = client.models.list().data[0].id
tmp = tempfile.mkdtemp()


def data_url(path):
    with open(path, "rb") as f:
        return "data:image/png;base64," + base64.b64encode(f.read()).decode()


def image_part(url):
    return {"type": "image_url", "image_url": {"url": url}}


def generate(messages, n):
    """`yak generate --messages` on the same conversation: the streamed text's bytes."""
    path = os.path.join(tmp, "messages.json")
    with open(path, "w") as f:
        json.dump(messages, f)
    out = subprocess.run([yak, "generate", "-m", model, "--messages", path, "--temperature", "0", "--ignore-eos",
                          "-n", str(n), "-t", "1"], capture_output=True, check=True)
    return out.stdout[:-1]  # the text, then one newline


def token_bytes(logprobs):
    return b"".join(bytes(t.bytes) for t in logprobs.content)


def chat(messages, n=12, **kw):
    return client.chat.completions.create(model=name, messages=messages, max_tokens=n, temperature=0,
                                          logprobs=True, extra_body={"ignore_eos": True}, **kw)


def png(path, w, h, seed):
    """An RGB PNG written here (zlib, no filter): pixels nobody else has."""
    rows = b"".join(b"\0" + bytes((x * 7 + y * 13 + seed * c) % 256 for x in range(w) for c in range(3))
                    for y in range(h))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


one = os.path.join(images, "rgb_45x70.png")
a, b = os.path.join(images, "rgba_30x22.png"), os.path.join(images, "rgb_96x64.png")

# One picture.
msgs = [{"role": "user", "content": [image_part(data_url(one)), {"type": "text", "text": "Describe the picture."}]}]
r = chat(msgs)
want = generate(msgs, 12)
check(token_bytes(r.choices[0].logprobs) == want, f"one picture: {token_bytes(r.choices[0].logprobs)!r} != {want!r}")
check(r.usage.completion_tokens == 12, f"usage: {r.usage}")

# Two pictures, streamed: the deltas add up to generate's text.
msgs2 = [{"role": "user", "content": [image_part(data_url(a)), image_part(data_url(b)),
                                      {"type": "text", "text": "Compare the two pictures."}]}]
whole = chat(msgs2)
want2 = generate(msgs2, 12)
check(token_bytes(whole.choices[0].logprobs) == want2, "two pictures")
parts = []
for ch in client.chat.completions.create(model=name, messages=msgs2, max_tokens=12, temperature=0, stream=True,
                                         extra_body={"ignore_eos": True}):
    for c in ch.choices:
        parts.append(c.delta.content or "")
check("".join(parts) == whole.choices[0].message.content, "streamed == whole reply with pictures")
with open(os.path.join(model, "golden.json")) as f:
    ids = json.load(f)["end_to_end"][1]["prompt_ids"]  # transformers' processor
check(whole.usage.prompt_tokens == len(ids), f"two pictures' prompt: {whole.usage.prompt_tokens} tokens, not {len(ids)}")

# A follow-up turn with the same pictures takes their cached page; another picture of the same
# size (the same tokens) does not, and gets its own reply.
follow = msgs2 + [{"role": "assistant", "content": whole.choices[0].message.content},
                  {"role": "user", "content": "Which one is brighter?"}]
second = chat(follow, 8)
check(token_bytes(second.choices[0].logprobs) == generate(follow, 8), "follow-up turn")
cached = second.usage.prompt_tokens_details.cached_tokens
check(cached == 64, f"the follow-up takes the page with both pictures from the cache: {cached}")
png(os.path.join(tmp, "other.png"), 30, 22, 3)
other = json.loads(json.dumps(follow))
other[0]["content"][0] = image_part(data_url(os.path.join(tmp, "other.png")))
third = chat(other, 8)
check(third.usage.prompt_tokens == second.usage.prompt_tokens, "another picture of the same size: the same tokens")
check(third.usage.prompt_tokens_details.cached_tokens == 0,
      f"another picture takes no cached page: {third.usage.prompt_tokens_details.cached_tokens}")
check(token_bytes(third.choices[0].logprobs) == generate(other, 8), "another picture: generate's reply")

# Files under the media folder: a relative path and a file:// URL; nothing outside it.
png(os.path.join(media, "inside.png"), 40, 28, 9)
for url in ["inside.png", "file://" + os.path.join(media, "inside.png")]:
    m = [{"role": "user", "content": [image_part(url), {"type": "text", "text": "Describe the picture."}]}]
    r = chat(m, 6)
    local = [{"role": "user", "content": [image_part(os.path.join(media, "inside.png")),
                                          {"type": "text", "text": "Describe the picture."}]}]
    check(token_bytes(r.choices[0].logprobs) == generate(local, 6), f"media file {url}")
os.symlink(one, os.path.join(media, "link.png"))


def refused(content, want, param=None):
    try:
        client.chat.completions.create(model=name, messages=[{"role": "user", "content": content}], max_tokens=2)
        check(False, f"{want}: accepted")
    except openai.BadRequestError as e:
        body = e.body if isinstance(e.body, dict) else {}
        check(want in str(body.get("message", "")), f"{want}: {body}")
        if param:
            check(body.get("param") == param, f"{want}: param {body.get('param')}")


text = {"type": "text", "text": "hi"}
refused([image_part("../" + os.path.basename(one)), text], "outside the server's media folder", "messages[0].content[0]")
refused([text, image_part("link.png")], "outside the server's media folder", "messages[0].content[1]")
refused([image_part(os.path.join(images, "rgb_45x70.png")), text], "outside the server's media folder")
refused([image_part("https://example.com/cat.png"), text], "not fetched over the network", "messages[0].content[0]")
refused([image_part("data:image/png;base64,@@@"), text], "invalid base64", "messages[0].content[0]")
refused([text, image_part("data:image/png;base64," + base64.b64encode(b"not a picture").decode())],
        "messages[0].content[1]: not an image this build reads")
refused([image_part("missing.png"), text], "cannot open the image")

summarize()
