#!/usr/bin/env bash
# OpenRLHF's example launch scripts run unchanged through yak (their flags, flat and dotted; only
# model names, dataset names, paths and sizes replaced by tiny local ones): every training
# command whose entry point yak has trains for a step and writes its model, the reward server
# starts, and what yak refuses on purpose fails with a clear message
# (tests/cli/openrlhf/run_scripts.py; the scripts are read from ../shared/data, never copied).
set -u
yak=$1 golden=$2
scripts=$(cd "$(dirname "$0")/../.." && pwd)/../shared/data/openrlhf-scripts
if [[ ! -d $scripts ]]; then
  echo "openrlhf_scripts: skipped: ../shared/data/openrlhf-scripts is absent"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 "$(dirname "$0")/openrlhf/run_scripts.py" "$yak" "$golden" "$scripts" "$tmp"
