#!/usr/bin/env bash
# Portability check: compiles the layers that hold the compute core (base, tensor, ops, autograd,
# model) for aarch64 with Debian's cross compiler, so no x86-only code slips in outside the
# per-instruction-set kernel files. Compiles only (no aarch64 libraries are needed); skips with a
# reason when the cross compiler is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
cxx=aarch64-linux-gnu-g++
if ! command -v "$cxx" >/dev/null; then
  echo "check-aarch64: skipped ($cxx not installed; it comes with Debian's g++-aarch64-linux-gnu)"
  exit 0
fi
inc=$(mktemp -d)
trap 'rm -rf "$inc"' EXIT
# OpenBLAS's cblas.h is architecture-neutral; Debian installs it under the host's triplet.
cp /usr/include/x86_64-linux-gnu/cblas*.h /usr/include/x86_64-linux-gnu/openblas_config.h "$inc"/ 2>/dev/null || true
srcs=(src/yak/base/*.cpp src/yak/tensor/*.cpp src/yak/ops/*.cpp src/yak/ops/cpu/*.cpp src/yak/autograd/*.cpp
      src/yak/model/*.cpp)
fail=0
for f in "${srcs[@]}"; do
  if ! "$cxx" -std=c++20 -O1 -Wall -Wextra -Wno-unused-parameter -Werror -Isrc -I"$inc" -DYAK_SOURCE_DIR='"."' \
      -c "$f" -o "$inc/out.o"; then
    echo "check-aarch64: $f does not compile for aarch64"
    fail=1
  fi
done
[[ $fail -eq 0 ]] && echo "check-aarch64: ${#srcs[@]} files of base, tensor, ops, autograd and model compile for aarch64"
exit $fail
