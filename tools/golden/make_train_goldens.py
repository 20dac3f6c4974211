#!/usr/bin/env python3
"""Reference outputs for the C++ training code (loss, gradients, AdamW, LR schedules, CE edges).

Writes tests/golden/train/:
  <model>/batch.json + <model>/grads.safetensors   loss and gradients of one 3-sequence batch
  <model>/adamw.json + <model>/adamw_final.safetensors   5 AdamW steps (two models)
  schedules.json                                   transformers LR multipliers, steps 0..10
  ce.json                                          torch cross_entropy edge cases
Semantics: tools/golden/README.md, section "Training".
Run from anywhere:  python tools/golden/make_train_goldens.py [--check]
  --check  recompute everything in memory and compare with the committed files; write nothing.
"""

import argparse
import json
import math
import sys
from pathlib import Path

import numpy
import safetensors
import torch
import torch.nn.functional as F
import transformers
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, get_scheduler

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "tests" / "golden" / "models"
OUT = REPO / "tests" / "golden" / "train"

GRAD_MODELS = ["llama_mha_f32", "llama_gqa_tied_f32", "qwen2_bias_tied", "qwen3_qknorm",
               "mistral_sliding", "llama_rope_yarn"]
ADAMW_MODELS = ["llama_gqa_tied_f32", "qwen2_bias_tied"]
SEQ_LENS = (12, 7, 20)
PROMPT_MASK = (3, 0, 5)          # first k labels of each sequence are -100
IGNORE = -100
BATCH_SEED = 1234                # grads batch: torch.Generator seed (+ index of model in GRAD_MODELS)
ADAMW_SEED = 5678                # adamw batches: seed + 100 * model index + step

