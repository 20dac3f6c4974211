#!/usr/bin/env python3
"""Reference outputs for the C++ LoRA code (PEFT adapters: load, forward, merge, gradients).

Writes tests/golden/lora/<model>_<variant>/:
  adapter_config.json, adapter_model.safetensors   exactly as PEFT save_pretrained writes them
                                                   (PEFT's generated README.md model card is removed)
  logits.safetensors    logits_<i> float32 [L, V]: PEFT model, adapter active, eval mode, prompt i
  merged.safetensors    merge_and_unload() state dict under the base checkpoint's tensor names
  grads.safetensors     d loss / d trainable param (train mode) under adapter_model.safetensors names
  golden.json           model, prompts, loss, scaling rule, versions, notes
Semantics: tools/golden/README.md, section "LoRA".
Run from anywhere:  python tools/golden/make_lora_goldens.py [--check]
  --check  recompute everything in memory and compare with the committed files; write nothing.
"""

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

import peft
import safetensors
import torch
import torch.nn.functional as F
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from peft.utils import get_peft_model_state_dict
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

REPO = Path(__file__).resolve().parents[2]
MODELS_REL = Path("tests") / "golden" / "models"     # relative: adapter_config.json records it
TRAIN = REPO / "tests" / "golden" / "train"
OUT = REPO / "tests" / "golden" / "lora"
IGNORE = -100
ALL7 = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LORA_STD = 0.1          # lora_A / lora_B overwritten with N(0, 0.1^2)
SAVE_NOISE_STD = 0.02   # added to the modules_to_save copies
MERGED_FULL = False     # True: merged.safetensors holds every checkpoint tensor (~2.1 MB more in all)

# name -> (base model, LoraConfig kwargs, seed)
VARIANTS = {
    "llama_mha_f32_all": ("llama_mha_f32", dict(r=4, lora_alpha=8, target_modules=ALL7), 100),
    "qwen2_bias_tied_all": ("qwen2_bias_tied", dict(r=4, lora_alpha=8, target_modules=ALL7), 200),
    "llama_mha_f32_qv_rslora": ("llama_mha_f32", dict(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                                      use_rslora=True), 300),
    "llama_mha_f32_modules_to_save": ("llama_mha_f32", dict(r=2, lora_alpha=8, target_modules=ALL7,
                                                            modules_to_save=["lm_head", "embed_tokens"]), 400),
}

