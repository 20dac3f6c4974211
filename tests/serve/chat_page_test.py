"""yak serve's chat page (GET /) in a real headless browser: Selenium drives Debian's chromium
through chromedriver.

Usage: chat_page_test.py CHAT_URL API_KEY SLOW_URL [--screenshot PNG]
  CHAT_URL  the /v1 base of a server behind --api-key API_KEY (the golden chat model)
  SLOW_URL  the /v1 base of a server without a key whose model is slow enough to stop mid-reply

Checks: the page is served without the key; a send without the key shows the API's error and
gives the message back; with the key, streamed replies at temperature 0 equal the API's
non-streaming reply to the same messages (system prompt and history included) and settings;
tokens/s is shown; markup typed by the user or sent by the model (a stubbed fetch stands in for the
server there) is shown as text, Markdown becomes elements and only http(s) links are links;
conversations can be made, switched, deleted, and survive a reload; Stop ends a streaming reply,
the page takes the next message, and the server counts the request as cancelled.
Prints FAIL lines; exits 1 on any."""
import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

ap = argparse.ArgumentParser()
ap.add_argument("chat_url")
ap.add_argument("key")
ap.add_argument("slow_url")
ap.add_argument("--screenshot", help="save a PNG of a finished conversation here")
args = ap.parse_args()
chat_root = args.chat_url[: -len("/v1")]
slow_root = args.slow_url[: -len("/v1")]
WAIT = 60  # seconds: generous, for a loaded machine

fails = []


def check(cond, what):
    if not cond:
        fails.append(what)
        print("FAIL", what, flush=True)
    return cond


def http(root, method, path, body=None, key=None):
    h = {"Content-Type": "application/json"}
    if key:
        h["Authorization"] = "Bearer " + key
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(root + path, data=data, headers=h, method=method)
    try:
        with urllib.request.urlopen(req, timeout=WAIT) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


def api_reply(messages, **sampling):
    """The reply the API gives, not streamed, to the request the page makes."""
    body = {"model": "qwen2_chat", "messages": messages, **sampling}
    status, _, data = http(chat_root, "POST", "/v1/chat/completions", body, args.key)
    check(status == 200, f"API reply: HTTP {status} {data[:200]!r}")
    j = json.loads(data)
    return j["choices"][0]["message"]["content"], j["usage"]["completion_tokens"]


def metric(root, line_start):
    _, _, data = http(root, "GET", "/metrics")
    for line in data.decode().splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    return None


# ---- The browser ----------------------------------------------------------------------------

os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager downloads nothing: Debian's binaries
profile = tempfile.mkdtemp(prefix="yak-chat-page-")
opts = Options()
opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run",
          "--window-size=1280,800", "--force-device-scale-factor=1", "--hide-scrollbars",
          f"--user-data-dir={profile}"):
    opts.add_argument(a)
driver = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver"),
                          options=opts)
driver.set_page_load_timeout(WAIT)
driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                       {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False})


def wait(cond, what, timeout=WAIT):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: cond())
    except TimeoutException:
        check(False, f"timed out ({timeout} s) waiting for {what}")
        return None


def js(script, *a):
    return driver.execute_script(script, *a)


def q(css):
    return driver.find_elements(By.CSS_SELECTOR, css)


def by_id(i):
    return driver.find_element(By.ID, i)


def set_field(i, value):
    e = by_id(i)
    e.clear()
    if value != "":
        e.send_keys(value)
    e.send_keys(Keys.TAB)  # 'change' fires on leaving the field


def stored():
    return js("return JSON.parse(localStorage.getItem('yak.chat.conversations') || '[]')")


def current_conv():
    cur = js("return JSON.parse(localStorage.getItem('yak.chat.current') || 'null')")
    return next((c for c in stored() if c["id"] == cur), None)


def idle():
    """The page has no reply in flight: Send enabled, Stop disabled, nothing streaming."""
    return by_id("send").is_enabled() and not by_id("stop").is_enabled() and not q(".msg.streaming")


def send(text):
    p = by_id("prompt")
    p.clear()
    p.send_keys(text)
    by_id("send").click()


def send_and_wait(text, what):
    n = len(q(".msg.assistant"))
    send(text)
    wait(lambda: len(q(".msg.assistant")) == n + 1 and idle(), what)


def text_of(el):
    return js("return arguments[0].textContent", el)


def loose(s):
    """Text without whitespace or Markdown syntax, to compare a rendering with its source."""
    s = re.sub(r"(?m)^\s*\d{1,9}[.)]\s", "", s)
    return re.sub(r"[\s*_`~#>+\-\[\]()\\|]", "", s)


def error_text():
    e = by_id("error")
    return by_id("error-text").text if e.is_displayed() else ""


