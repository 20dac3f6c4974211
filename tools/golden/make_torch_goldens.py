"""PyTorch .bin checkpoints written by torch.save, for yak's restricted reader (io/torch_pickle).

Writes tests/golden/torch/:
  tensors.bin + tensors.safetensors   every dtype a state dict holds (f32, f16, bf16, f64, i64,
                                      i32, i16, i8, u8, bool), a scalar, an empty tensor, a
                                      transposed (strided) tensor, a slice at a storage offset,
                                      two names sharing one storage, Parameters; the .safetensors
                                      holds the same values laid out contiguously (the expectation)
  wrapped.bin                          {"state_dict": {...}, "epoch": 3} as training scripts save
  llama_bf16_bin/                      tests/golden/models/llama_bf16 as pytorch_model.bin
                                       (model.state_dict() of transformers' model, so it carries
                                       _metadata as every HF .bin does)
  llama_mha_f32_sharded_bin/           tests/golden/models/llama_mha_f32 as two shards +
                                       pytorch_model.bin.index.json (HF's sharded .bin layout)
  lora_modules_to_save_bin/            tests/golden/lora/llama_mha_f32_modules_to_save saved by
                                       PEFT with safe_serialization=False (adapter_model.bin)
  malicious_system.bin                 a pickle that would call os.system (posix.system) on load
  malicious_eval.bin                   ... builtins.eval
  malicious_object.bin                 ... an instance of a class of the writer's program
  legacy.bin                           the pre-1.6 format (_use_new_zipfile_serialization=False)

Every model folder is reloaded with transformers (or PEFT) from the .bin and must give the
logits of the safetensors folder it came from bit for bit; the test then asks the same of yak.

Run: ~/.venvs/yak-golden/bin/python tools/golden/make_torch_goldens.py
"""
import json
import os
import shutil
import sys

import torch
from safetensors.torch import load_file, save_file

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
OUT = os.path.join(ROOT, "tests", "golden", "torch")
MODELS = os.path.join(ROOT, "tests", "golden", "models")
LORA = os.path.join(ROOT, "tests", "golden", "lora")


class Evil:
    """Pickles as a call to a dangerous function; yak must refuse it without calling it."""

    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return (self.fn, (self.arg,))


class Opaque:
    """A plain object of this script: pickles as copyreg reconstruction of a foreign class."""

    def __init__(self):
        self.x = 1


def tensors():
    g = torch.Generator().manual_seed(20261203)
    t = {}
    t["f32"] = torch.randn(3, 5, generator=g)
    t["f16"] = torch.randn(4, 3, generator=g).half()
    t["bf16"] = torch.randn(2, 7, generator=g).bfloat16()
    t["f64"] = torch.randn(6, generator=g).double()
    t["i64"] = torch.randint(-(2**40), 2**40, (5,), generator=g)
    t["i32"] = torch.randint(-(2**30), 2**30, (2, 3), generator=g, dtype=torch.int32)
    t["i16"] = torch.randint(-30000, 30000, (4,), generator=g, dtype=torch.int16)
    t["i8"] = torch.randint(-128, 128, (9,), generator=g, dtype=torch.int8)
    t["u8"] = torch.randint(0, 256, (3, 3), generator=g, dtype=torch.uint8)
    t["bool"] = torch.randint(0, 2, (7,), generator=g).bool()
    t["scalar"] = torch.tensor(3.25)
    t["empty"] = torch.zeros(0, 4)
    big = torch.randn(6, 8, generator=g)
    t["transposed"] = big.t()  # strides (1, 8): stored as the whole storage, read strided
    t["slice_offset"] = big[2:4]  # storage offset 16, contiguous
    t["col_slice"] = big[:, 3:5]  # offset 3, strides (8, 1)
    t["tied_a"] = big  # same storage as the three views above
    t["param"] = torch.nn.Parameter(torch.randn(2, 2, generator=g))
    t["grad_param"] = torch.nn.Parameter(torch.randn(3, generator=g), requires_grad=True)
    t["rank4"] = torch.randn(2, 1, 3, 2, generator=g)
    return t


def check_logits(model, reference, golden_dir, where):
    """The .bin folder must give exactly the logits of the safetensors folder it came from."""
    with open(os.path.join(golden_dir, "golden.json")) as f:
        prompts = json.load(f)["prompts"]
    for i, p in enumerate(prompts):
        ids = torch.tensor(p)[None]
        with torch.no_grad():
            out = model(ids).logits[0]
            want = reference(ids).logits[0]
        if not torch.equal(out, want):
            sys.exit(f"{where}: logits of prompt {i} differ from {golden_dir} (max {(out - want).abs().max()})")
    i = len(prompts)
    print(f"{where}: {i} prompts give the safetensors folder's logits bit for bit")


def copy_configs(src, dst):
    os.makedirs(dst, exist_ok=True)
    for f in ("config.json", "generation_config.json"):
        if os.path.exists(os.path.join(src, f)):
            shutil.copy(os.path.join(src, f), os.path.join(dst, f))


