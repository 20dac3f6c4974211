// Vocabulary extension of SentencePiece models, as Chinese-LLaMA extended LLaMA's tokenizer:
// append the pieces of another model that the base lacks, keeping every original id.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "yak/tokenizer/sp_proto.h"

namespace yak::tok {

// Pieces of a serialized ModelProto. Throws yak::Error naming `where` when the bytes are not a
// SentencePiece model (malformed protobuf, no pieces, or libsentencepiece refuses it).
std::vector<spproto::Piece> sentencepiece_pieces(const std::string& model, const std::string& where);

struct MergeStats {
  int32_t base_pieces = 0;  // pieces of the base, ids 0..base_pieces-1 unchanged
  int32_t added = 0;        // pieces appended
  int32_t skipped = 0;      // pieces of the other model the base already had
  int32_t total() const { return base_pieces + added; }
};

// The base model with every piece of `add` that it lacks appended, in `add`'s order, with score 0
// as Chinese-LLaMA's merge_tokenizers.py gives them. Their type is NORMAL as there, except that
// USER_DEFINED pieces stay USER_DEFINED (so they are still never split). Everything else of the
// base (trainer and normalizer specs) is kept byte for byte; self-test samples are dropped, since
// the new pieces may change the segmentations they check.
std::string merge_sentencepiece_models(const std::string& base, const std::string& add, const std::string& where_base,
                                       const std::string& where_add, MergeStats* stats = nullptr);

// The model with only its first n pieces (e.g. LLaMA's 32,000 out of Chinese-LLaMA-2's 55,296).
// Self-test samples are dropped. Throws when n < 1 or n exceeds the piece count.
std::string truncate_pieces(const std::string& model, int32_t n, const std::string& where);

// `yak tokenizer merge`: base = a tokenizer.model or a folder holding one; add = a .model file.
// Writes out_dir/tokenizer.model, plus tokenizer_config.json and special_tokens_map.json copied
// from the base's folder when present. out_dir must be new or empty; it appears complete or not at all.
// base_pieces > 0 keeps only the base's first base_pieces pieces before merging (truncate_pieces).
MergeStats merge_tokenizer_files(const std::filesystem::path& base, const std::filesystem::path& add,
                                 const std::filesystem::path& out_dir, int32_t base_pieces = 0);

}  // namespace yak::tok
