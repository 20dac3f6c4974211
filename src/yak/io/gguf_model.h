// Decoder models stored as GGUF (llama.cpp's converter output): the architecture's metadata as a
// ModelConfig and the tensors under their Hugging Face names, so one model code runs both.
//
// Names: token_embd → model.embed_tokens, blk.N.attn_q → model.layers.N.self_attn.q_proj, ...,
// output → lm_head (absent: tied). Shapes: ggml lists dimensions fastest first; yak's are the
// reverse. llama-architecture files store q and k with each head's rows interleaved for ggml's
// rotary mode (the converter's permutation); those rows are put back in Hugging Face order (a
// copy of q and k; every other tensor is a view of the mapped file, quantized or not).
#pragma once
#include <filesystem>

#include "yak/io/gguf.h"
#include "yak/io/hf_config.h"
#include "yak/io/safetensors.h"

namespace yak::io {

// True for a path naming a .gguf file (not a folder).
bool is_gguf_path(const std::filesystem::path& p);

// Throws yak::Error naming the file and key for architectures yak does not run (and settings
// it cannot honour, such as llama3 rope stored as rope_freqs).
ModelConfig config_from_gguf(const GgufFile& g);
// The tensors of a GGUF model under Hugging Face names; checks every tensor's type and that the
// data lies inside the file.
WeightStore weights_from_gguf(const GgufFile& g, const ModelConfig& cfg);
// The chat template stored in the file (tokenizer.chat_template), or empty.
std::string gguf_chat_template(const GgufFile& g);

}  // namespace yak::io