# OpenRLHF openrlhf/utils/deepspeed/deepspeed_utils.py get_optimizer_grouped_parameters default:
# a parameter gets NO weight decay when any of these is a (case-sensitive) substring of its name.
NO_DECAY_NAME_LIST = ["bias", "layer_norm.weight", "layernorm.weight", "norm.weight", "ln_f.weight"]
ADAMW = dict(lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
MAX_GRAD_NORM = 1.0
N_STEPS = 5
SCHED = dict(name="cosine_with_min_lr", num_warmup_steps=2, num_training_steps=N_STEPS,
             scheduler_specific_kwargs={"min_lr_rate": 0.1})

transformers.utils.logging.disable_progress_bar()
VERSIONS = {"torch": torch.__version__, "transformers": transformers.__version__,
            "safetensors": safetensors.__version__, "numpy": numpy.__version__}


def load_model(name):
    m = AutoModelForCausalLM.from_pretrained(MODELS / name, dtype=torch.float32,
                                             attn_implementation="eager")
    m.train()  # all dropouts in these configs are 0.0, so train() == eval() numerically
    return m


def checkpoint_names(name):
    names = set()
    for f in sorted((MODELS / name).glob("model*.safetensors")):
        with safe_open(f, "pt") as h:
            names |= set(h.keys())
    return names


def make_batch(vocab, seed):
    g = torch.Generator().manual_seed(seed)
    seqs, labels = [], []
    for L, k in zip(SEQ_LENS, PROMPT_MASK):
        ids = torch.randint(0, vocab, (L,), generator=g)
        lab = ids.clone()
        lab[:k] = IGNORE
        seqs.append(ids.tolist())
        labels.append(lab.tolist())
    return seqs, labels


def n_targets(labels):
    return sum(sum(1 for t in lab[1:] if t != IGNORE) for lab in labels)


def seq_ce_sum(model, ids, lab):
    """Summed CE of one sequence run alone (batch 1, no padding): logits[:-1] vs labels[1:]."""
    logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    return F.cross_entropy(logits[:-1], torch.tensor(lab[1:]), ignore_index=IGNORE, reduction="sum")


def batch_loss(model, seqs, labels):
    n = n_targets(labels)
    total = sum(seq_ce_sum(model, s, l) for s, l in zip(seqs, labels))
    return total / n, n


def hf_builtin_loss(model, seqs, labels, n):
    """transformers' own loss: labels=..., num_items_in_batch=n -> sum/n per call; summed over seqs."""
    with torch.no_grad():
        with_n = sum(model(input_ids=torch.tensor([s]), labels=torch.tensor([l]),
                           num_items_in_batch=n).loss.item() for s, l in zip(seqs, labels))
        per_seq_means = [model(input_ids=torch.tensor([s]), labels=torch.tensor([l])).loss.item()
                         for s, l in zip(seqs, labels)]
    return with_n, per_seq_means


def grads_dict(model):
    out = {}
    for n, p in model.named_parameters():
        out[n] = (p.grad if p.grad is not None else torch.zeros_like(p)).detach().float().contiguous().clone()
    return out


# ---------------------------------------------------------------------------------------------
def make_grads(name, idx):
    model = load_model(name)
    cfg = model.config
    seqs, labels = make_batch(cfg.vocab_size, BATCH_SEED + idx)
    model.zero_grad(set_to_none=True)
    loss, n = batch_loss(model, seqs, labels)
    loss.backward()
    grads = grads_dict(model)
    ck = checkpoint_names(name)
    assert set(grads) == ck, (name, set(grads) ^ ck)
    hf_with_n, hf_means = hf_builtin_loss(model, seqs, labels, n)
    tied = bool(getattr(cfg, "tie_word_embeddings", False))
    note = ("Loss = sum over the 3 sequences (each run alone, batch 1, no padding, float32, eager "
            "attention) of sum-reduced CE(logits[:-1], labels[1:], ignore -100), divided by "
            "n_targets (all non-ignored targets of the whole batch). grads.safetensors: d loss / d "
            "param, one float32 tensor per checkpoint tensor name.")
    if tied:
        note += (" Tied embeddings: the checkpoint has no lm_head.weight; model.embed_tokens.weight "
                 "holds the SUM of the gradient through the input embedding lookup and through the "
                 "output projection (lm_head).")
    meta = {
        "model": name,
        "tied_embeddings": tied,
        "sequences": seqs,
        "labels": labels,
        "prompt_mask_k": list(PROMPT_MASK),
        "loss": loss.item(),
        "n_targets": n,
        "grad_norm": torch.sqrt(sum((g.double() ** 2).sum() for g in grads.values())).item(),
        "hf_loss_with_num_items_in_batch": hf_with_n,
        "hf_loss_per_sequence_mean": hf_means,
        "batch_seed": BATCH_SEED + idx,
        "note": note,
        "versions": VERSIONS,
    }
    return meta, grads


# ---------------------------------------------------------------------------------------------
def param_groups(model):
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (no_decay if any(nd in n for nd in NO_DECAY_NAME_LIST) else decay).append((n, p))
    return decay, no_decay


def run_adamw(name, midx, accumulate):
    torch.manual_seed(0)
    model = load_model(name)
    decay, no_decay = param_groups(model)
    opt = torch.optim.AdamW(
        [{"params": [p for _, p in decay], "weight_decay": ADAMW["weight_decay"]},
         {"params": [p for _, p in no_decay], "weight_decay": 0.0}],
        lr=ADAMW["lr"], betas=ADAMW["betas"], eps=ADAMW["eps"])
    sched = get_scheduler(SCHED["name"], opt, num_warmup_steps=SCHED["num_warmup_steps"],
                          num_training_steps=SCHED["num_training_steps"],
                          scheduler_specific_kwargs=SCHED["scheduler_specific_kwargs"])
    params = [p for p in model.parameters()]
    steps, batches = [], []
    for s in range(N_STEPS):
        seqs, labels = make_batch(model.config.vocab_size, ADAMW_SEED + 100 * midx + s)
        batches.append({"sequences": seqs, "labels": labels, "seed": ADAMW_SEED + 100 * midx + s})
        opt.zero_grad(set_to_none=True)
        n = n_targets(labels)
        if accumulate:
            loss_val = 0.0
            for sq, lb in zip(seqs, labels):
                nt = n_targets([lb])
                ce = seq_ce_sum(model, sq, lb)
                micro = ce / nt                      # micro-batch mean (what GPTLMLoss returns)
                (micro * (nt / n)).backward()        # scaled by its share of the batch's targets
                loss_val += (ce / n).item()
        else:
            loss, _ = batch_loss(model, seqs, labels)
            loss.backward()
            loss_val = loss.item()
        lr = opt.param_groups[0]["lr"]
        gn = torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM).item()
        opt.step()
        sched.step()
        steps.append({"step": s + 1, "loss": loss_val, "n_targets": n, "grad_norm": gn, "lr": lr,
                      "clip_coef": min(1.0, MAX_GRAD_NORM / (gn + 1e-6))})
    final = {n: p.detach().float().contiguous().clone() for n, p in model.named_parameters()}
    return steps, batches, final, [n for n, _ in decay], [n for n, _ in no_decay]


