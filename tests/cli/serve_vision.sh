#!/usr/bin/env bash
# yak serve with a vision-language model (the tiny random Qwen3-VL of tools/golden/make_vl_goldens.py)
# against the official `openai` package: tests/serve/vision_client.py sends pictures as data: URLs
# and as files under --allowed-local-media-path and compares the replies with `yak generate`;
# a text model refuses pictures. Skips (77) only when the package cannot be installed.
set -u
yak=$1 golden=$2
here=$(cd "$(dirname "$0")/.." && pwd)
m=$golden/vision/qwen3_vl
venv=$(dirname "$yak")/../openai-venv
fails=0
tmp=$(mktemp -d)
srv=
trap '[[ -n $srv ]] && kill $srv 2>/dev/null; rm -rf "$tmp"' EXIT
bad() { echo "FAIL $1"; fails=$((fails + 1)); }

source "$(dirname "$0")/lib/serve.sh"
need_venv "$venv" "import openai, jsonschema" openai jsonschema

mkdir -p "$tmp/media"
if serve_start srv -m "$m" --api-key sk-vl --parallel 3 -t 1 --allowed-local-media-path "$tmp/media"; then
  srv=$pid
  grep -q "sees images (data: URLs, and files under" "$tmp/srv.txt" || bad "the server does not say it sees images"
  "$venv/bin/python" "$here/serve/vision_client.py" "$yak" "$m" "$golden/vision/images" "$url" "$tmp/media" ||
    bad "openai client checks with pictures"
  serve_stop "$srv" srv
  srv=
fi

# A text model refuses pictures with a 400 naming the part.
if serve_start txt -m "$golden/models/qwen2_chat" -t 1; then
  srv=$pid
  out=$("$venv/bin/python" - "$url" "$golden/vision/images/rgb_45x70.png" <<'PY'
import base64, json, sys, urllib.error, urllib.request
url = "data:image/png;base64," + base64.b64encode(open(sys.argv[2], "rb").read()).decode()
body = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]}
req = urllib.request.Request(sys.argv[1] + "/chat/completions", data=json.dumps(body).encode(),
                             headers={"Content-Type": "application/json"})
try:
    urllib.request.urlopen(req, timeout=60)
    print("accepted")
except urllib.error.HTTPError as e:
    err = json.loads(e.read())["error"]
    print(e.code, err["param"], err["message"])
PY
)
  [[ $out == "400 messages[0].content[0] "*"cannot see images"* ]] || bad "a text model and a picture: $out"
  serve_stop "$srv" txt
  srv=
fi
# The media folder must exist.
timeout 60 "$yak" serve -m "$m" --port 0 --allowed-local-media-path "$tmp/none" >"$tmp/d.out" 2>"$tmp/d.err"
rc=$?
[[ $rc -eq 2 ]] && grep -q "not a folder" "$tmp/d.err" || bad "a missing media folder: exit $rc, $(cat "$tmp/d.err")"

[[ $fails -eq 0 ]] && echo "serve_vision: all checks passed" || exit 1
