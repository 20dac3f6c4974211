#!/usr/bin/env bash
# Training under `mpirun -np 2` through the CLI: SFT, DPO and GRPO on two ranks give the per-step
# losses and the saved weights of one process (the same global batch); rank 0 alone prints, logs
# and saves; a killed rank ends the job and its last checkpoint resumes in one process, a
# one-process checkpoint resumes on two ranks; a bad flag fails the whole job with exit 2 and the
# failing rank's message naming it.
set -u
yak=$1 golden=$2
m=$golden/models/qwen2_chat
if ! command -v mpirun >/dev/null; then
  echo "SKIP: mpirun not found (install openmpi-bin; scripts/install-deps.sh does)"
  exit 77
fi
if [[ ! -f $(dirname "$yak")/libyak_mpi.so ]]; then
  echo "SKIP: yak was built without its MPI plugin (libopenmpi-dev was absent at configure time)"
  exit 77
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 passes=0
ok() { passes=$((passes + 1)); }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
python3 - "$tmp" <<'PY'
import json, random, sys
random.seed(0)
d = sys.argv[1]
with open(d + "/add.jsonl", "w") as f:
    for _ in range(80):
        a, b = random.randint(0, 9), random.randint(0, 9)
        f.write(json.dumps({"input": f"{a}+{b}=", "output": str(a + b)}) + "\n")
with open(d + "/long.jsonl", "w") as f:
    for _ in range(8000):
        a, b = random.randint(0, 99), random.randint(0, 99)
        f.write(json.dumps({"input": f"{a}+{b}=", "output": str(a + b)}) + "\n")
with open(d + "/prompts.jsonl", "w") as f:
    for i in range(40):
        f.write(json.dumps({"input": f"Name a word for thing {i}:"}) + "\n")
with open(d + "/pref.jsonl", "w") as f:
    for _ in range(80):
        a, b = random.randint(0, 9), random.randint(0, 9)
        f.write(json.dumps({"prompt": f"{a}+{b}=", "chosen": str(a + b), "rejected": str(a + b + 1)}) + "\n")
