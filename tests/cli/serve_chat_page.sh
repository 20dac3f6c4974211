#!/usr/bin/env bash
# yak serve's chat page (GET /) in a real browser: tests/serve/chat_page_test.py drives Debian's
# headless chromium through chromedriver with Selenium (installed from PyPI into the venv beside
# the build), against the golden chat model behind an API key and a model slow enough to stop
# mid-reply. SIGTERM stops both servers cleanly (exit 0). Installs chromium and chromium-driver
# with apt-get when they are missing; skips (77) only when they or selenium cannot be installed.
# Extra arguments go to the test (--screenshot PNG).
set -u
yak=$1 golden=$2
shift 2
here=$(cd "$(dirname "$0")/.." && pwd)
m=$golden/models/qwen2_chat
venv=$(dirname "$yak")/../openai-venv
fails=0
tmp=$(mktemp -d)
chat= slow=
trap '[[ -n $chat ]] && kill $chat 2>/dev/null; [[ -n $slow ]] && kill $slow 2>/dev/null; rm -rf "$tmp"' EXIT
bad() { echo "FAIL $1"; fails=$((fails + 1)); }

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  sudo=
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "SKIP: chromium/chromedriver missing, and no root or sudo to install them"; exit 77; }
    sudo="sudo -n"
  fi
  echo "installing chromium chromium-driver"
  { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver; } \
    >"$tmp/apt.log" 2>&1
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    echo "SKIP: chromium and chromium-driver could not be installed: $(tail -3 "$tmp/apt.log")"
    exit 77
  fi
fi

source "$(dirname "$0")/lib/serve.sh"
need_venv "$venv" "import selenium" selenium
start() { serve_start "$@"; }
stop() { serve_stop "$@"; }

# A model slow enough that a long reply streams for many seconds (the tokenizer folder brings the
# chat template along).
init_qwen2 "$tmp/slow" "$m" 3 384 1024 6 6 2 4096 || bad "model init"

if start chat -m "$m" --api-key sk-chat-page --parallel 2; then
  chat=$pid chat_url=$url
  if start slow -m "$tmp/slow" --parallel 1 --ctx-size 4096; then
    slow=$pid slow_url=$url
    "$venv/bin/python" "$here/serve/chat_page_test.py" "$chat_url" sk-chat-page "$slow_url" "$@" ||
      bad "chat page checks"
    stop "$slow" slow
    slow=
  fi
  stop "$chat" chat
  chat=
fi

[[ $fails -eq 0 ]] && echo "serve_chat_page: all checks passed" || exit 1
