#!/usr/bin/env bash
# yak beside its peers on this machine, with the same weights and threads: llama.cpp (built from
# the source that the llama-cpp-python source distribution on PyPI vendors, the bench model
# converted with llama.cpp's own convert_hf_to_gguf.py) and PyTorch CPU (transformers), for
# inference on the Qwen2.5-0.5B-shaped bench model in bf16 and for training a 35.7M LLaMA.
# Prints markdown tables of the ratios (docs/PERFORMANCE.md keeps the latest).
#
#   bash scripts/bench-peers.sh            # THREADS="1 2" by default
#   BENCH_7B=1 bash scripts/bench-peers.sh # also a 7B-shaped Q4_K_M (13.5 + 4.1 GB of disk)
#
# Everything the peers need lives outside the repository in $YAK_PEERS_DIR (default
# ~/.cache/yak-peers): a Python venv with tools/golden's pinned references, llama.cpp's source
# and build, the bench model and its GGUF. llama.cpp needs a real Qwen2 tokenizer for its
# converter: ../shared/data/tokenizers/qwen2 (skipped with a reason when absent).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
peers=${YAK_PEERS_DIR:-$HOME/.cache/yak-peers}
threads=${THREADS:-"1 2"}
llama_version=0.3.36
mkdir -p "$peers"
bash scripts/build.sh >/dev/null
results=$peers/results.jsonl
: >"$results"

# Python references (torch, transformers, ...) pinned by tools/golden.
py=$peers/venv/bin/python
[[ -x $py ]] || python3 -m venv "$peers/venv"
if ! "$py" -c "import torch, transformers" 2>/dev/null; then
  echo "bench-peers: installing PyTorch and transformers into $peers/venv"
  "$py" -m pip install -q -r tools/golden/requirements.txt
fi

# The bench model (random weights, Qwen2.5-0.5B shape, bf16).
model=$peers/models/qwen05b
build/bin/bench_engine --write-model "$model"

# llama.cpp from PyPI's llama-cpp-python source distribution.
src=$peers/llama_cpp_python-$llama_version/vendor/llama.cpp
tok=$root/../shared/data/tokenizers/qwen2
gguf=$peers/models/qwen05b-bf16.gguf
if [[ ! -d $tok ]]; then
  echo "bench-peers: llama.cpp skipped (its converter needs the Qwen2 tokenizer in ../shared/data/tokenizers/qwen2)"