PY
# The worst relative gap of the per-step train losses of two metrics files, and of two saved
# safetensors files (per tensor: L2 of the difference over L2 of the first), with their bounds.
compare() {
  python3 - "$@" <<'PY'
import json, math, struct, sys
kind, a, b, bound = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
def losses(p):
    return [r["loss"] for r in map(json.loads, open(p)) if r.get("split", "train") == "train" and "loss" in r]
def tensors(p):
    raw = open(p, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    out = {}
    for name, t in head.items():
        if name == "__metadata__":
            continue
        s, e = t["data_offsets"]
        buf = raw[8 + n + s:8 + n + e]
        if t["dtype"] == "F32":
            out[name] = struct.unpack("<%df" % (len(buf) // 4), buf)
        elif t["dtype"] == "BF16":
            out[name] = [struct.unpack("<f", b"\0\0" + buf[i:i + 2])[0] for i in range(0, len(buf), 2)]
        else:
            raise SystemExit("unexpected dtype " + t["dtype"])
    return out
if kind == "loss":
    x, y = losses(a), losses(b)
    assert len(x) == len(y) and len(x) >= 4, (len(x), len(y))
    gap = max(abs(p - q) / abs(p) for p, q in zip(x, y))
else:
    x, y = tensors(a), tensors(b)
    assert x.keys() == y.keys()
    gap = 0.0
    for k in x:
        d = math.sqrt(sum((p - q) ** 2 for p, q in zip(x[k], y[k])))
        gap = max(gap, d / max(math.sqrt(sum(p * p for p in x[k])), 1e-30))
print(f"{kind} gap {gap:.3g} (bound {bound:g})")
sys.exit(0 if gap <= bound else 1)
PY
}
# 10 steps of 8 samples, as in the distributed issue's target (gaps within 1e-6 / 1e-5).
common=(--train_batch_size 8 --micro_train_batch_size 2 --learning_rate 5e-5 --max_len 32 --seed 3)

# SFT: one process and two ranks, one thread each (results today depend on the thread count at
# the rounding level: see docs/DISTRIBUTED.md).
"$yak" train sft --pretrain "$m" --dataset "$tmp/add.jsonl" --save_path "$tmp/one" "${common[@]}" \
  -t 1 >"$tmp/log1" 2>&1 || bad "sft, one process: $(tail -1 "$tmp/log1")"
mpirun -np 2 "$yak" train sft --pretrain "$m" --dataset "$tmp/add.jsonl" --save_path "$tmp/two" "${common[@]}" \
  >"$tmp/log2" 2>&1 || bad "sft, two ranks: $(tail -3 "$tmp/log2")"
compare loss "$tmp/one-metrics.jsonl" "$tmp/two-metrics.jsonl" 1e-6 && ok || bad "sft losses differ"
compare weights "$tmp/one/model.safetensors" "$tmp/two/model.safetensors" 1e-5 && ok || bad "sft weights differ"
[[ $(grep -c '^trained ' "$tmp/log2") -eq 1 && $(grep -c '^saved ' "$tmp/log2") -eq 1 ]] && ok ||
  bad "two ranks printed their summary $(grep -c '^trained ' "$tmp/log2") times"
[[ $(wc -l <"$tmp/two-metrics.jsonl") -eq $(wc -l <"$tmp/one-metrics.jsonl") ]] && ok ||
  bad "the metrics file was written by more than one rank"
[[ -s $tmp/two-loss.png ]] && ok || bad "no loss curve from rank 0"

# DPO: the same comparison (its loss gap sits at f32's floor, so 2e-6).
"$yak" train dpo --pretrain "$m" --dataset "$tmp/pref.jsonl" --save_path "$tmp/dpo1" "${common[@]}" -t 1 \
  >"$tmp/dlog1" 2>&1 || bad "dpo, one process: $(tail -1 "$tmp/dlog1")"
mpirun -np 2 "$yak" train dpo --pretrain "$m" --dataset "$tmp/pref.jsonl" --save_path "$tmp/dpo2" "${common[@]}" \
  >"$tmp/dlog2" 2>&1 || bad "dpo, two ranks: $(grep -v "^\s*$" "$tmp/dlog2" | head -20)"
compare loss "$tmp/dpo1-metrics.jsonl" "$tmp/dpo2-metrics.jsonl" 2e-6 && ok || bad "dpo losses differ"
compare weights "$tmp/dpo1/model.safetensors" "$tmp/dpo2/model.safetensors" 1e-5 && ok || bad "dpo weights differ"

# GRPO: rollouts split across the ranks; the same samples are drawn (equal mean rewards every
# step), the policy losses and the saved weights agree.
grpo=(--prompt_data "$tmp/prompts.jsonl" --input_key input --reward_fn 'format:\s*[a-mA-M][\s\S]*'
  --advantage_estimator group_norm --n_samples_per_prompt 4 --rollout_batch_size 4 --micro_rollout_batch_size 4
  --generate_max_len 3 --train_batch_size 8 --micro_train_batch_size 2 --actor_learning_rate 5e-5 --seed 3)
"$yak" train ppo --pretrain "$m" "${grpo[@]}" --save_path "$tmp/grpo1" -t 1 >"$tmp/glog1" 2>&1 ||
  bad "grpo, one process: $(tail -1 "$tmp/glog1")"
mpirun -np 2 "$yak" train ppo --pretrain "$m" "${grpo[@]}" --save_path "$tmp/grpo2" >"$tmp/glog2" 2>&1 ||
  bad "grpo, two ranks: $(tail -3 "$tmp/glog2")"
python3 - "$tmp/grpo1-metrics.jsonl" "$tmp/grpo2-metrics.jsonl" <<'PY' && ok || bad "grpo rollouts differ across ranks"
import json, sys
rows = [[r["reward"] for r in map(json.loads, open(p)) if "reward" in r] for p in sys.argv[1:]]
assert len(rows[0]) == 10 and rows[0] == rows[1], rows
PY
compare weights "$tmp/grpo1/model.safetensors" "$tmp/grpo2/model.safetensors" 1e-5 && ok || bad "grpo weights differ"

# A rank killed (SIGKILL) mid-run: the whole job ends non-zero within a minute, the last complete
# checkpoint is intact, and one process resumes it to the end.
mpirun -np 2 "$yak" train sft --pretrain "$m" --dataset "$tmp/long.jsonl" --ckpt_path "$tmp/ck" --save_steps 20 \
  "${common[@]}" >"$tmp/klog" 2>&1 &
job=$!
for _ in $(seq 600); do [[ -e $tmp/ck/latest ]] && break; sleep 0.1; done
victim=""
for p in $(pgrep -P "$job"); do
  tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=1 && victim=$p
done
if [[ -z $victim || ! -e $tmp/ck/latest ]]; then
  bad "kill test: no checkpoint or no rank 1 to kill (pids: $(pgrep -P "$job" | tr '\n' ' '))"
  kill "$job" 2>/dev/null
else
  kill -9 "$victim"
  hung=0
  for _ in $(seq 600); do kill -0 "$job" 2>/dev/null || break; sleep 0.1; done  # at most 60 s
  if kill -0 "$job" 2>/dev/null; then
    hung=1
    kill -9 "$job"
  fi
  wait "$job"
  code=$?
  [[ $code -ne 0 && $hung -eq 0 ]] && ok || bad "the job after a rank was killed: exit $code$( ((hung)) && echo ', hung: killed after 60 s')"
  "$yak" train sft --pretrain "$m" --dataset "$tmp/long.jsonl" --ckpt_path "$tmp/ck" --load_checkpoint \
    --max_steps 60 --save_path "$tmp/resumed" "${common[@]}" -t 1 >"$tmp/rlog" 2>&1 && ok ||
    bad "resume after the kill: $(tail -1 "$tmp/rlog")"
  grep -q "resumed from .* at step [1-9][0-9]*" "$tmp/rlog" && ok || bad "the resume did not start from the checkpoint: $(head -3 "$tmp/rlog")"
fi

# The other way: a one-process checkpoint resumed on two ranks ends where one process ends.
"$yak" train sft --pretrain "$m" --dataset "$tmp/add.jsonl" --ckpt_path "$tmp/ck1" --save_steps 5 --max_steps 5 \
  "${common[@]}" -t 1 >/dev/null 2>&1 || bad "first half, one process"
mpirun -np 2 "$yak" train sft --pretrain "$m" --dataset "$tmp/add.jsonl" --ckpt_path "$tmp/ck1" --load_checkpoint \
  --save_path "$tmp/half2" "${common[@]}" >"$tmp/hlog" 2>&1 || bad "second half, two ranks: $(tail -3 "$tmp/hlog")"
grep -q "resumed from .* at step 5" "$tmp/hlog" && ok || bad "two ranks did not resume at step 5: $(head -3 "$tmp/hlog")"
compare weights "$tmp/one/model.safetensors" "$tmp/half2/model.safetensors" 1e-5 && ok ||
  bad "1 process then 2 ranks differs from 1 process"

# A bad flag: the job exits 2 with the message of the rank that failed first, naming it (the first
# abort ends the others, so not every rank may get to print); nothing is saved.
mpirun -np 2 "$yak" train sft --pretrain "$m" --dataset "$tmp/add.jsonl" --save_path "$tmp/bad" \
  --train_batch_size 2 --micro_train_batch_size 2 >"$tmp/out" 2>"$tmp/err"
code=$?
[[ $code -eq 2 ]] && ok || bad "bad flag under mpirun: exit $code"
grep -Eq "yak: error: rank [01]: .*fewer than the 2 ranks" "$tmp/err" && ok || bad "no message naming a rank: $(head -3 "$tmp/err")"
[[ ! -e $tmp/bad ]] && ok || bad "output written after an error"

echo "mpi_train: $passes passed, $fails failed"
((fails == 0))