def make_adamw(name, midx):
    steps, batches, final, decay, no_decay = run_adamw(name, midx, accumulate=False)
    steps_a, _, final_a, _, _ = run_adamw(name, midx, accumulate=True)
    assert set(final) == checkpoint_names(name)
    per = {k: (final[k] - final_a[k]).abs().max().item() for k in final}
    worst = max(per, key=per.get)
    dw = per[worst]
    dl = max(abs(a["loss"] - b["loss"]) / abs(a["loss"]) for a, b in zip(steps, steps_a))
    dg = max(abs(a["grad_norm"] - b["grad_norm"]) / a["grad_norm"] for a, b in zip(steps, steps_a))
    same = dw < 5e-5 and dl < 1e-5 and dg < 1e-5
    meta = {
        "model": name,
        "optimizer": {"type": "torch.optim.AdamW", "lr": ADAMW["lr"], "betas": list(ADAMW["betas"]),
                      "eps": ADAMW["eps"], "weight_decay": ADAMW["weight_decay"], "amsgrad": False,
                      "update": "t+=1; m=b1*m+(1-b1)*g; v=b2*v+(1-b2)*g^2; p*=1-lr*wd; "
                                "p-=(lr/(1-b1^t))*m/(sqrt(v)/sqrt(1-b2^t)+eps)"},
        "weight_decay_rule": {
            "source": "OpenRLHF openrlhf/utils/deepspeed/deepspeed_utils.py get_optimizer_grouped_parameters",
            "no_decay_name_list": NO_DECAY_NAME_LIST,
            "rule": "weight_decay=0 if any(s in name for s in no_decay_name_list) (case-sensitive substring), else 0.1",
            "decay_params": decay,
            "no_decay_params": no_decay,
        },
        "grad_clip": {"max_norm": MAX_GRAD_NORM, "fn": "torch.nn.utils.clip_grad_norm_",
                      "rule": "total=||all grads||_2 (before clipping); coef=min(1, max_norm/(total+1e-6)); g*=coef"},
        "scheduler": {"fn": "transformers.get_scheduler", **SCHED,
                      "stepped": "once after each optimizer.step(); step k (1-based) uses multiplier(k-1)"},
        "loss": "same as batch.json: per batch, sum of per-sequence summed CE / n_targets of the batch",
        "batches": batches,
        "steps": steps,
        "final_weights": "adamw_final.safetensors (parameters after step 5, checkpoint tensor names)",
        "grad_accumulation": {
            "micro_batch": "1 sequence",
            "rule": "micro loss = mean CE of the sequence * (its n_targets / batch n_targets); backward each; then clip+step once",
            "matches_full_batch": same,
            "tolerance_used": "final weights atol 5e-5; per-step loss and grad_norm rtol 1e-5; lr identical",
            "max_abs_final_weight_diff": dw,
            "worst_param": worst,
            "max_abs_final_weight_diff_excluding_k_proj_bias": max(
                [v for k, v in per.items() if "k_proj.bias" not in k]),
            "why_not_exact": "float summation order only. Adam divides m by sqrt(v), so elements whose "
                             "gradient is tiny (k_proj.bias on low-frequency RoPE pairs: |g| ~1e-8..1e-6, "
                             "nearly position-invariant so softmax cancels it) turn rounding noise into "
                             "O(lr) updates; every other parameter agrees to <1e-6.",
            "max_rel_loss_diff": dl,
            "max_rel_grad_norm_diff": dg,
        },
        "versions": VERSIONS,
    }
    return meta, final


