// Training a SentencePiece model (BPE or unigram) through libsentencepiece_train, written as
// PREFIX.model and PREFIX.vocab like spm_train does, but atomically.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace yak::tok {

struct SpTrainOptions {
  std::vector<std::filesystem::path> inputs;  // text files, one sentence per line
  int32_t vocab_size = 8000;
  std::string model_type = "unigram";  // "bpe" or "unigram"
  double character_coverage = 0.9995;
  std::vector<std::string> user_defined_symbols;
  bool byte_fallback = false;
  int64_t max_sentence_length = 0;  // 0: SentencePiece's default (4192 bytes)
  int32_t num_threads = 0;          // 0: hardware threads
  bool quiet = false;               // silence SentencePiece's progress log
};

// The serialized ModelProto. Throws yak::Error naming the file or option at fault.
std::string train_sentencepiece(const SpTrainOptions& opt);

// The .vocab text of a model: "piece<TAB>score" per line, as spm_train writes it.
std::string sentencepiece_vocab_text(const std::string& model);

struct SpTrainResult {
  std::filesystem::path model_path, vocab_path;
  int32_t pieces = 0;
};
// Trains and writes model_prefix + ".model" and ".vocab" (each atomically).
SpTrainResult train_sentencepiece_files(const SpTrainOptions& opt, const std::filesystem::path& model_prefix);

}  // namespace yak::tok
