"""Runs the training commands of OpenRLHF's example launch scripts through yak (flat and dotted
spellings), each flag as the script writes it; only values are replaced: model names by the tiny
golden checkpoint (or a reward model trained here first), dataset names by small generated JSONL
files with the keys the command names, output paths by a temporary folder, and sizes (lengths,
batch sizes, sample counts, epochs) by small ones so that every command trains for a step or two.
Every command must exit 0 and write its model; commands whose entry point yak does not have
(batch_inference) are reported and skipped, and commands yak refuses on purpose (a Python reward
function, vision-language data, GSPO) must fail with exit 2 and the expected message.

usage: run_scripts.py YAK GOLDEN_DIR SCRIPTS_DIR WORK_DIR
"""
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from extract import commands  # noqa: E402

ENTRY = {
    "train_sft": ["train", "sft"], "train_rm": ["train", "rm"], "train_dpo": ["train", "dpo"],
    "train_kto": ["train", "kto"], "train_kd": ["train", "kd"], "train_prm": ["train", "prm"],
    "train_ppo": ["train", "ppo"], "train_ppo_ray": ["train", "ppo"], "serve_rm": ["serve-rm"],
}
MODEL_FLAGS = {"--pretrain", "--critic_pretrain", "--ref_pretrain", "--teacher_model",
               "--model.model_name_or_path", "--actor.model_name_or_path", "--critic.model_name_or_path",
               "--ref.model_name_or_path"}
REWARD_FLAGS = {"--reward_pretrain", "--reward.model_name_or_path"}
DATA_FLAGS = {"--dataset", "--prompt_data", "--eval_dataset", "--data.dataset", "--data.prompt_dataset", "--eval.dataset"}
PATH_FLAGS = {"--save_path", "--ckpt_path", "--ckpt.output_dir", "--ckpt.path"}
SMALL = {  # flag -> value
    "--max_len": "192", "--data.max_len": "192", "--prompt_max_len": "128", "--generate_max_len": "8",
    "--max_new_tokens": "8", "--rollout.max_new_tokens": "8", "--max_samples": "48", "--data.max_samples": "48",
    "--train_batch_size": "4", "--train.batch_size": "4", "--micro_train_batch_size": "2",
    "--train.micro_batch_size": "2", "--rollout_batch_size": "2", "--rollout.batch_size": "2",
    "--micro_rollout_batch_size": "2", "--rollout.micro_batch_size": "2", "--max_epochs": "1",
    "--train.max_epochs": "1", "--num_episodes": "1", "--train.num_episodes": "1", "--save_steps": "-1",
    "--ckpt.save_steps": "-1", "--eval_steps": "-1", "--eval.steps": "-1", "--port": "0",
}
N_SAMPLES = {"--n_samples_per_prompt", "--rollout.n_samples_per_prompt"}


def flag_values(args):
    """[(flag, [values...])] in order."""
    out = []
    for a in args:
        if a.startswith("--"):
            out.append([a, []])
        elif out:
            out[-1][1].append(a)
    return out


def value_of(fv, *names, default=None):
    for f, v in fv:
        if f in names:
            return v[0] if v else True
    return default


