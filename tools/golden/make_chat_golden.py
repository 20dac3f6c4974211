"""End-to-end chat golden: a tiny random Qwen2 model that carries a real tokenizer and chat template.

transformers renders the conversation with the Jinja ChatML template, tokenizes it with the tiny
byte-level BPE tokenizer (tests/golden/tokenizer/tiny_bpe.json), generates greedily (stopping at
<|im_end|>) and decodes. The C++ CLI must print the same text from the same folder:
template, tokenizer, engine, EOS handling and detokenizer checked together.

Run: python tools/golden/make_chat_golden.py   (venv from tools/golden/README.md)
Writes tests/golden/models/qwen2_chat/ (HF folder + chat_golden.json).
"""
import json
import shutil
import sys
from pathlib import Path

import torch
import transformers
from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from make_model_goldens import reinit_, top2_margin  # noqa: E402
from make_tokenizer_goldens import QWEN2_TEMPLATE  # noqa: E402

ROOT = HERE.parents[1]
OUT = ROOT / "tests" / "golden" / "models" / "qwen2_chat"
CONVERSATIONS = [
    [{"role": "user", "content": "Hello, yak! 你好"}],
    [{"role": "system", "content": "You are terse."},
     {"role": "user", "content": "Count: 1 2 3"},
     {"role": "assistant", "content": "4 5 6"},
     {"role": "user", "content": "Again?"}],
]
NEW_TOKENS = 24


def build(seed, tok):
    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      tie_word_embeddings=True, use_sliding_window=False, rope_theta=1000000.0,
                      rms_norm_eps=1e-6, bos_token_id=None, eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
                      pad_token_id=tok.convert_tokens_to_ids("<|pad|>"))
    model = Qwen2ForCausalLM(cfg).eval()
    reinit_(model, seed)
    return model


def run(model, tok, conv):
    text = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    gc = GenerationConfig(do_sample=False, max_new_tokens=NEW_TOKENS, eos_token_id=model.config.eos_token_id,
                          pad_token_id=model.config.pad_token_id)
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             generation_config=gc, output_logits=True, return_dict_in_generate=True)
    new = out.sequences[0, len(ids):].tolist()
    margin = min(top2_margin(l[0]) for l in out.logits)
    return text, ids, new, margin


def main():
    tok = PreTrainedTokenizerFast(tokenizer_file=str(ROOT / "tests/golden/tokenizer/tiny_bpe.json"),
                                  eos_token="<|im_end|>", pad_token="<|pad|>")
    tok.chat_template = QWEN2_TEMPLATE
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    for seed in range(200):
        model = build(seed, tok)
        results = [run(model, tok, c) for c in CONVERSATIONS]
        ok = all(m >= 2e-3 and len(set(n)) >= 6 and len(n) >= 8 for _, _, n, m in results)
        if ok:
            break
    else:
        raise SystemExit("no seed gave well-separated greedy continuations")
    if OUT.exists():
        shutil.rmtree(OUT)
    model.save_pretrained(OUT)
    tok.save_pretrained(OUT)
    cases = []
    for conv, (text, ids, new, margin) in zip(CONVERSATIONS, results):
        stopped = bool(new) and new[-1] == eos
        gen = new[:-1] if stopped else new
        cases.append({"messages": conv, "prompt_text": text, "prompt_ids": ids, "greedy_ids": gen,
                      "finish": "stop" if stopped else "length",
                      "greedy_text": tok.decode(gen, skip_special_tokens=True), "min_top2_margin": margin})
    golden = {"seed": seed, "max_new_tokens": NEW_TOKENS, "cases": cases,
              "versions": {"torch": torch.__version__, "transformers": transformers.__version__}}
    (OUT / "chat_golden.json").write_text(json.dumps(golden, ensure_ascii=False, indent=1) + "\n")
    for c in cases:
        print(repr(c["greedy_text"]), c["finish"], len(c["greedy_ids"]))


if __name__ == "__main__":
    main()
