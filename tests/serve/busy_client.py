"""Against `yak serve --parallel 1 --queue 1`: while one request streams, a second waits and a
third is refused with 503 and Retry-After; a streaming client that goes away is cancelled (its
slot serves the next request at once)."""
import json
import re
import sys
import threading
import time
import urllib.error
import urllib.request

import openai
from checks import check, fails, summarize  # noqa: F401

base = sys.argv[1]
root = base[: -len("/v1")]


client = openai.OpenAI(base_url=base, api_key="none", max_retries=0, timeout=120)
long = dict(model="m", prompt="The yak", max_tokens=2000, temperature=0, extra_body={"ignore_eos": True})

# A stream that is dropped after two chunks.
stream = client.completions.create(**long, stream=True)
it = iter(stream)
next(it), next(it)
# While it runs, a second request queues and a third is refused.
results = {}


def second():
    results["second"] = client.completions.create(model="m", prompt="a", max_tokens=3, temperature=0)


t = threading.Thread(target=second)
t.start()
time.sleep(0.05)
req = urllib.request.Request(root + "/v1/completions", json.dumps({"prompt": "b", "max_tokens": 3}).encode(),
                             {"Content-Type": "application/json"})
try:
    urllib.request.urlopen(req, timeout=60)
    check(False, "a third request is refused while one runs and one waits")
except urllib.error.HTTPError as e:
    body = json.loads(e.read())
    check(e.code == 503 and e.headers.get("Retry-After") == "1", f"503 with Retry-After: {e.code} {e.headers}")
    check(body["error"]["type"] == "server_overloaded", f"503 body {body}")
stream.close()  # the client goes away mid-stream
t.join(60)
check("second" in results and results["second"].choices[0].finish_reason == "length", "the waiting request ran")
deadline = time.time() + 30
cancelled = 0
while time.time() < deadline:
    text = urllib.request.urlopen(root + "/metrics", timeout=30).read().decode()
    cancelled = int(re.search(r'yak_requests_total\{outcome="cancelled"\} (\d+)', text).group(1))
    if cancelled:
        break
    time.sleep(0.1)
check(cancelled == 1, f"the dropped stream was cancelled: {cancelled}")
summarize()
