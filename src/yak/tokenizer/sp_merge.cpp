#include "yak/tokenizer/sp_merge.h"

#include <sentencepiece_processor.h>

#include <unordered_set>

#include "yak/base/error.h"
#include "yak/base/json.h"
#include "yak/base/mmap.h"
#include "yak/io/safetensors.h"
#include "yak/io/staging_dir.h"

namespace yak::tok {

namespace fs = std::filesystem;
using spproto::Field;
using spproto::Piece;

namespace {

std::vector<Field> model_fields(const std::string& model, const std::string& where) {
  std::vector<Field> fields;
  if (model.empty() || !spproto::parse_fields(model, fields))
    throw Error(where + ": not a SentencePiece model (the bytes are not a protobuf ModelProto)");
  bool any = false;
  for (const auto& f : fields) {
    if (f.number != spproto::kPieces) continue;
    Piece p;
    if (f.wire_type != 2 || !spproto::decode_piece(f.payload, p))
      throw Error(where + ": not a SentencePiece model (ModelProto.pieces entry is malformed)");
    any = true;
  }
  if (!any) throw Error(where + ": not a SentencePiece model (ModelProto has no pieces)");
  return fields;
}

void check_loads(const std::string& model, const std::string& where) {
  sentencepiece::SentencePieceProcessor sp;
  auto st = sp.LoadFromSerializedProto(model);
  if (!st.ok()) throw Error(where + ": not a SentencePiece model: " + st.ToString());
}

}  // namespace

std::vector<Piece> sentencepiece_pieces(const std::string& model, const std::string& where) {
  std::vector<Piece> out;
  for (const auto& f : model_fields(model, where)) {
    if (f.number != spproto::kPieces) continue;
    Piece p;
    spproto::decode_piece(f.payload, p);
    out.push_back(std::move(p));
  }
  return out;
}

std::string merge_sentencepiece_models(const std::string& base, const std::string& add, const std::string& where_base,
                                       const std::string& where_add, MergeStats* stats) {
  auto base_fields = model_fields(base, where_base);
  auto add_pieces = sentencepiece_pieces(add, where_add);
  check_loads(base, where_base);
  check_loads(add, where_add);

  MergeStats st;
  std::unordered_set<std::string> have;
  std::string pieces, rest;
  for (const auto& f : base_fields) {
    if (f.number == spproto::kPieces) {
      Piece p;
      spproto::decode_piece(f.payload, p);
      have.insert(p.piece);
      ++st.base_pieces;
      pieces.append(f.raw);
    } else if (f.number != spproto::kSelfTestData) {
      rest.append(f.raw);
    }
  }
  for (const auto& p : add_pieces) {
    if (!have.insert(p.piece).second) {
      ++st.skipped;
      continue;
    }
    Piece q{p.piece, 0.0f, p.type == spproto::kUserDefined ? spproto::kUserDefined : spproto::kNormal};
    spproto::write_bytes_field(pieces, spproto::kPieces, spproto::encode_piece(q));
    ++st.added;
  }
  // Pieces first, then the other fields in their order: what protobuf's own serializer writes.
  std::string out = pieces + rest;
  check_loads(out, where_base + " + " + where_add + " (merged)");
  if (stats) *stats = st;
  return out;
}

std::string truncate_pieces(const std::string& model, int32_t n, const std::string& where) {
  auto fields = model_fields(model, where);
  int32_t count = 0;
  for (const auto& f : fields) count += f.number == spproto::kPieces;
  if (n < 1 || n > count)
    throw Error(where + ": cannot keep " + std::to_string(n) + " pieces (expected 1.." + std::to_string(count) + ")");
  std::string pieces, rest;
  int32_t kept = 0;
  for (const auto& f : fields) {
    if (f.number == spproto::kPieces) {
      if (kept++ < n) pieces.append(f.raw);
    } else if (f.number != spproto::kSelfTestData) {
      rest.append(f.raw);
    }
  }
  std::string out = pieces + rest;
  check_loads(out, where + " (first " + std::to_string(n) + " pieces)");
  return out;
}

MergeStats merge_tokenizer_files(const fs::path& base, const fs::path& add, const fs::path& out_dir,
                                 int32_t base_pieces) {
  std::error_code ec;
  fs::path base_model = fs::is_directory(base, ec) ? base / "tokenizer.model" : base;
  if (!fs::is_regular_file(base_model, ec))
    throw Error(base_model.string() + ": no such file (expected a SentencePiece tokenizer.model)");
  if (!fs::is_regular_file(add, ec)) throw Error(add.string() + ": no such file (expected a SentencePiece .model)");
  io::check_output_dir(out_dir);

  if (base_pieces < 0) throw Error("--base-pieces: expected a positive number, got " + std::to_string(base_pieces));
  MergeStats st;
  std::string base_bytes = read_text_file(base_model);
  if (base_pieces > 0) base_bytes = truncate_pieces(base_bytes, base_pieces, base_model.string());
  std::string merged =
      merge_sentencepiece_models(base_bytes, read_text_file(add), base_model.string(), add.string(), &st);

  // transformers' added_tokens_decoder ids above the base's pieces would now name two tokens.
  fs::path folder = base_model.parent_path().empty() ? fs::path(".") : base_model.parent_path();
  std::vector<fs::path> extras;
  for (const char* name : {"tokenizer_config.json", "special_tokens_map.json"}) {
    fs::path p = folder / name;
    if (!fs::is_regular_file(p, ec)) continue;
    Json j = read_json_file(p);
    if (j.is_object() && j.contains("added_tokens_decoder") && j["added_tokens_decoder"].is_object()) {
      for (auto it = j["added_tokens_decoder"].begin(); it != j["added_tokens_decoder"].end(); ++it) {
        long id = std::strtol(it.key().c_str(), nullptr, 10);
        if (id >= st.base_pieces)
          throw Error(p.string() + ": added_tokens_decoder." + it.key() + " would collide with the merged piece " +
                      std::to_string(id) + " (expected ids below " + std::to_string(st.base_pieces) + ")");
      }
    }
    extras.push_back(p);
  }

  io::StagingDir stage(out_dir);
  io::write_file_atomic(stage.path() / "tokenizer.model", merged);
  for (const auto& p : extras) io::write_file_atomic(stage.path() / p.filename(), read_text_file(p));
  stage.commit();
  return st;
}

}  // namespace yak::tok