def model_bins():
    from transformers import AutoModelForCausalLM

    # One file.
    src = os.path.join(MODELS, "llama_bf16")
    dst = os.path.join(OUT, "llama_bf16_bin")
    copy_configs(src, dst)
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.bfloat16, attn_implementation="eager")
    sd = model.state_dict()
    sd.pop("lm_head.weight", None) if model.config.tie_word_embeddings else None
    torch.save(sd, os.path.join(dst, "pytorch_model.bin"))
    back = AutoModelForCausalLM.from_pretrained(dst, dtype=torch.float32, attn_implementation="eager")
    ref = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32, attn_implementation="eager")
    check_logits(back, ref, src, dst)

    # Two shards and an index, as save_pretrained wrote them before safetensors.
    src = os.path.join(MODELS, "llama_mha_f32")
    dst = os.path.join(OUT, "llama_mha_f32_sharded_bin")
    copy_configs(src, dst)
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32, attn_implementation="eager")
    sd = model.state_dict()
    names = list(sd)
    half = len(names) // 2
    shards = [names[:half], names[half:]]
    weight_map, total = {}, 0
    for k, part in enumerate(shards):
        fname = f"pytorch_model-{k + 1:05d}-of-{len(shards):05d}.bin"
        torch.save({n: sd[n] for n in part}, os.path.join(dst, fname))
        for n in part:
            weight_map[n] = fname
            total += sd[n].numel() * sd[n].element_size()
    with open(os.path.join(dst, "pytorch_model.bin.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    back = AutoModelForCausalLM.from_pretrained(dst, dtype=torch.float32, attn_implementation="eager")
    ref = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32, attn_implementation="eager")
    check_logits(back, ref, src, dst)


def lora_bin():
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    src = os.path.join(LORA, "llama_mha_f32_modules_to_save")
    dst = os.path.join(OUT, "lora_modules_to_save_bin")
    base = AutoModelForCausalLM.from_pretrained(os.path.join(MODELS, "llama_mha_f32"), dtype=torch.float32,
                                                attn_implementation="eager")
    model = PeftModel.from_pretrained(base, src)
    if os.path.exists(dst):
        shutil.rmtree(dst)
    model.save_pretrained(dst, safe_serialization=False)
    assert os.path.exists(os.path.join(dst, "adapter_model.bin")), os.listdir(dst)
    os.remove(os.path.join(dst, "README.md")) if os.path.exists(os.path.join(dst, "README.md")) else None
    base = AutoModelForCausalLM.from_pretrained(os.path.join(MODELS, "llama_mha_f32"), dtype=torch.float32,
                                                attn_implementation="eager")
    back = PeftModel.from_pretrained(base, dst)
    back.eval()
    base2 = AutoModelForCausalLM.from_pretrained(os.path.join(MODELS, "llama_mha_f32"), dtype=torch.float32,
                                                 attn_implementation="eager")
    ref = PeftModel.from_pretrained(base2, src)
    ref.eval()
    check_logits(back, ref, src, dst)


def main():
    os.makedirs(OUT, exist_ok=True)
    t = tensors()
    torch.save(t, os.path.join(OUT, "tensors.bin"))
    save_file({k: v.detach().contiguous().clone() for k, v in t.items()}, os.path.join(OUT, "tensors.safetensors"))
    back = torch.load(os.path.join(OUT, "tensors.bin"), weights_only=True)
    for k, v in t.items():
        assert torch.equal(back[k], v), k

    inner = {k: t[k] for k in ("f32", "bf16", "i64")}
    torch.save({"state_dict": inner, "epoch": 3, "note": "wrapped"}, os.path.join(OUT, "wrapped.bin"))

    marker = "/tmp/yak-torch-pickle-was-executed"
    torch.save({"w": t["f32"], "x": Evil(os.system, f"touch {marker}")}, os.path.join(OUT, "malicious_system.bin"))
    torch.save({"w": t["f32"], "x": Evil(eval, f"open('{marker}', 'w')")}, os.path.join(OUT, "malicious_eval.bin"))
    torch.save({"w": t["f32"], "x": Opaque()}, os.path.join(OUT, "malicious_object.bin"))
    torch.save({"w": t["f32"]}, os.path.join(OUT, "legacy.bin"), _use_new_zipfile_serialization=False)
    for name in ("malicious_system.bin", "malicious_eval.bin", "malicious_object.bin"):
        try:
            torch.load(os.path.join(OUT, name), weights_only=True)
            sys.exit(f"{name}: torch's own weights_only loader accepted it")
        except Exception as e:  # noqa: BLE001 — torch refuses it too: the file is a fair test
            print(f"{name}: torch.load(weights_only=True) refuses it too ({type(e).__name__})")

    model_bins()
    lora_bin()
    print(f"wrote {OUT} with torch {torch.__version__}")


if __name__ == "__main__":
    main()
