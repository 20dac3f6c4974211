// Protobuf wire format of SentencePiece's ModelProto, read and written by hand: the Debian package
// ships no sentencepiece_model.pb.h, and the few edits yak makes (pieces, one normalizer flag) need no more.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace yak::tok::spproto {

// ModelProto field numbers (sentencepiece_model.proto).
inline constexpr uint32_t kPieces = 1, kTrainerSpec = 2, kNormalizerSpec = 3, kSelfTestData = 4;
// SentencePiece.Type
enum PieceType : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

// One top-level field of a message: its number, wire type and the exact bytes it spans (key included).
struct Field {
  uint32_t number = 0, wire_type = 0;
  uint64_t varint = 0;       // wire type 0
  std::string_view payload;  // wire types 1, 2, 5: the value bytes (for 2: without the length)
  std::string_view raw;      // key + value, as found
};

bool read_varint(std::string_view s, size_t& i, uint64_t& v);
void write_varint(std::string& out, uint64_t v);
// Appends a length-delimited field (wire type 2).
void write_bytes_field(std::string& out, uint32_t number, std::string_view payload);

// Splits a message into its top-level fields. False when the bytes are not well-formed protobuf
// (truncated varint or length, groups, unknown wire type).
bool parse_fields(std::string_view msg, std::vector<Field>& out);

struct Piece {
  std::string piece;
  float score = 0.0f;
  int32_t type = kNormal;
};

// Decodes one SentencePiece message (field 1 of ModelProto); false when malformed.
bool decode_piece(std::string_view payload, Piece& out);
// The SentencePiece message of p: piece and score always (as when Python's merge script sets
// them), type only when not NORMAL, so a merged model matches Python's SerializeToString.
std::string encode_piece(const Piece& p);

// The model with NormalizerSpec.add_dummy_prefix = false appended to field 3 (the last value of a
// scalar field wins in protobuf). Empty string when the bytes do not parse.
std::string without_dummy_prefix(std::string_view model);

}  // namespace yak::tok::spproto
