"""Chinese-LLaMA-Alpaca-2's NTK rope scaling (scripts/attn_and_long_ctx_patches.py, its --alpha):
the inverse frequencies its patched LlamaRotaryEmbedding uses, transcribed in torch as that
script computes them (float32 exponents, Python-float base):

  alpha a (a number):  base' = base * a ** (dim / (dim - 2)), at every length
  alpha "auto":        at seq_len > max_position_embeddings,
                       a = (seq_len / (max_position_embeddings / 2) - 1) * AUTO_COEFF (1.0),
                       base' = base * a ** (dim / (dim - 2)); below it the plain base

  inv_freq = 1 / (base' ** (arange(0, dim, 2).float() / dim))

The patch itself targets transformers 4.3x (it replaces LlamaRotaryEmbedding.__init__), so the
formula is transcribed rather than imported. Writes tests/golden/rope/ntk_alpha.json, read by
tests/model_rope_ntk_test.cpp.

Run: ~/.venvs/yak-golden/bin/python tools/golden/make_rope_ntk_goldens.py
"""
import json
import os

import torch

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "golden", "rope", "ntk_alpha.json")
AUTO_COEFF = 1.0


def inv_freq(base, dim):
    return (1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))).tolist()


def main():
    cases = []
    for base, dim in ((10000.0, 128), (10000.0, 64), (1000000.0, 16)):
        for alpha in (1.0, 2.0, 4.5):
            cases.append({"alpha": str(alpha), "theta": base, "head_dim": dim, "max_position_embeddings": 4096,
                          "seq_len": 100, "inv_freq": inv_freq(base * alpha ** (dim / (dim - 2)), dim)})
        for seq_len in (1000, 4096, 4097, 9000, 20000):
            m = 4096
            if seq_len > m:
                a = (seq_len / (m / 2) - 1) * AUTO_COEFF
                b = base * a ** (dim / (dim - 2))
            else:
                b = base
            cases.append({"alpha": "auto", "theta": base, "head_dim": dim, "max_position_embeddings": m,
                          "seq_len": seq_len, "inv_freq": inv_freq(b, dim)})
    with open(OUT, "w") as f:
        json.dump({"source": "Chinese-LLaMA-Alpaca-2 scripts/attn_and_long_ctx_patches.py (transcribed)",
                   "torch": torch.__version__, "cases": cases}, f, indent=1)
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
