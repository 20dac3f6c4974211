#!/usr/bin/env python3
"""GGUF files written by llama.cpp's own converter (convert_hf_to_gguf.py) from golden
checkpoints: tests/golden/gguf/. Checked by tests/model_gguf_test.cpp, which runs each file in
yak against yak on the Hugging Face folder it came from.

  * qwen2_bpe and llama_bpe: tiny random Qwen2ForCausalLM (q/k/v biases, tied embeddings) and
    LlamaForCausalLM (GQA, untied head) made here with transformers, saved under
    tests/golden/models with the qwen2_chat tokenizer (vocabulary padded to 512 as real
    checkpoints pad theirs), and each as {f32,f16,q8_0}.gguf. llama-architecture files store
    q/k rows interleaved per head by the converter.
  * llama_bpe-split-0000i-of-0000N.gguf: llama_bpe-f32.gguf cut by llama-gguf-split.
  * llama_k-bf16.gguf (a LLaMA with rows of 256, so the K formats apply; its folder is not kept)
    and llama-quantize's llama_k-{q4_0,q4_k_m,q6_k}.gguf from it (no importance matrix): what
    `yak quantize` must reproduce tensor for tensor.

The tiny tokenizer's pre-tokenizer hash is not in the converter's table of known tokenizers, so
the script tells the converter it is Qwen2's (it is: the same regex), nothing else is changed.

    ~/.venvs/yak-golden/bin/python tools/golden/make_gguf_goldens.py --llama-cpp PATH/vendor/llama.cpp
"""
import argparse
import json
import pathlib
import shutil
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODELS = ROOT / "tests" / "golden" / "models"
OUT = ROOT / "tests" / "golden" / "gguf"
TYPES = ["f32", "f16", "q8_0"]


def make_model(kind: str, dst: pathlib.Path, hidden: int = 64, intermediate: int = 160, heads: int = 4):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    src = MODELS / "qwen2_chat"
    torch.manual_seed(20261202)
    common = dict(vocab_size=512, hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=2,
                  num_attention_heads=heads, num_key_value_heads=2, max_position_embeddings=256,
                  rms_norm_eps=1e-6, bos_token_id=None, eos_token_id=4)
    if kind == "llama":
        model = LlamaForCausalLM(LlamaConfig(rope_theta=10000.0, tie_word_embeddings=False, **common))
    else:
        model = Qwen2ForCausalLM(Qwen2Config(rope_theta=1000000.0, tie_word_embeddings=True, **common))
    model = model.eval()
    with torch.no_grad():  # larger scales than HF's init, as the other golden models
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.15 * torch.randn_like(p))
            elif "embed" in name or "lm_head" in name:
                p.normal_(0, 0.3)
            elif name.endswith("bias"):
                p.normal_(0, 0.2)
            else:
                p.normal_(0, 0.15)
    if dst.exists():
        shutil.rmtree(dst)
    model.save_pretrained(dst, safe_serialization=True)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(src / f, dst / f)


PROMPT = [188, 254, 285, 233, 198, 272, 156, 275, 183, 214, 155, 32, 13, 232, 88, 56, 235]


def transformers_greedy(model_dir: pathlib.Path, n: int = 24):
    """transformers' greedy continuation of PROMPT and its logits at the prompt's last position."""
    import torch
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32, attn_implementation="eager").eval()
    with torch.no_grad():
        out = m.generate(torch.tensor([PROMPT]), max_new_tokens=n, do_sample=False, eos_token_id=None,
                         pad_token_id=0)
        last = m(torch.tensor([PROMPT])).logits[0, -1]
    return out[0, len(PROMPT):].tolist(), last.tolist()


def convert(llama_cpp: pathlib.Path, model_dir: pathlib.Path, outtype: str, out: pathlib.Path):
    sys.path.insert(0, str(llama_cpp / "gguf-py"))
    sys.path.insert(0, str(llama_cpp))
    import convert_hf_to_gguf as conv
    from conversion import base

    base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "qwen2"
    argv = sys.argv
    sys.argv = ["convert_hf_to_gguf.py", str(model_dir), "--outfile", str(out), "--outtype", outtype]
    try:
        conv.main()
    finally:
        sys.argv = argv


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-cpp", required=True, help="llama.cpp source tree (vendored in the llama-cpp-python sdist)")
    ap.add_argument("--llama-quantize", required=True, help="llama-quantize built from that tree")
    ap.add_argument("--llama-gguf-split", required=True, help="llama-gguf-split built from that tree")
    args = ap.parse_args()
    llama_cpp = pathlib.Path(args.llama_cpp)
    OUT.mkdir(parents=True, exist_ok=True)
    make_model("llama", MODELS / "llama_bpe")
    make_model("qwen2", MODELS / "qwen2_bpe")
    expected = {}
    for model in ("qwen2_bpe", "llama_bpe"):
        greedy, last = transformers_greedy(MODELS / model)
        expected[model] = {"prompt": PROMPT, "greedy": greedy, "last_logits": last}
        for t in TYPES:
            out = OUT / f"{model}-{t}.gguf"
            convert(llama_cpp, MODELS / model, t, out)
            print(f"{out.relative_to(ROOT)}: {out.stat().st_size} bytes")
    (OUT / "expected.json").write_text(json.dumps(expected) + "\n")

    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        k_dir = pathlib.Path(tmp) / "llama_k"
        make_model("llama", k_dir, hidden=256, intermediate=256, heads=4)
        src = OUT / "llama_k-bf16.gguf"
        convert(llama_cpp, k_dir, "bf16", src)
        for t in ("q4_0", "q4_k_m", "q6_k"):
            out = OUT / f"llama_k-{t}.gguf"
            subprocess.run([args.llama_quantize, str(src), str(out), t.upper()], check=True, capture_output=True)
            print(f"{out.relative_to(ROOT)}: {out.stat().st_size} bytes (llama-quantize)")

    # llama_bpe-f32.gguf split by llama.cpp's gguf-split into files of at most 8 tensors
    for old in OUT.glob("llama_bpe-split-*.gguf"):
        old.unlink()
    subprocess.run([args.llama_gguf_split, "--split", "--split-max-tensors", "8", str(OUT / "llama_bpe-f32.gguf"),
                    str(OUT / "llama_bpe-split")], check=True, capture_output=True)
    for f in sorted(OUT.glob("llama_bpe-split-*.gguf")):
        print(f"{f.relative_to(ROOT)}: {f.stat().st_size} bytes (llama-gguf-split)")


if __name__ == "__main__":
    main()