# ---------------------------------------------------------------------------------------------
def make_schedules():
    kinds = {"constant_with_warmup": {}, "linear": {}, "cosine": {},
             "cosine_with_min_lr": {"min_lr_rate": 0.1}}
    W, T = 3, 10
    out = {"num_warmup_steps": W, "num_training_steps": T, "steps": list(range(T + 1)),
           "base_lr": 1.0, "schedules": {}, "versions": VERSIONS,
           "note": "multiplier[s] = lr_lambda(s) = the lr of the (s+1)-th optimizer step divided by base lr; "
                   "the scheduler is stepped after each optimizer step. transformers formulas: "
                   "warmup s<W: s/max(1,W). constant_with_warmup: 1. linear: max(0,(T-s)/max(1,T-W)). "
                   "cosine (num_cycles 0.5): p=(s-W)/max(1,T-W); max(0,0.5*(1+cos(pi*p))). "
                   "cosine_with_min_lr: f=0.5*(1+cos(pi*p)); max(0, f*(1-r)+r), r=min_lr_rate."}
    for k, kw in kinds.items():
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=1.0)
        sch = get_scheduler(k, opt, num_warmup_steps=W, num_training_steps=T,
                            scheduler_specific_kwargs=kw or None)
        vals = []
        for s in range(T + 1):
            vals.append(opt.param_groups[0]["lr"])
            assert abs(vals[-1] - sch.lr_lambdas[0](s)) < 1e-15
            opt.step()
            sch.step()
        out["schedules"][k] = {"kwargs": kw, "multiplier": vals}
    return out


def make_ce():
    V = 6
    cases = [
        ("basic", [[0.5, -1.0, 2.0, 0.0, 0.3, -0.7], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]], [2, 4]),
        ("large_magnitude", [[80.0, -80.0, 0.0, 79.5, -3.0, 10.0], [-80.0, -80.0, -80.0, -80.0, 80.0, -79.0],
                             [80.0, 80.0, 80.0, -80.0, -80.0, -80.0]], [3, 0, 5]),
        ("partially_ignored", [[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [3.0, -2.0, 1.0, 0.0, -1.0, 2.0],
                               [-0.5, 0.25, 4.0, -4.0, 1.5, 0.0]], [-100, 1, -100]),
        ("all_ignored", [[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [80.0, -80.0, 0.0, 0.0, 0.0, 0.0]], [-100, -100]),
    ]
    out = {"vocab": V, "ignore_index": IGNORE, "versions": VERSIONS, "cases": [],
           "note": "torch.nn.functional.cross_entropy(logits, targets, ignore_index=-100, reduction='sum'), "
                   "float32; grad = d loss_sum / d logits = softmax(row) - onehot(target) for kept rows, 0 "
                   "for ignored rows. loss_mean = reduction='mean' (sum / kept rows; 'nan' when no row is kept). "
                   "*_f64 = same in float64."}
    for nm, lg, tg in cases:
        x = torch.tensor(lg, dtype=torch.float32, requires_grad=True)
        t = torch.tensor(tg)
        loss = F.cross_entropy(x, t, ignore_index=IGNORE, reduction="sum")
        loss.backward()
        x64 = torch.tensor(lg, dtype=torch.float64, requires_grad=True)
        l64 = F.cross_entropy(x64, t, ignore_index=IGNORE, reduction="sum")
        l64.backward()
        mean = F.cross_entropy(x.detach(), t, ignore_index=IGNORE, reduction="mean").item()
        out["cases"].append({
            "name": nm, "logits": lg, "targets": tg,
            "n_targets": int((t != IGNORE).sum()),
            "loss_sum": loss.item(), "loss_sum_f64": l64.item(),
            "loss_mean": "nan" if math.isnan(mean) else mean,
            "grad": x.grad.tolist(), "grad_f64": x64.grad.tolist(),
        })
    return out


# ---------------------------------------------------------------------------------------------
def dump_json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1) + "\n")


