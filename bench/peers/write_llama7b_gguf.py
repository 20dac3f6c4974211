"""Write a random LLaMA-2-7B-shaped model as an f16 GGUF, the way llama.cpp's converter lays it out.

The metadata and vocabulary are those of llama.cpp's own LLaMA vocabulary file
(ggml-vocab-llama-spm.gguf: 32 layers, hidden 4096, intermediate 11008, 32 heads, vocab 32000);
the tensors are normal(0, 0.02) (norms 1.0), written one at a time so memory stays small.
llama-quantize then makes the Q4_K_M file both programs run.

    python write_llama7b_gguf.py VOCAB.gguf OUT.gguf
"""

import sys

import gguf
import numpy as np


def main() -> None:
    vocab_path, out_path = sys.argv[1], sys.argv[2]
    reader = gguf.GGUFReader(vocab_path)
    fields = {k: f for k, f in reader.fields.items() if not k.startswith("GGUF.")}

    def value(key):
        return fields[key].contents()

    n_layer = value("llama.block_count")
    n_embd = value("llama.embedding_length")
    n_ff = value("llama.feed_forward_length")
    n_head = value("llama.attention.head_count")
    n_kv = value("llama.attention.head_count_kv")
    n_vocab = len(value("tokenizer.ggml.tokens"))
    head_dim = n_embd // n_head

    writer = gguf.GGUFWriter(out_path, arch="llama")
    for key, field in fields.items():
        if key == "general.architecture":
            continue
        main_type = field.types[0]
        if main_type == gguf.GGUFValueType.ARRAY:
            writer.add_key_value(key, field.contents(), main_type, sub_type=field.types[-1])
        else:
            writer.add_key_value(key, field.contents(), main_type)
    writer.add_rope_freq_base(10000.0)

    # (name, numpy shape = [rows, cols], f16 or f32 norm)
    tensors = [("token_embd.weight", (n_vocab, n_embd), False)]
    for layer in range(n_layer):
        p = f"blk.{layer}."
        tensors += [
            (p + "attn_norm.weight", (n_embd,), True),
            (p + "attn_q.weight", (n_head * head_dim, n_embd), False),
            (p + "attn_k.weight", (n_kv * head_dim, n_embd), False),
            (p + "attn_v.weight", (n_kv * head_dim, n_embd), False),
            (p + "attn_output.weight", (n_embd, n_head * head_dim), False),
            (p + "ffn_norm.weight", (n_embd,), True),
            (p + "ffn_gate.weight", (n_ff, n_embd), False),
            (p + "ffn_up.weight", (n_ff, n_embd), False),
            (p + "ffn_down.weight", (n_embd, n_ff), False),
        ]
    tensors += [("output_norm.weight", (n_embd,), True), ("output.weight", (n_vocab, n_embd), False)]

    for name, shape, norm in tensors:
        dtype = np.float32 if norm else np.float16
        writer.add_tensor_info(name, shape, np.dtype(dtype), int(np.prod(shape)) * np.dtype(dtype).itemsize)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    rng = np.random.default_rng(7)
    for i, (name, shape, norm) in enumerate(tensors):
        if norm:
            data = np.ones(shape, dtype=np.float32)
        else:
            data = (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float16)
        writer.write_tensor_data(data)
        if i % 45 == 0:
            print(f"write_llama7b_gguf: {i + 1}/{len(tensors)} tensors", file=sys.stderr, flush=True)
    writer.close()


if __name__ == "__main__":
    main()