# ---- The golden chat model, behind an API key -------------------------------------------------

status, ctype, page = http(chat_root, "GET", "/")
check(status == 200 and ctype.startswith("text/html") and b"<title>yak chat</title>" in page,
      f"GET / without a key: {status} {ctype}")

driver.get(chat_root + "/")
check(driver.title == "yak chat", f"title {driver.title!r}")
wait(lambda: "API key" in by_id("model").text, "the page to say the server needs an API key")

SYSTEM = "You are a concise assistant. Answer in short sentences."
SAMPLING = {"temperature": 0, "seed": 7, "max_tokens": 24}
set_field("temperature", "0")
set_field("seed", "7")
set_field("max-tokens", "24")
set_field("system", SYSTEM)

# Without the key: the API's 401 message, and the message given back to send again.
first = "Hello! What can you do?"
send(first)
wait(lambda: error_text() != "" and idle(), "the missing key's error")
check("API key" in error_text() and "401" in error_text(), f"error shown: {error_text()!r}")
check(by_id("prompt").get_attribute("value") == first, "the unsent message is back in the prompt box")
check(not q(".msg"), "no message is left from the failed send")

set_field("api-key", args.key)
wait(lambda: by_id("model").text == "qwen2_chat", "the model's name once the key is set")
by_id("send").click()
wait(lambda: len(q(".msg.assistant")) == 1 and idle(), "the first reply")
check(not by_id("error").is_displayed(), "the error is cleared by a successful send")

msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": first}]
want, want_tokens = api_reply(msgs, **SAMPLING)
conv = current_conv()
got = conv["messages"][-1]["content"] if conv else None
check(got == want, f"streamed reply {got!r} != the API's {want!r}")
check(conv and conv["system"] == SYSTEM, "the conversation keeps its system prompt")
shown = text_of(q(".msg.assistant .body")[-1])
check(loose(shown) == loose(want), f"the reply shown {shown!r} is not the reply {want!r}")
tps = by_id("tps").text
m = re.fullmatch(r"(\d+) tokens in [\d.]+ s · ([\d.]+) tokens/s", tps)
check(m is not None and int(m.group(1)) == want_tokens and float(m.group(2)) > 0,
      f"tokens/s after the reply: {tps!r} (want {want_tokens} tokens)")
check(re.search(r"[\d.]+ tokens/s", q(".msg.assistant .meta")[-1].text), "the reply's own tokens/s")

# A second turn: the history goes with it.
second = "Thanks. Now show me a code example."
send_and_wait(second, "the second reply")
msgs += [{"role": "assistant", "content": want}, {"role": "user", "content": second}]
want2, _ = api_reply(msgs, **SAMPLING)
conv = current_conv()
got2 = conv["messages"][-1]["content"] if conv else None
check(got2 == want2, f"second streamed reply {got2!r} != the API's {want2!r}")
check([x["role"] for x in conv["messages"]] == ["user", "assistant", "user", "assistant"], "two turns stored")
check(len(q(".msg.user")) == 2 and len(q(".msg.assistant")) == 2, "two turns shown")
check(len(q(".msg .meta .copy")) == 4, "a copy button on every message")
main_id = conv["id"]

# A new conversation; markup typed by the user is shown as text.
by_id("new-chat").click()
wait(lambda: len(q("#conversations li")) == 2 and not q(".msg"), "a new, empty conversation")
check(by_id("system").get_attribute("value") == SYSTEM, "a new conversation starts with the system prompt")
evil = 'Is this safe? <script>window.__pwned=1</script> <img src=x onerror="window.__pwned=1"> <b>bold?</b>'
send_and_wait(evil, "the reply to a message with markup")
check(text_of(q(".msg.user .body")[-1]) == evil, "the user's markup is shown as literal text")

# Markup and Markdown from the model's side: a stubbed fetch plays the server, streaming SSE in
# small pieces (cut anywhere, mid-line and mid-character) with a usage chunk at the end.
reply = ("Here is **bold**, *italic*, _also italic_ and `inline <code>`.\n\n"
         "```python\nprint('<script>window.__pwned=1</script>')\n```\n\n"
         "- one\n- two with [a link](https://example.com/docs)\n\n"
         '1. first\n2. second\n\n<script>window.__pwned=1</script> <img src=x onerror="window.__pwned=1"> '
         "[bad](javascript:window.__pwned=1) <a href=\"javascript:alert(1)\">x</a> see https://example.org/a. ünï😀")