transformers.utils.logging.disable_progress_bar()
VERSIONS = {"torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__, "safetensors": safetensors.__version__}


def load_base(name):
    # Load through the repo-relative path so adapter_config.json's base_model_name_or_path is
    # "tests/golden/models/<name>", not an absolute path of this machine.
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        m = AutoModelForCausalLM.from_pretrained(str(MODELS_REL / name), dtype=torch.float32,
                                                 attn_implementation="eager")
    finally:
        os.chdir(cwd)
    return m


def checkpoint_names(name):
    names = set()
    for f in sorted((REPO / MODELS_REL / name).glob("model*.safetensors")):
        with safe_open(f, "pt") as h:
            names |= set(h.keys())
    return names


def build(vname):
    base_name, kw, seed = VARIANTS[vname]
    torch.manual_seed(0)
    base = load_base(base_name)
    cfg = LoraConfig(lora_dropout=0.0, bias="none", task_type="CAUSAL_LM", **kw)
    model = get_peft_model(base, cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in sorted(model.named_parameters()):
            if ".lora_A." in n or ".lora_B." in n:
                p.copy_(torch.randn(p.shape, generator=g) * LORA_STD)
            elif ".modules_to_save." in n:
                p.add_(torch.randn(p.shape, generator=g) * SAVE_NOISE_STD)
    return base_name, model


def prompt_logits(model, prompts):
    model.eval()
    with torch.no_grad():
        return {f"logits_{i}": model(input_ids=torch.tensor([p])).logits[0].float().contiguous().clone()
                for i, p in enumerate(prompts)}


def batch_loss(model, seqs, labels):
    n = sum(sum(1 for t in lab[1:] if t != IGNORE) for lab in labels)
    total = 0
    for ids, lab in zip(seqs, labels):
        logits = model(input_ids=torch.tensor([ids])).logits[0].float()
        total = total + F.cross_entropy(logits[:-1], torch.tensor(lab[1:]), ignore_index=IGNORE,
                                        reduction="sum")
    return total / n, n


def scaling_of(model):
    vals = set()
    for mod in model.modules():
        s = getattr(mod, "scaling", None)
        if isinstance(s, dict) and "default" in s:
            vals.add(s["default"])
    assert len(vals) == 1, vals
    return vals.pop()


def make_variant(vname, outdir):
    base_name, model = build(vname)
    _, kw, seed = VARIANTS[vname]
    prompts = json.loads((REPO / MODELS_REL / base_name / "golden.json").read_text())["prompts"]
    batch = json.loads((TRAIN / base_name / "batch.json").read_text())

    logits = prompt_logits(model, prompts)

    # gradients, train mode (dropout 0 -> deterministic)
    model.train()
    model.zero_grad(set_to_none=True)
    loss, n = batch_loss(model, batch["sequences"], batch["labels"])
    loss.backward()
    trainable = {n_: p for n_, p in model.named_parameters() if p.requires_grad}
    raw_grads = {n_: p.grad.detach().float().contiguous().clone() for n_, p in trainable.items()}
    # map to the saved names exactly as save_pretrained does
    grads = {k: v.contiguous().clone() for k, v in get_peft_model_state_dict(model, state_dict=raw_grads).items()}
    model.zero_grad(set_to_none=True)
    model.eval()

    # save the adapter
    outdir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(outdir))
    readme = outdir / "README.md"
    if readme.exists():
        readme.unlink()
    saved = load_file(outdir / "adapter_model.safetensors")
    assert set(grads) == set(saved), set(grads) ^ set(saved)
    assert len(grads) == len(raw_grads), (len(grads), len(raw_grads))
    for k in saved:
        assert saved[k].shape == grads[k].shape, k

    # reload check: fresh base + PeftModel.from_pretrained reproduces the logits
    re = PeftModel.from_pretrained(load_base(base_name), str(outdir))
    re_logits = prompt_logits(re, prompts)
    reload_diff = max((re_logits[k] - logits[k]).abs().max().item() for k in logits)
    assert reload_diff == 0.0 or reload_diff < 1e-6, reload_diff
    scaling = scaling_of(re)

    # merged weights under base checkpoint names
    merged_model = re.merge_and_unload()
    sd = merged_model.state_dict()
    ck = checkpoint_names(base_name)
    merged = {k: sd[k].detach().float().contiguous().clone() for k in sorted(ck)}
    merged_logits = prompt_logits(merged_model, prompts)
    merge_diff = max((merged_logits[k] - logits[k]).abs().max().item() for k in logits)
    assert merge_diff < 1e-4, merge_diff
    base_sd = load_base(base_name).state_dict()
    changed = sorted(k for k in ck if not torch.equal(merged[k], base_sd[k]))
    if not MERGED_FULL:   # size: keep only what the merge changed; the rest equals the base bit for bit
        merged = {k: merged[k] for k in changed}

    r, alpha, rs = kw["r"], kw["lora_alpha"], kw.get("use_rslora", False)
    expect = alpha / math.sqrt(r) if rs else alpha / r
    assert abs(scaling - expect) < 1e-12, (scaling, expect)
    meta = {
        "name": vname,
        "model": base_name,
        "model_dir": str(MODELS_REL / base_name),
        "lora_config": {k: v for k, v in kw.items()},
        "lora_dropout": 0.0,
        "bias": "none",
        "prompts": prompts,
        "logits": "logits.safetensors: logits_<i> float32 [len(prompts[i]), vocab], adapter active, eval mode",
        "merged": ("merged.safetensors: merge_and_unload() state dict, float32, base checkpoint tensor "
                   "names" + ("" if MERGED_FULL else "; ONLY the tensors the merge changed "
                   "(merged_changed_tensors); every other checkpoint tensor is bit-identical to the "
                   "base checkpoint")),
        "merged_changed_tensors": changed,
        "grads": "grads.safetensors: d loss / d trainable param, names as in adapter_model.safetensors",
        "train_batch": f"tests/golden/train/{base_name}/batch.json",
        "loss": loss.item(),
        "n_targets": n,
        "grad_norm": torch.sqrt(sum((g_.double() ** 2).sum() for g_ in grads.values())).item(),
        "scaling": scaling,
        "scaling_rule": ("delta_W = scaling * lora_B.weight @ lora_A.weight, y = base(x) + scaling * "
                         "lora_B(lora_A(x)); scaling = lora_alpha / sqrt(r) if use_rslora else "
                         "lora_alpha / r (r, lora_alpha from adapter_config.json; rank_pattern / "
                         "alpha_pattern are empty here)"),
        "init": (f"lora_A/lora_B overwritten with N(0, {LORA_STD}^2) from torch.Generator seed {seed} "
                 "(parameters in sorted-name order); modules_to_save copies += N(0, "
                 f"{SAVE_NOISE_STD}^2) from the same generator"),
        "check": {"reload_logits_max_abs_diff": reload_diff, "merged_logits_max_abs_diff": merge_diff},
        "versions": VERSIONS,
    }
    tensors = {"logits": logits, "merged": merged, "grads": grads}
    return meta, tensors


def dump_json(path, obj):
    path.write_text(json.dumps(obj, indent=1) + "\n")


def main():
    # PEFT stores target_modules as a set and writes it in set-iteration order, which depends on
    # string hashing: fix the hash seed so regenerating gives byte-identical adapter_config.json.
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.execve(sys.executable, [sys.executable] + sys.argv, {**os.environ, "PYTHONHASHSEED": "0"})
    os.chdir(REPO)
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    ok = True
    for vname in VARIANTS:
        final = OUT / vname
        if args.check:
            tmp = Path(tempfile.mkdtemp())
            meta, tensors = make_variant(vname, tmp / vname)
            old = json.loads((final / "golden.json").read_text())
            worst = abs(old["loss"] - meta["loss"])
            for what, t in tensors.items():
                ref = load_file(final / f"{what}.safetensors")
                assert set(ref) == set(t), (vname, what)
                worst = max(worst, max((ref[k] - t[k]).abs().max().item() for k in t))
            a_new = load_file(tmp / vname / "adapter_model.safetensors")
            a_old = load_file(final / "adapter_model.safetensors")
            same = set(a_new) == set(a_old) and all(torch.equal(a_new[k], a_old[k]) for k in a_new)
            cfg_same = (json.loads((tmp / vname / "adapter_config.json").read_text())
                        == json.loads((final / "adapter_config.json").read_text()))
            shutil.rmtree(tmp)
            print(f"check {vname}: max diff {worst:.2e}, adapter identical {same}, config identical {cfg_same}")
            ok &= worst < 1e-5 and same and cfg_same
            continue
        meta, tensors = make_variant(vname, final)
        for what, t in tensors.items():
            save_file(t, str(final / f"{what}.safetensors"), metadata={"format": "pt"})
        dump_json(final / "golden.json", meta)
        print(f"{vname}: loss {meta['loss']:.6f} scaling {meta['scaling']} "
              f"reload diff {meta['check']['reload_logits_max_abs_diff']:.1e} "
              f"merge diff {meta['check']['merged_logits_max_abs_diff']:.1e}")
    if args.check and not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
