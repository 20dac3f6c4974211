#!/usr/bin/env bash
# A reward model end to end over HTTP: `yak train rm` on generated preferences (config.json gets
# the reward mean/std), `yak serve-rm` answering OpenRLHF's POST /get_reward, the learned
# preference seen through the server, malformed requests refused, then `yak train ppo
# --remote_rm_url` against it, and an unreachable URL failing cleanly.
set -u
yak=$1 golden=$2
m=$golden/models/qwen2_chat
fails=0 passes=0
tmp=$(mktemp -d)
srv=
trap '[[ -n $srv ]] && kill $srv 2>/dev/null; rm -rf "$tmp"' EXIT
ok() { passes=$((passes + 1)); }
bad() { echo "FAIL $1"; fails=$((fails + 1)); }

python3 - "$tmp" <<'PY'
import json, random, sys
d = sys.argv[1]
filler = ["the", "yak", "grass", "water", "hill", "snow", "road", "light"]
good, rude = ["thank you", "please", "kindly"], ["go away", "shut up", "stupid"]
def pairs(n, seed):
    r = random.Random(seed)
    out = []
    for _ in range(n):
        w = " " + " ".join(r.choice(filler) for _ in range(4))
        out.append({"prompt": "Say something about" + w + ".", "chosen": r.choice(good) + "," + w,
                    "rejected": r.choice(rude) + "," + w})
    return out
for name, n, seed in [("train", 64, 1), ("eval", 16, 2)]:
    with open(f"{d}/{name}.jsonl", "w") as f:
        for p in pairs(n, seed):
            f.write(json.dumps(p) + "\n")
with open(f"{d}/prompts.jsonl", "w") as f:
    for i in range(8):
        f.write(json.dumps({"input": f"Say something about hill {i}."}) + "\n")
PY

"$yak" train rm --pretrain "$m" --dataset "$tmp/train.jsonl" --eval_dataset "$tmp/eval.jsonl" --max_len 64 \
  --train_batch_size 8 --micro_train_batch_size 4 --max_epochs 3 --learning_rate 3e-3 --save_path "$tmp/rm" \
  >"$tmp/rm.txt" 2>&1 || bad "train rm exited $?"
if python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); assert c["std"] > 0 and "mean" in c' "$tmp/rm/config.json"; then ok; else bad "config.json lacks mean/std"; fi

"$yak" serve-rm -m "$tmp/rm" --port 0 >"$tmp/srv.txt" 2>&1 &
srv=$!
url=
for _ in $(seq 100); do
  url=$(grep -o 'http://[^ ]*/get_reward' "$tmp/srv.txt" 2>/dev/null)
  [[ -n $url ]] && break
  sleep 0.1
done
[[ -n $url ]] && ok || bad "serve-rm printed no URL: $(cat "$tmp/srv.txt")"

# The server's scores: polite answers above rude ones for held-out pairs, one score per query.
if python3 - "$url" "$tmp/eval.jsonl" <<'PY'; then ok; else bad "served scores"; fi
import json, sys, urllib.request
url, path = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(path)]
q = [r["prompt"] + r["chosen"] for r in rows] + [r["prompt"] + r["rejected"] for r in rows]
req = urllib.request.Request(url, json.dumps({"query": q}).encode(), {"Content-Type": "application/json"})
ans = json.load(urllib.request.urlopen(req, timeout=60))
s = ans["rewards"]
assert len(s) == len(q), len(s)
n = len(rows)
right = sum(s[i] > s[n + i] for i in range(n))
print(f"served held-out pairwise accuracy {right}/{n}")
assert right >= 0.9 * n
PY

# Malformed requests get 400 and an error message; the server keeps serving.
if python3 - "$url" <<'PY'; then ok; else bad "malformed request handling"; fi
import json, sys, urllib.request, urllib.error
url = sys.argv[1]
for body in [b"not json", b'{"query": "one string"}', b'{"query": [1, 2]}', b'{}']:
    try:
        urllib.request.urlopen(urllib.request.Request(url, body), timeout=30)
        raise SystemExit(f"accepted {body!r}")
    except urllib.error.HTTPError as e:
        assert e.code == 400, e.code
        assert "error" in json.load(e)
ans = json.load(urllib.request.urlopen(urllib.request.Request(url, b'{"query": ["hi"]}'), timeout=30))
assert len(ans["rewards"]) == 1
PY

# PPO against the served reward model.
out=$("$yak" train ppo --pretrain "$m" --prompt_data "$tmp/prompts.jsonl" --remote_rm_url "$url" \
  --advantage_estimator group_norm --n_samples_per_prompt 2 --rollout_batch_size 4 --train_batch_size 8 \
  --micro_train_batch_size 4 --generate_max_len 4 --max_steps 2 --init_kl_coef 0.01 --actor_learning_rate 1e-4 \
  --save_path "$tmp/actor" 2>"$tmp/ppo.txt")
[[ $out == *"trained 2 rollout steps"* && -f $tmp/actor/model.safetensors ]] && ok || bad "ppo with --remote_rm_url: $out $(tail -3 "$tmp/ppo.txt")"

kill $srv 2>/dev/null
wait $srv 2>/dev/null
srv=
# The server is gone: a clear error naming the URL, exit code 2, nothing saved.
"$yak" train ppo --pretrain "$m" --prompt_data "$tmp/prompts.jsonl" --remote_rm_url "$url" --reward_timeout 2 \
  --advantage_estimator group_norm --n_samples_per_prompt 2 --rollout_batch_size 4 --train_batch_size 8 \
  --generate_max_len 4 --max_steps 1 --save_path "$tmp/actor2" >/dev/null 2>"$tmp/err.txt"
rc=$?
[[ $rc == 2 && $(cat "$tmp/err.txt") == *"$url"* && ! -e $tmp/actor2 ]] && ok || bad "unreachable RM: rc $rc, $(tail -2 "$tmp/err.txt")"

# --normalize_reward on a reward model without stored statistics is refused up front.
"$yak" train ppo --pretrain "$m" --prompt_data "$tmp/prompts.jsonl" --reward_pretrain "$golden/models/qwen2_rm" \
  --normalize_reward --max_steps 1 >/dev/null 2>"$tmp/err2.txt"
rc=$?
[[ $rc == 2 && $(cat "$tmp/err2.txt") == *mean* ]] && ok || bad "normalize without mean/std: rc $rc $(cat "$tmp/err2.txt")"

echo "$passes passed, $fails failed"
[[ $fails == 0 ]]