def cmp_tensors(a, b, what, tol):
    assert set(a) == set(b), what
    d = max((a[k] - b[k]).abs().max().item() for k in a)
    assert d <= tol, (what, d)
    return d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)

    for i, name in enumerate(GRAD_MODELS):
        meta, grads = make_grads(name, i)
        d = OUT / name
        if args.check:
            old = json.loads((d / "batch.json").read_text())
            assert old["sequences"] == meta["sequences"] and old["labels"] == meta["labels"]
            assert abs(old["loss"] - meta["loss"]) <= 1e-6 * abs(meta["loss"]), name
            dg = cmp_tensors(load_file(d / "grads.safetensors"), grads, name, 1e-6)
            print(f"check {name}: loss {meta['loss']:.6f} grads max diff {dg:.2e}")
        else:
            dump_json(d / "batch.json", meta)
            save_file(grads, d / "grads.safetensors")
            back = load_file(d / "grads.safetensors")
            cmp_tensors(back, grads, name, 0.0)
            print(f"{name}: loss {meta['loss']:.6f} n {meta['n_targets']} |g| {meta['grad_norm']:.4f} "
                  f"hf(num_items) {meta['hf_loss_with_num_items_in_batch']:.6f}")

    for i, name in enumerate(ADAMW_MODELS):
        meta, final = make_adamw(name, i)
        d = OUT / name
        if args.check:
            old = json.loads((d / "adamw.json").read_text())
            for a, b in zip(old["steps"], meta["steps"]):
                assert abs(a["loss"] - b["loss"]) <= 1e-6 * abs(a["loss"]) and a["lr"] == b["lr"], name
            dw = cmp_tensors(load_file(d / "adamw_final.safetensors"), final, name, 1e-6)
            print(f"check {name} adamw: final weights max diff {dw:.2e}")
        else:
            dump_json(d / "adamw.json", meta)
            save_file(final, d / "adamw_final.safetensors")
            cmp_tensors(load_file(d / "adamw_final.safetensors"), final, name, 0.0)
            ga = meta["grad_accumulation"]
            print(f"{name} adamw: " + " ".join(f"[{s['loss']:.4f} |g|{s['grad_norm']:.3f} lr{s['lr']:.2e}]"
                                                for s in meta["steps"])
                  + f" accum_same={ga['matches_full_batch']} dw={ga['max_abs_final_weight_diff']:.1e}")

    sch, ce = make_schedules(), make_ce()
    if args.check:
        assert json.loads((OUT / "schedules.json").read_text())["schedules"] == sch["schedules"]
        old = json.loads((OUT / "ce.json").read_text())["cases"]
        for a, b in zip(old, ce["cases"]):
            assert a["loss_sum"] == b["loss_sum"] and a["grad"] == b["grad"], a["name"]
        print("check schedules.json ce.json: ok")
    else:
        dump_json(OUT / "schedules.json", sch)
        dump_json(OUT / "ce.json", ce)
        for p in sorted(OUT.rglob("*.json")):
            json.loads(p.read_text())
        total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
        print(f"wrote {OUT} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    sys.exit(main())