pieces = ["Here is **bo", "ld**, *ita", "lic*, _also italic_ and `inline <", "code>`.\n\n``", "`python\nprint('<scr",
          "ipt>window.__pwned=1</script>')\n```\n\n- one\n- two with [a li", "nk](https://example.com/docs)\n\n1. first\n2.",
          ' second\n\n<script>window.__pwned=1</script> <img src=x onerror="window.__pwned=1"> ',
          "[bad](javascript:window.__pwned=1) <a href=\"javascript:alert(1)\">x</a> see https://example.org/a. ünï😀"]
assert "".join(pieces) == reply
sse = 'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n'
for p in pieces:
    sse += "data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]}) + "\n\n"
sse += 'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\r\n\r\n'
sse += 'data: {"choices":[],"usage":{"prompt_tokens":30,"completion_tokens":42,"total_tokens":72}}\n\n'
sse += "data: [DONE]\n\n"
raw = sse.encode()
cuts = [raw[i:i + 37] for i in range(0, len(raw), 37)]  # byte pieces: UTF-8 characters get cut too
js("""
  const cuts = arguments[0].map((p) => new Uint8Array(p));
  window.__realFetch = window.__realFetch || window.fetch;
  window.fetch = async (url, init) => {
    if (!String(url).endsWith('/v1/chat/completions')) return window.__realFetch(url, init);
    window.__sent = { body: JSON.parse(init.body), headers: init.headers };
    const stream = new ReadableStream({
      async pull(c) {
        if (!cuts.length) return c.close();
        await new Promise((r) => setTimeout(r, 5));
        c.enqueue(cuts.shift());
      },
    });
    return new Response(stream, { status: 200, headers: { 'Content-Type': 'text/event-stream' } });
  };
""", [list(c) for c in cuts])
send_and_wait("Show me some Markdown.", "the stubbed reply")
js("window.fetch = window.__realFetch;")
sent = js("return window.__sent")
body = q(".msg.assistant .body")[-1]
conv = current_conv()
check(conv and conv["messages"][-1]["content"] == reply, "the stubbed reply is stored as sent")
check(sent and sent["body"].get("stream") is True and sent["body"].get("stream_options") == {"include_usage": True},
      f"the page streams with usage: {sent and sent['body']}")
check(sent and all(sent["body"].get(k) == v for k, v in SAMPLING.items()), "the page sends the settings")
check(sent and sent["body"]["messages"][0] == {"role": "system", "content": SYSTEM}, "the page sends the system prompt")
check(sent and sent["body"]["messages"][2] == {"role": "assistant", "content": conv["messages"][1]["content"]},
      "the page sends the history")
check(sent and sent["headers"].get("Authorization") == "Bearer " + args.key, "the page sends the API key")
shown = text_of(body)
check("<script>window.__pwned=1</script>" in shown and '<img src=x onerror="window.__pwned=1">' in shown
      and "<a href=\"javascript:alert(1)\">x</a>" in shown, f"the model's markup is shown as literal text: {shown!r}")
check("ünï😀" in shown, "characters cut between network pieces come through whole")
check(not q("#messages script, #messages img, #messages iframe, #messages b"), "no element made from markup")
check([e.text for e in body.find_elements(By.CSS_SELECTOR, "strong")] == ["bold"], "**bold**")
check([e.text for e in body.find_elements(By.CSS_SELECTOR, "em")] == ["italic", "also italic"], "*italic*, _italic_")
check([text_of(e) for e in body.find_elements(By.CSS_SELECTOR, "p > code")] == ["inline <code>"], "inline code")
code = body.find_elements(By.CSS_SELECTOR, ".code-block pre code")
check(len(code) == 1 and text_of(code[0]) == "print('<script>window.__pwned=1</script>')"
      and code[0].get_attribute("data-lang") == "python", "the fenced code block")
check([e.text for e in body.find_elements(By.CSS_SELECTOR, "ul > li")] == ["one", "two with a link"], "the list")
check([e.text for e in body.find_elements(By.CSS_SELECTOR, "ol > li")] == ["first", "second"], "the numbered list")
links = [e.get_attribute("href") for e in body.find_elements(By.CSS_SELECTOR, "a")]
check(links == ["https://example.com/docs", "https://example.org/a"], f"only http(s) links are links: {links}")
check(by_id("tps").text.startswith("42 tokens in "), f"tokens/s from the usage chunk: {by_id('tps').text!r}")
time.sleep(0.3)  # an <img onerror> or a script, had one been made, would have run by now
check(js("return typeof window.__pwned") == "undefined", "window.__pwned stays undefined")
copy = q(".msg .meta .copy")[-1]
check(copy.text == "Copy", "the copy button")
copy.click()
wait(lambda: copy.text in ("Copied", "Copy failed"), "the copy button's answer", 10)
check(copy.text == "Copied", f"copy: {copy.text!r}")

