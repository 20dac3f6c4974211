#!/usr/bin/env bash
# The whole test suite: install, build, run every test in parallel, compile the compute core for
# aarch64 (portability), then run each fuzzer briefly.
# Tests that need ../shared/data skip with a printed reason when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
jobs=$(nproc)
ctest --test-dir build --output-on-failure -j"$jobs" --timeout 900
bash scripts/check-aarch64.sh
bash scripts/fuzz.sh "${YAK_FUZZ_SECONDS:-20}"