def make_dataset(path, fv, entry, index):
    """A JSONL file with the keys the command reads."""
    chat = value_of(fv, "--apply_chat_template", "--data.apply_chat_template") is not None
    key = lambda *names, default=None: value_of(fv, *names, default=default)  # noqa: E731
    input_key = key("--input_key", "--data.input_key", default="input" if entry != "train_dpo" else None)
    output_key = key("--output_key", "--data.output_key", default="output")
    chosen = key("--chosen_key", "--data.chosen_key", default="chosen")
    rejected = key("--rejected_key", "--data.rejected_key", default="rejected")
    prompt_key = key("--prompt_key", default=None)
    label_key = key("--label_key", "--data.label_key", default="label")
    placeholder = key("--placeholder_token", default=None)
    rows = []
    for i in range(48):
        q, a = f"What is {i} plus {i}?", f"{i + i}"
        msgs = [{"role": "user", "content": q}]
        r = {}
        if entry in ("train_sft", "train_kd"):
            r[input_key] = msgs if chat else q
            if value_of(fv, "--pretrain_mode") is None:
                r[output_key] = a
        elif entry in ("train_rm", "train_dpo"):
            if prompt_key:
                r[prompt_key] = msgs if chat else q
                r[chosen], r[rejected] = (a, "no") if not chat else ([{"role": "assistant", "content": a}],
                                                                     [{"role": "assistant", "content": "no"}])
            elif chat:
                r[chosen] = msgs + [{"role": "assistant", "content": a}]
                r[rejected] = msgs + [{"role": "assistant", "content": "no"}]
            else:
                r[chosen], r[rejected] = q + " " + a, q + " no"
        elif entry == "train_kto":
            r[input_key] = msgs if chat else q
            r[output_key] = a if i % 2 == 0 else "no"
            r[label_key] = i % 2 == 0
        elif entry == "train_prm":
            ph = placeholder or "ки"
            r[input_key] = f"Step 1: {i}{ph}\nStep 2: {i + i}{ph}"  # no space before it: one token
            toks = value_of(fv, "--reward_tokens") and [v for f, vs in fv if f == "--reward_tokens" for v in vs]
            good, bad = (toks + ["+", "-"])[:2] if toks else ("+", "-")
            r[label_key] = [good, good if i % 2 else bad]
        else:  # ppo prompts
            r[input_key] = msgs if chat else q
            r[label_key] = a
        rows.append(r)
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def build(cmd, yak, golden, rm_dir, prm_model, work, index):
    entry, args = cmd["entry"], cmd["args"]
    fv = flag_values(args)
    out = [yak] + ENTRY[entry]
    data_n = 0
    for f, vals in fv:
        if f in MODEL_FLAGS:
            vals = [str(prm_model if entry == "train_prm" else golden / "models" / "qwen2_chat")]
        elif f in REWARD_FLAGS:
            vals = [str(rm_dir)] * max(1, len(vals))
        elif f in DATA_FLAGS:
            files = []
            for k in range(max(1, len(vals[0].split(",")) if vals else 1)):
                p = work / f"data{index}_{data_n}_{k}.jsonl"
                make_dataset(p, fv, entry, index)
                files.append(str(p))
            data_n += 1
            vals = [",".join(files)]
        elif f in PATH_FLAGS:
            vals = [str(work / f"out{index}" / f.strip("-").replace(".", "_"))]
        elif f in SMALL:
            vals = [SMALL[f]]
        elif f in N_SAMPLES:
            vals = [str(min(2, int(vals[0])))]
        elif f == "--lora_rank" or f == "--ds.lora.rank":
            vals = [str(min(4, int(vals[0])))]
        out.append(f)
        out += vals
    if entry != "serve_rm":
        out += ["--max_steps", "1"] if entry not in ("train_ppo", "train_ppo_ray") else []
    return out


def expected_refusal(cmd):
    fv = flag_values(cmd["args"])
    if value_of(fv, "--image_key", "--data.image_key") is not None:
        return "vision-language training is not supported"
    url = value_of(fv, "--remote_rm_url", "--reward.remote_url")
    if isinstance(url, str) and not url.startswith("http"):
        return "a Python reward function"
    if value_of(fv, "--advantage_estimator") == "trl_rloo":  # from an unmerged OpenRLHF pull request (#553)
        return "--advantage_estimator 'trl_rloo'"
    pl = value_of(fv, "--policy_loss_type")
    if isinstance(pl, str) and pl != "ppo":
        return "--policy_loss_type " + pl
    return None


def saved(work, index):
    out = work / f"out{index}"
    return any(p.name in ("model.safetensors", "adapter_model.safetensors", "model.safetensors.index.json")
               for p in out.rglob("*")) if out.exists() else False


