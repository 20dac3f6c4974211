#!/usr/bin/env python3
"""Goldens for yak::infer::Sampler (src/yak/infer/sampler.h).

Runs transformers' own RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper,
TopKLogitsWarper, TopPLogitsWarper and MinPLogitsWarper, in the order generate() builds them
(GenerationMixin._get_logits_processor, do_sample=True, min_tokens_to_keep=1), over fixed
random logit rows. Frequency/presence penalties have no transformers processor; their
reference is a numpy transcription of OpenAI's formula, applied right after the repetition
penalty (the sampler's order).

Writes tests/golden/sampler/processors.json. Removed tokens (-inf) are written as the string
"-inf" because JSON has no infinity. Every float parameter is rounded to float32 first, so the
C++ side (float params) sees the same values.

    python tools/golden/make_sampler_goldens.py
"""
import json
import pathlib

import numpy as np
import torch
import transformers
from transformers.generation.logits_process import (
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

VOCAB = 1000
OUT = pathlib.Path(__file__).resolve().parents[2] / "tests" / "golden" / "sampler" / "processors.json"


def f32(x):
    return float(np.float32(x))


def make_rows(rng):
    rows = {}
    rows["normal"] = (rng.standard_normal(VOCAB) * 3.0).astype(np.float32)
    # Ties everywhere: values on a coarse grid, and a 6-way tie at the very top.
    ties = np.round(rng.standard_normal(VOCAB) * 2.0).astype(np.float32)
    ties[[7, 100, 333, 500, 501, 999]] = 9.0
    rows["ties"] = ties
    peaked = (rng.standard_normal(VOCAB) * 2.0).astype(np.float32)
    peaked[123] = 30.0
    rows["peaked"] = peaked
    rows["flat"] = (rng.standard_normal(VOCAB) * 0.1).astype(np.float32)
    masked = (rng.standard_normal(VOCAB) * 3.0).astype(np.float32)
    masked[rng.choice(VOCAB, 200, replace=False)] = -np.inf  # e.g. a grammar mask
    rows["masked"] = masked
    return rows


# Parameter sets. Keys mirror yak::infer::SamplingParams.
PARAMS = [
    dict(name="greedy_rep", do_sample=False, repetition_penalty=1.3),
    dict(name="temp_topk", do_sample=True, temperature=0.7, top_k=50),
    dict(name="topp", do_sample=True, top_p=0.9),
    dict(name="all", do_sample=True, temperature=1.3, top_k=40, top_p=0.8, min_p=0.05,
         repetition_penalty=1.2),
    dict(name="minp", do_sample=True, temperature=0.8, min_p=0.1),
    dict(name="topk_small", do_sample=True, top_k=3),
    dict(name="topk1", do_sample=True, top_k=1, repetition_penalty=1.5),
    dict(name="topp_tiny", do_sample=True, top_p=0.01),
    dict(name="freq_pres", do_sample=True, temperature=0.9, top_p=0.95, repetition_penalty=1.1,
         frequency_penalty=0.5, presence_penalty=0.3),
    dict(name="freq_only_greedy", do_sample=False, frequency_penalty=1.5, presence_penalty=-0.25),
]
DEFAULTS = dict(do_sample=False, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0,
                repetition_penalty=1.0, frequency_penalty=0.0, presence_penalty=0.0)


def topp_reference(scores, top_p):
    """The sampler's documented top-p rule (ties: lower id ranks first), for checking that no
    golden case depends on torch.sort's unspecified order of ties."""
    s = scores.astype(np.float64)
    finite = np.isfinite(s)
    p = np.zeros_like(s)
    p[finite] = np.exp(s[finite] - s[finite].max())
    p /= p.sum()
    order = np.lexsort((np.arange(len(s)), -s))  # descending value, ascending id
    above = np.concatenate([[0.0], np.cumsum(p[order])[:-1]])
    keep_sorted = (1.0 - above) > (1.0 - top_p)
    keep_sorted[0] = True
    keep = np.zeros(len(s), bool)
    keep[order] = keep_sorted
    return keep


def run_case(row, history, n_generated, prm, tie_note):
    p = dict(DEFAULTS, **prm)
    scores = torch.tensor(row, dtype=torch.float32).unsqueeze(0)
    ids = torch.tensor(history, dtype=torch.long).unsqueeze(0)
    if p["repetition_penalty"] != 1.0:
        scores = RepetitionPenaltyLogitsProcessor(f32(p["repetition_penalty"]))(ids, scores)
    # OpenAI: logit[j] -= c[j] * frequency_penalty + (c[j] > 0) * presence_penalty, over
    # generated tokens only. float32 arithmetic, the sampler's grouping.
    s = scores.squeeze(0).numpy().copy()
    gen = np.array(history[len(history) - n_generated:], dtype=np.int64)
    counts = np.bincount(gen, minlength=VOCAB).astype(np.float32)
    fp, pp = np.float32(p["frequency_penalty"]), np.float32(p["presence_penalty"])
    if fp != 0 or pp != 0:
        pen = counts * fp + (counts > 0).astype(np.float32) * pp
        s = np.where(counts > 0, s - pen, s).astype(np.float32)
    scores = torch.from_numpy(s).unsqueeze(0)
    if p["do_sample"] and p["temperature"] > 0:
        # Order and conditions copied from GenerationMixin._get_logits_processor.
        if p["temperature"] != 1.0:
            scores = TemperatureLogitsWarper(f32(p["temperature"]))(ids, scores)
        if p["top_k"] != 0:
            scores = TopKLogitsWarper(top_k=int(p["top_k"]), min_tokens_to_keep=1)(ids, scores)
        if p["top_p"] < 1.0:
            before = scores.squeeze(0).numpy().copy()
            scores = TopPLogitsWarper(top_p=f32(p["top_p"]), min_tokens_to_keep=1)(ids, scores)
            kept = np.isfinite(scores.squeeze(0).numpy())
            ref = topp_reference(before, f32(p["top_p"])) & np.isfinite(before)
            if not (kept == ref).all():
                # torch.sort is not stable, so which of several tied tokens at the cut survive
                # is arbitrary in transformers. Accept only that difference (same count, same
                # set outside the tied value) and record the sampler's rule (lower id first).
                cut = before[kept != ref]
                assert kept.sum() == ref.sum() and (cut == cut[0]).all(), f"top-p mismatch: {prm}"
                tie_note.append(float(cut[0]))
                fixed = before.copy()
                fixed[~ref] = -np.inf
                scores = torch.from_numpy(fixed).unsqueeze(0)
        if p["min_p"] > 0.0:
            scores = MinPLogitsWarper(min_p=f32(p["min_p"]), min_tokens_to_keep=1)(ids, scores)
    probs = torch.softmax(scores, dim=-1).squeeze(0).numpy()
    out = scores.squeeze(0).numpy()
    return p, out, probs, int(torch.argmax(scores, dim=-1).item())


def enc(v):
    # Shortest text that reads back as the same float32 (C++ parses double, then casts).
    return ["-inf" if np.isneginf(x) else float(str(x)) for x in np.asarray(v, np.float32)]


def main():
    rng = np.random.default_rng(20240611)
    rows = make_rows(rng)
    cases = []
    for rname, row in rows.items():
        # Prompt + generated ids, with repeats; a few of them near the top logits so the
        # penalties move the top of the distribution.
        top = list(np.argsort(-row.astype(np.float64), kind="stable")[:5])
        prompt = [int(x) for x in rng.integers(0, VOCAB, 30)] + [int(top[0])]
        generated = [int(x) for x in rng.integers(0, VOCAB, 12)] + [int(top[1])] * 3 + [int(top[2])]
        history = prompt + generated
        for prm in PARAMS:
            tie_note = []
            p, out, probs, am = run_case(row, history, len(generated), prm, tie_note)
            cases.append(dict(
                name=f"{rname}/{prm['name']}",
                params={k: (f32(v) if isinstance(v, float) else v) for k, v in p.items()},
                row=rname,
                history=history,
                n_generated=len(generated),
                processed=enc(out),
                probs=enc(probs),
                argmax=am,
                kept=int(np.isfinite(out).sum()),
                top_p_tie_at_cut=bool(tie_note),
            ))
    doc = dict(
        note=("Made by tools/golden/make_sampler_goldens.py with transformers "
              f"{transformers.__version__}, torch {torch.__version__}. '-inf' = removed token. "
              "processed = logits after penalties and (if do_sample) warpers; "
              "probs = softmax(processed). top_p_tie_at_cut: transformers' choice among tied tokens "
              "at the top-p cut is arbitrary (unstable torch.sort); those cases record the "
              "sampler's rule (lower id ranks first), with the same number of tokens kept."),
        vocab=VOCAB,
        rows={k: enc(v) for k, v in rows.items()},
        cases=cases,
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    for c in cases:
        print(f"{c['name']:28s} kept {c['kept']:4d} argmax {c['argmax']}"
              + ("  (top-p cut inside a tie: sampler's rule recorded)" if c["top_p_tie_at_cut"] else ""))
    print("wrote", OUT, OUT.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
