// Tokenizers built from a GGUF file's tokenizer.ggml.* metadata: "gpt2" (byte-level BPE with
// the pre-tokenizer named by tokenizer.ggml.pre), "llama" (score-based SentencePiece BPE with
// byte fallback) and "bert" (WordPiece).
#pragma once
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "yak/io/gguf.h"
#include "yak/io/gguf_writer.h"
#include "yak/io/hf_config.h"
#include "yak/tokenizer/tokenizer.h"

namespace yak::tok {

// Throws yak::Error naming the file and the metadata key when the vocabulary is missing,
// inconsistent or of an unsupported kind.
std::unique_ptr<Tokenizer> tokenizer_from_gguf(const io::GgufFile& gguf);
std::unique_ptr<Tokenizer> load_gguf_tokenizer(const std::filesystem::path& path);

// Regexes (applied in sequence) for a tokenizer.ggml.pre name; throws for unknown names.
// Writes the tokenizer of a Hugging Face folder (tokenizer.json or tokenizer.model, with
// tokenizer_config.json) as tokenizer.ggml.* metadata, padded to cfg.vocab_size as llama.cpp's
// converter pads.
void add_gguf_vocab(io::GgufWriter& w, const std::filesystem::path& dir, const io::ModelConfig& cfg);
// The byte-level BPE description of a "gpt2" GGUF vocabulary (Error for other models).
struct BpeSpec;
BpeSpec bpe_spec_from_gguf(const io::GgufFile& g);
// tokenizer.json and tokenizer_config.json in `dir` for a GGUF file's byte-level BPE vocabulary,
// as transformers' tokenizers read them (Error naming the model for other vocabularies).
void write_hf_tokenizer_from_gguf(const io::GgufFile& g, const std::filesystem::path& dir);
std::vector<std::string> gguf_pre_tokenizer_regexes(const std::string& pre, bool* ignore_merges);

}  // namespace yak::tok
