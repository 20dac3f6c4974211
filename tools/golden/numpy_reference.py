#!/usr/bin/env python3
"""Independent numpy forward of the model goldens, written from the README's description only.

It proves that README.md ("What transformers 5.23 computes") is complete: if this float64
transcription matches logits_<i> for every folder, so can the C++ engine.
Run: python tools/golden/numpy_reference.py
"""

import json
import math
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

ROOT = Path(__file__).resolve().parents[2] / "tests" / "golden" / "models"


def load_weights(folder):
    w = {}
    for f in sorted(folder.glob("model*.safetensors")):
        try:
            w.update({k: v.astype(np.float64) for k, v in load_file(str(f)).items()})
        except TypeError:  # numpy has no bfloat16: go through torch
            import torch
            from safetensors.torch import load_file as tload
            w.update({k: v.double().numpy() for k, v in tload(str(f)).items()})
    return w


def rope_params(cfg):
    rp = dict(cfg.get("rope_parameters") or cfg.get("rope_scaling") or {})
    rp.setdefault("rope_theta", cfg.get("rope_theta", 10000.0))
    rp["rope_type"] = rp.get("rope_type", rp.get("type", "default"))
    return rp


def inv_freq(cfg, d, seq_len):
    rp = rope_params(cfg)
    base, t = rp["rope_theta"], rp["rope_type"]
    i = np.arange(0, d, 2) / d
    inv = 1.0 / base**i
    if t == "default":
        return inv, 1.0
    if t == "linear":
        return inv / rp["factor"], 1.0
    if t == "dynamic":
        m = cfg["max_position_embeddings"]
        n = max(seq_len, m)
        f = rp["factor"]
        b = base * (f * n / m - (f - 1)) ** (d / (d - 2))
        return 1.0 / b**i, 1.0
    if t == "llama3":
        f, lo, hi, orig = rp["factor"], rp["low_freq_factor"], rp["high_freq_factor"], rp["original_max_position_embeddings"]
        wl = 2 * math.pi / inv
        s = (orig / wl - lo) / (hi - lo)
        out = np.where(wl < orig / hi, inv, np.where(wl > orig / lo, inv / f, (1 - s) * inv / f + s * inv))
        return out, 1.0
    if t == "yarn":
        f, orig = rp["factor"], rp["original_max_position_embeddings"]
        bf, bs = rp.get("beta_fast") or 32, rp.get("beta_slow") or 1
        corr = lambda n: d * math.log(orig / (n * 2 * math.pi)) / (2 * math.log(base))  # noqa: E731
        low, high = corr(bf), corr(bs)
        if rp.get("truncate", True):
            low, high = math.floor(low), math.ceil(high)
        low, high = max(low, 0), min(high, d - 1)
        if low == high:
            high += 0.001
        ramp = np.clip((np.arange(d // 2) - low) / (high - low), 0, 1)
        pos = base**i
        att = rp.get("attention_factor") or (0.1 * math.log(f) + 1 if f > 1 else 1.0)
        return (1 / (f * pos)) * ramp + (1 / pos) * (1 - ramp), att
    raise ValueError(t)


def rms(x, w, eps):
    return w * (x / np.sqrt((x * x).mean(-1, keepdims=True) + eps))


def rope(x, cos, sin):
    h = x.shape[-1] // 2
    return x * cos + np.concatenate([-x[..., h:], x[..., :h]], -1) * sin


def head_dim(cfg):
    return cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]


def forward(cfg, w, ids, rot_len=None):
    """rot_len[p]: the sequence length whose inv_freq rotates position p (dynamic rope only;
    default: len(ids) for every position, i.e. a no-cache forward)."""
    L = len(ids)
    H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = head_dim(cfg)
    eps = cfg["rms_norm_eps"]
    qwen3 = cfg["model_type"] == "qwen3"
    rot_len = rot_len or [L] * L
    att = inv_freq(cfg, hd, L)[1]
    rows = [p * inv_freq(cfg, hd, n)[0] for p, n in enumerate(rot_len)]
    emb = np.concatenate([np.array(rows)] * 2, -1)  # [L, hd]
    cos, sin = np.cos(emb)[:, None] * att, np.sin(emb)[:, None] * att
    mask = np.triu(np.full((L, L), -np.inf), 1)
    h = w["model.embed_tokens.weight"][ids]
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        lin = lambda name, x: x @ w[p + name + ".weight"].T + w.get(p + name + ".bias", 0)  # noqa: E731
        x = rms(h, w[p + "input_layernorm.weight"], eps)
        q = lin("self_attn.q_proj", x).reshape(L, H, hd)
        k = lin("self_attn.k_proj", x).reshape(L, KV, hd)
        v = lin("self_attn.v_proj", x).reshape(L, KV, hd)
        if qwen3:
            q = rms(q, w[p + "self_attn.q_norm.weight"], eps)
            k = rms(k, w[p + "self_attn.k_norm.weight"], eps)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        out = np.empty((L, H, hd))
        for head in range(H):
            kv = head // (H // KV)
            s = q[:, head] @ k[:, kv].T / math.sqrt(hd) + mask
            s = np.exp(s - s.max(-1, keepdims=True))
            out[:, head] = (s / s.sum(-1, keepdims=True)) @ v[:, kv]
        h = h + lin("self_attn.o_proj", out.reshape(L, H * hd))
        x = rms(h, w[p + "post_attention_layernorm.weight"], eps)
        g = lin("mlp.gate_proj", x)
        h = h + lin("mlp.down_proj", g / (1 + np.exp(-g)) * lin("mlp.up_proj", x))
    h = rms(h, w["model.norm.weight"], eps)
    return h @ w.get("lm_head.weight", w["model.embed_tokens.weight"]).T


def main():
    worst_all = 0.0
    for folder in sorted(p for p in ROOT.iterdir() if (p / "golden.json").exists()):
        cfg = json.loads((folder / "config.json").read_text())
        golden = json.loads((folder / "golden.json").read_text())
        w = load_weights(folder)
        t = load_file(str(folder / "logits.safetensors"))
        worst = 0.0
        for i, ids in enumerate(golden["prompts"]):
            worst = max(worst, float(np.abs(forward(cfg, w, ids) - t[f"logits_{i}"]).max()))
        print(f"{folder.name:22s} max |numpy f64 - golden| = {worst:.2e}")
        if rope_params(cfg)["rope_type"] == "dynamic":
            # Cached generation: the prompt is rotated with dyn(L); the token at position p >= L
            # with dyn(p + 1); cached keys are never re-rotated.
            for i, ids in enumerate(golden["prompts"]):
                seq = list(ids)
                for _ in range(len(golden["greedy"][i])):
                    rot = [len(ids)] * len(ids) + list(range(len(ids) + 1, len(seq) + 1))
                    seq.append(int(forward(cfg, w, seq, rot)[-1].argmax()))
                assert seq[len(ids):] == golden["greedy"][i], f"dynamic cached greedy {i}"
                seq = list(ids)
                for _ in range(len(golden["greedy_nocache"][i])):
                    seq.append(int(forward(cfg, w, seq)[-1].argmax()))
                assert seq[len(ids):] == golden["greedy_nocache"][i], f"dynamic no-cache greedy {i}"
            print(f"{folder.name:22s} greedy (cached) and greedy_nocache reproduced")
        worst_all = max(worst_all, worst)
    assert worst_all < 1e-3, worst_all


if __name__ == "__main__":
    main()