# Switching, reloading, deleting.
titles = [e.text for e in q("#conversations .conv-title")]
check(titles == [evil[:47] + "…", first], f"conversation titles, newest first: {titles}")
q("#conversations .conv-title")[1].click()
wait(lambda: len(q(".msg")) == 4, "the first conversation again")
check(by_id("system").get_attribute("value") == SYSTEM, "its system prompt")
check(text_of(q(".msg.assistant .body")[0]) and by_id("title").text == first, "its title")
before = stored()
driver.refresh()
wait(lambda: len(q("#conversations li")) == 2 and len(q(".msg")) == 4, "the conversations after a reload")
check(stored() == before, "localStorage holds the same conversations after the reload")
check(current_conv()["id"] == main_id and q("#conversations li.active .conv-title")[0].text == first,
      "the current conversation survives the reload")
check(by_id("api-key").get_attribute("value") == args.key and by_id("temperature").get_attribute("value") == "0"
      and by_id("seed").get_attribute("value") == "7", "settings survive the reload")
check(loose(text_of(q(".msg.assistant .body")[1])) == loose(want2), "the replies are shown again after the reload")
check(re.search(r"[\d.]+ tokens/s", by_id("tps").text), f"the last reply's tokens/s after the reload: {by_id('tps').text!r}")
wait(lambda: by_id("model").text == "qwen2_chat", "the model's name after the reload")

q("#conversations .conv-title")[0].click()
wait(lambda: len(q(".msg")) == 4 and q(".msg.user .body")[0].text == evil, "the other conversation")
q("#conversations li.active .conv-delete")[0].click()
wait(lambda: len(q("#conversations li")) == 1, "the deleted conversation to go")
check(current_conv() and current_conv()["id"] == main_id and len(q(".msg")) == 4, "the one left is shown")
driver.refresh()
wait(lambda: len(q("#conversations li")) == 1 and len(q(".msg")) == 4, "one conversation after a reload")
check(len(stored()) == 1, "the deletion is stored")

if args.screenshot:
    wait(lambda: by_id("model").text == "qwen2_chat", "the model's name")
    js("document.getElementById('prompt').blur(); document.getElementById('messages').scrollTop = 0;")
    by_id("prompt").send_keys("What is a yak?")
    driver.save_screenshot(args.screenshot)
    by_id("prompt").clear()

# ---- The slow model: Stop ---------------------------------------------------------------------

driver.get(slow_root + "/")
wait(lambda: by_id("model").text != "", "the slow model's name")
set_field("temperature", "0")
set_field("max-tokens", "3000")
cancelled = metric(slow_root, 'yak_requests_total{outcome="cancelled"}')
check(cancelled == 0, f"cancelled requests before Stop: {cancelled}")
send("Tell me a very long story.")


def streamed():
    b = q(".msg.assistant .body")
    return text_of(b[-1]) if b else ""


wait(lambda: by_id("stop").is_enabled() and len(streamed()) >= 20, "the slow reply to start streaming")
check(q(".msg.assistant.streaming"), "the reply is marked as streaming")
by_id("stop").click()
wait(idle, "the page to be ready after Stop", 15)
content = current_conv()["messages"][-1]["content"]
shown = streamed()
time.sleep(1.0)  # had the reply gone on, a model at hundreds of tokens/s would show it by now
check(len(content) >= 20 and current_conv()["messages"][-1]["content"] == content and streamed() == shown,
      "the reply stops growing after Stop")
check(current_conv()["messages"][-1].get("stopped") is True and "stopped" in q(".msg.assistant .meta")[-1].text,
      "the reply is marked as stopped")
check(by_id("tps").text == "Stopped.", f"status after Stop: {by_id('tps').text!r}")
deadline = time.time() + WAIT
while time.time() < deadline and (metric(slow_root, 'yak_requests_total{outcome="cancelled"}') or 0) < 1:
    time.sleep(0.1)
check(metric(slow_root, 'yak_requests_total{outcome="cancelled"}') == 1, "the server counts the request as cancelled")
check(metric(slow_root, "yak_running_requests") == 0, "the server's slot is free again")

# The next message goes through.
set_field("max-tokens", "8")
send_and_wait("Thanks, that is enough.", "the reply after Stop")
conv = current_conv()
check([x["role"] for x in conv["messages"]] == ["user", "assistant", "user", "assistant"], "the turn after Stop")
check(re.fullmatch(r"8 tokens in [\d.]+ s · [\d.]+ tokens/s", by_id("tps").text), f"tps: {by_id('tps').text!r}")
check(metric(slow_root, 'yak_requests_total{outcome="finished"}') == 1, "the next request finishes")

driver.quit()
shutil.rmtree(profile, ignore_errors=True)
if fails:
    sys.exit(1)
print("chat page: all checks passed")
