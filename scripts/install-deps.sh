#!/usr/bin/env bash
# Installs the Debian packages yak builds and tests with. Safe to run again.
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
      libopenblas-dev libsentencepiece-dev nlohmann-json3-dev libcli11-dev libpcre2-dev libutf8proc-dev zlib1g-dev libjpeg-dev
      libcpp-httplib-dev libsqlite3-dev libyaml-cpp-dev libmariadb-dev
      libgtest-dev libgmock-dev libbenchmark-dev g++-aarch64-linux-gnu python3-venv python3-jieba
      libopenmpi-dev openmpi-bin
      chromium chromium-driver)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi
