#!/usr/bin/env bash
# Load test of `yak serve` beside llama.cpp's llama-server on the same machine, model and threads
# (bench/serve_load.py: 1, 4, 16 and 64 streaming clients with mixed prompt lengths, then time to
# first token with a shared ~1k-token system prompt). Loopback only, bounded in count.
#
#   bash scripts/bench-serve.sh        # LEVELS=1,4,16,64 by default
#
# The bench model is the random Qwen2.5-0.5B-shaped bf16 model of bench_engine with the Qwen2
# tokenizer from ../shared/data/tokenizers/qwen2 (skipped with a reason when absent); llama-server
# gets the same weights as a bf16 GGUF written by `yak convert`. llama.cpp's source and build live
# in $YAK_PEERS_DIR (default ~/.cache/yak-peers), as for scripts/bench-peers.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
peers=${YAK_PEERS_DIR:-$HOME/.cache/yak-peers}
levels=${LEVELS:-1,4,16,64}
threads=$(nproc)
llama_version=0.3.36
tok=$root/../shared/data/tokenizers/qwen2
if [[ ! -d $tok ]]; then
  echo "bench-serve: skipped (the bench model needs the Qwen2 tokenizer in ../shared/data/tokenizers/qwen2)"
  exit 0
fi
mkdir -p "$peers"
bash scripts/build.sh >/dev/null
model=$peers/models/qwen05b
build/bin/bench_engine --write-model "$model" >/dev/null
for f in "$tok"/*; do [[ -e $model/$(basename "$f") ]] || install -m 644 "$f" "$model/"; done
py=$peers/venv/bin/python
[[ -x $py ]] || python3 -m venv "$peers/venv"
if [[ ! -f $model/tokenizer.json ]]; then  # yak convert writes the vocabulary from tokenizer.json
  "$py" -c "import transformers" 2>/dev/null || "$py" -m pip install -q transformers
  "$py" -c "import sys; from transformers import AutoTokenizer; AutoTokenizer.from_pretrained(sys.argv[1]).save_pretrained(sys.argv[2])" \
    "$tok" "$model/hf-tokenizer" 2>/dev/null
  cp "$model/hf-tokenizer/tokenizer.json" "$model/"
fi
gguf=$peers/models/qwen05b-bf16.gguf
[[ -f $gguf ]] || build/bin/yak convert -m "$model" --out "$gguf" --type bf16 >/dev/null

results=$peers/serve-results.jsonl
: >"$results"
port=18231
wait_health() {
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}
run_load() {  # name pid
  wait_health || { echo "bench-serve: $1 did not come up"; return 1; }
  python3 bench/serve_load.py --url "http://127.0.0.1:$port" --pid "$2" --name "$1" --levels "$levels" | tee -a "$results"
  kill -TERM "$2"
  wait "$2" || true
}

# yak at its default f32-accurate precision, then at bf16 numerics (--matmul-precision medium),
# which is what llama.cpp computes with bf16 weights.
for prec in high medium; do
  echo "bench-serve: yak serve ($threads threads, --matmul-precision $prec)"
  build/bin/yak serve -m "$model" --port $port --parallel 16 --ctx-size 2048 -t "$threads" --matmul-precision $prec \
    >"$peers/yak-serve.log" 2>&1 &
  run_load "yak ($prec)" $!
done

src=$peers/llama_cpp_python-$llama_version/vendor/llama.cpp
if [[ ! -d $src ]]; then
  (cd "$peers" && "$py" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$llama_version" -d . &&
    tar xzf "llama_cpp_python-$llama_version.tar.gz")
fi
if [[ ! -x $src/build/bin/llama-server ]]; then
  echo "bench-serve: building llama-server"
  cmake -S "$src" -B "$src/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DGGML_NATIVE=OFF \
    -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON \
    -DGGML_AVX512_BF16=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON >/dev/null
  cmake --build "$src/build" -j"$(nproc)" --target llama-server >/dev/null
fi
echo "bench-serve: llama-server ($threads threads)"
"$src/build/bin/llama-server" -m "$gguf" --host 127.0.0.1 --port $port -np 16 -c $((16 * 2048)) -t "$threads" \
  -tb "$threads" >"$peers/llama-server.log" 2>&1 &
run_load llama-server $!
python3 bench/peers/serve_report.py "$results"