else
  if [[ ! -d $src ]]; then
    echo "bench-peers: fetching llama.cpp (llama-cpp-python $llama_version source distribution)"
    (cd "$peers" && "$py" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$llama_version" -d . &&
      tar xzf "llama_cpp_python-$llama_version.tar.gz")
  fi
  if [[ ! -x $src/build/bin/llama-bench || ! -x $src/build/bin/llama-quantize ]]; then
    echo "bench-peers: building llama-bench and llama-quantize"
    # The CPU's own vector extensions, but not GGML_NATIVE: its AMX int8 kernels stop with an
    # illegal instruction on machines whose OS has not granted the tile state (seen on a VM).
    isa=(-DGGML_AVX512=OFF)
    if grep -qw avx512f /proc/cpuinfo; then
      isa=(-DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON -DGGML_AVX_VNNI=ON)
    fi
    cmake -S "$src" -B "$src/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DGGML_NATIVE=OFF \
      -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON "${isa[@]}" \
      -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF \
      -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF >/dev/null
    cmake --build "$src/build" -j"$(nproc)" --target llama-bench llama-quantize >/dev/null
  fi
  "$py" -c "import gguf" 2>/dev/null || "$py" -m pip install -q -e "$src/gguf-py"
  for f in "$tok"/*; do [[ -e $model/$(basename "$f") ]] || install -m 644 "$f" "$model/"; done
  [[ -s $gguf ]] || "$py" "$src/convert_hf_to_gguf.py" "$model" --outtype bf16 --outfile "$gguf" >/dev/null 2>&1
  tl=$(echo "$threads" | tr ' ' ',')
  "$src/build/bin/llama-bench" -m "$gguf" -t "$tl" -p 512 -n 0 -r 3 -o jsonl 2>/dev/null |
    "$py" -c 'import json,sys
for l in sys.stdin:
    r=json.loads(l); print(json.dumps({"peer":"llama.cpp","threads":r["n_threads"],"test":"pp","tokens_per_s":r["avg_ts"]}))' >>"$results"
  "$src/build/bin/llama-bench" -m "$gguf" -t "$tl" -p 0 -n 128 -d 512 -r 3 -o jsonl 2>/dev/null |
    "$py" -c 'import json,sys
for l in sys.stdin:
    r=json.loads(l); print(json.dumps({"peer":"llama.cpp","threads":r["n_threads"],"test":"tg","tokens_per_s":r["avg_ts"]}))' >>"$results"
  # Quantized: the same files for both (llama-quantize from the bf16 GGUF; yak quantize writes
  # the same tensors, tests/infer_gguf_export_test.cpp).
  for q in q8_0 q4_0 q4_k_m; do
    qf=$peers/models/qwen05b-$q.gguf
    [[ -s $qf ]] || "$src/build/bin/llama-quantize" "$gguf" "$qf" "${q^^}" >/dev/null 2>&1
    for kind in pp tg; do
      if [[ $kind == pp ]]; then args=(-p 512 -n 0); else args=(-p 0 -n 128 -d 512); fi
      "$src/build/bin/llama-bench" -m "$qf" -t "$tl" "${args[@]}" -r 2 -o jsonl 2>/dev/null |
        "$py" -c 'import json,sys
for l in sys.stdin:
    r=json.loads(l); print(json.dumps({"peer":"llama.cpp","threads":r["n_threads"],"test":sys.argv[1],"weights":sys.argv[2],"tokens_per_s":r["avg_ts"]}))' "$kind" "$q" >>"$results"
    done
    for prec in high medium; do
      YAK_MATMUL_PRECISION=$prec build/bin/bench_engine --model "$qf" -t "$tl" --json |
        "$py" -c 'import json,sys
for l in sys.stdin:
    r=json.loads(l); r["weights"]=sys.argv[1]; print(json.dumps(r))' "$q" >>"$results"
    done
  done
fi

# A 7B shape (BENCH_7B=1): LLaMA-2-7B's metadata and vocabulary from llama.cpp's own vocabulary
# file, random f16 weights (13.5 GB), llama-quantize to Q4_K_M (4.1 GB); decode and prefill of both
# programs on it, and yak's peak resident memory beside the file + KV cache.
vocab7=$root/../shared/data/tokenizers/llama-cpp-vocab/ggml-vocab-llama-spm.gguf
if [[ ${BENCH_7B:-0} == 1 && -x $src/build/bin/llama-bench && -f $vocab7 ]]; then
  f16=$peers/models/llama7b-f16.gguf q7=$peers/models/llama7b-q4_k_m.gguf
  [[ -s $f16 ]] || "$py" bench/peers/write_llama7b_gguf.py "$vocab7" "$f16"
  [[ -s $q7 ]] || "$src/build/bin/llama-quantize" "$f16" "$q7" Q4_K_M >/dev/null 2>&1
  build/bin/bench_engine --model "$q7" -t "$(echo "$threads" | tr ' ' ',')" --prompt 128 --decode 32
  "$src/build/bin/llama-bench" -m "$q7" -t "$(echo "$threads" | tr ' ' ',')" -p 128 -n 0 -r 2 -o md 2>/dev/null
  "$src/build/bin/llama-bench" -m "$q7" -t "$(echo "$threads" | tr ' ' ',')" -p 0 -n 32 -d 128 -r 2 -o md 2>/dev/null
fi

# yak and PyTorch, inference and training.
build/bin/bench_engine --model "$model" -t "$(echo "$threads" | tr ' ' ',')" --json >>"$results"
YAK_MATMUL_PRECISION=medium build/bin/bench_engine --model "$model" -t "$(echo "$threads" | tr ' ' ',')" --json >>"$results"
for t in $threads; do
  "$py" bench/peers/torch_infer.py "$model" --threads "$t" >>"$results"
  build/bin/bench_train -t "$t" --steps 4 --json >>"$results"
  YAK_MATMUL_PRECISION=medium build/bin/bench_train -t "$t" --steps 4 --json >>"$results"
  "$py" bench/peers/torch_train.py --threads "$t" --steps 4 >>"$results"
  "$py" bench/peers/torch_train.py --threads "$t" --steps 4 --bf16 >>"$results"
done
"$py" bench/peers/report.py "$results"