def main():
    yak, golden, scripts, work = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
    work.mkdir(parents=True, exist_ok=True)
    # A reward model for the PPO scripts and serve_rm: yak train rm on generated pairs.
    rm_dir = work / "rm"
    pairs = work / "pairs.jsonl"
    with open(pairs, "w") as f:
        for i in range(8):
            f.write(json.dumps({"prompt": f"Q{i}?", "chosen": f"yes {i}", "rejected": f"no {i}"}) + "\n")
    r = subprocess.run([yak, "train", "rm", "--pretrain", str(golden / "models" / "qwen2_chat"), "--dataset", str(pairs),
                        "--prompt_key", "prompt", "--max_steps", "1", "--train_batch_size", "2",
                        "--micro_train_batch_size", "2", "--save_path", str(rm_dir)], capture_output=True, text=True)
    if r.returncode != 0:
        print("FAIL reward model fixture:", r.stderr[-500:])
        return 1
    # A PRM needs its placeholder (Math-Shepherd's "ки") as one token: a tiny random model over the
    # real Qwen2 tokenizer, where it is.
    prm_model = None
    qwen2 = golden.resolve().parent.parent.parent / "shared" / "data" / "tokenizers" / "qwen2"
    if (qwen2 / "tokenizer.json").exists() or (qwen2 / "vocab.json").exists():
        cfg = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 32,
               "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
               "vocab_size": 151646, "max_position_embeddings": 512, "rms_norm_eps": 1e-6,
               "rope_theta": 1000000.0, "tie_word_embeddings": True, "eos_token_id": 151643}
        (work / "prm.json").write_text(json.dumps(cfg))
        r = subprocess.run([yak, "model", "init", "--config", str(work / "prm.json"), "--out", str(work / "prm-init"),
                            "--tokenizer", str(qwen2), "--seed", "3"], capture_output=True, text=True)
        if r.returncode == 0:
            prm_model = work / "prm-init"
        else:
            print("FAIL PRM model fixture:", r.stderr[-300:])
            return 1
    files = sorted(scripts.glob("*.sh")) + sorted((scripts / "dotted").glob("*.sh"))
    passed = failed = skipped = refused = 0
    index = 0
    for path in files:
        name = path.name if path.parent == scripts else "dotted/" + path.name
        cmds = list(commands(path.read_text(encoding="utf-8")))
        if not cmds:
            # Flags assembled in shell arrays: the command line is not written out in the file.
            print(f"skip {name}: no openrlhf.cli command line written out in the file (flags built in shell arrays)")
            skipped += 1
            continue
        for entry, args in cmds:
            index += 1
            cmd = {"entry": entry, "args": args}
            if any("[@]" in a for a in args):
                print(f"skip {name}: the flags are built in shell arrays at run time, not written in the file")
                skipped += 1
                continue
            if entry == "train_prm" and prm_model is None:
                print(f"skip {name}: its placeholder token needs ../shared/data/tokenizers/qwen2 (absent)")
                skipped += 1
                continue
            if entry not in ENTRY:
                print(f"skip {name}: openrlhf.cli.{entry} is not an entry point of yak "
                      "(yak rejection-sample / train iterative-dpo run generation and scoring as one command)")
                skipped += 1
                continue
            argv = build(cmd, yak, golden, rm_dir, prm_model, work, index)
            refusal = expected_refusal(cmd)
            if entry == "serve_rm":
                p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                line = p.stdout.readline()
                p.terminate()
                _, err = p.communicate(timeout=30)
                ok = "listening on http://" in line
                print(("ok  " if ok else "FAIL ") + f"{name}: {' '.join(argv[1:3])} ({line.strip() or err.strip()[-200:]})")
                passed, failed = passed + ok, failed + (not ok)
                continue
            r = subprocess.run(argv, capture_output=True, text=True, timeout=600)
            if refusal:
                ok = r.returncode == 2 and refusal in r.stderr
                print(("ok  " if ok else "FAIL ") + f"{name}: {entry} refused as expected ({refusal})"
                      + ("" if ok else f": exit {r.returncode}, {r.stderr.strip()[-300:]}"))
                refused += ok
                failed += not ok
                continue
            ok = r.returncode == 0 and saved(work, index)
            notice = [l for l in r.stderr.splitlines() if l.startswith("yak: accepted")]
            print(("ok  " if ok else "FAIL ") + f"{name}: {' '.join(ENTRY[entry])}, {len(args)} arguments"
                  + (f"; {len(notice)} notice line(s)" if notice else ""))
            if not ok:
                print("     " + " ".join(argv))
                print("     exit", r.returncode, r.stderr.strip()[-600:])
            passed, failed = passed + ok, failed + (not ok)
    print(f"openrlhf scripts: {passed} commands trained, {refused} refused as expected, {skipped} skipped, {failed} failed")
    # The README's figures for the scripts in ../shared/data (43 commands): 25 train (24 without
    # the Qwen2 tokenizer the PRM needs), 9 refused, 9 skipped.
    want = (25, 9, 9) if prm_model is not None else (24, 9, 10)
    if (passed, refused, skipped) != want:
        print(f"FAIL expected {want[0]} trained, {want[1]} refused, {want[2]} skipped (README)")
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
