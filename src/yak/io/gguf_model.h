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
#include <functional>
#include <optional>
#include <string_view>

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
// The same over the files of a split model (gguf-split's NAME-0000i-of-0000N.gguf).
WeightStore weights_from_gguf(const std::vector<GgufFile>& files, const ModelConfig& cfg);
// The file a path names, or all of a split model's files when it names one of them (metadata
// split.count > 1; the siblings are found by name, each checked for its split.no and count).
std::vector<GgufFile> open_gguf_model(const std::filesystem::path& path);
// The chat template stored in the file (tokenizer.chat_template), or empty.
std::string gguf_chat_template(const GgufFile& g);

// What `yak convert --type` and `yak quantize` write, with llama.cpp's names and
// general.file_type ids.
enum class GgufFileType { F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K_M, Q5_K_M, Q6_K };
std::optional<GgufFileType> gguf_file_type_from_name(std::string_view name);  // "f32", "q4_k_m", ...
const char* gguf_file_type_name(GgufFileType t);
// The type a tensor gets in a file of type ft: 1-D tensors f32; the rest the file's base type,
// with llama.cpp's mixture rules (llama-quantize without an importance matrix): the output
// matrix (or the tied embeddings) Q6_K in every quantized file but Q8_0; Q4_K_M / Q5_K_M give
// attn_v and ffn_down Q6_K in the layers use_more_bits picks (the first and last eighth, and
// every third between); a type whose block does not divide the row falls back as llama.cpp's
// does (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, then f16).
DType gguf_tensor_type(GgufFileType ft, const std::string& gguf_name, int64_t layer, int64_t n_layers, int64_t row,
                       bool tied);
// Adds general.* and the architecture's metadata and every model tensor (GGUF names, llama's
// q/k rows interleaved as llama.cpp's converter does, each converted to its type) to w.
// `progress` (may be null) is called after each tensor.
class GgufWriter;
void add_gguf_model(GgufWriter& w, const ModelConfig& cfg, const WeightStore& store, GgufFileType ft,
                    const std::string& name, const std::function<void(size_t done, size_t total)>& progress);

}  // namespace yak::io
