#include "yak/tokenizer/sp_proto.h"

#include <cstring>

namespace yak::tok::spproto {

bool read_varint(std::string_view s, size_t& i, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (i >= s.size()) return false;
    auto b = static_cast<uint8_t>(s[i++]);
    v |= static_cast<uint64_t>(b & 0x7F) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}

void write_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}

void write_bytes_field(std::string& out, uint32_t number, std::string_view payload) {
  write_varint(out, (static_cast<uint64_t>(number) << 3) | 2);
  write_varint(out, payload.size());
  out.append(payload);
}

bool parse_fields(std::string_view msg, std::vector<Field>& out) {
  out.clear();
  size_t i = 0;
  while (i < msg.size()) {
    size_t start = i;
    uint64_t key;
    if (!read_varint(msg, i, key)) return false;
    Field f;
    f.number = static_cast<uint32_t>(key >> 3);
    f.wire_type = static_cast<uint32_t>(key & 7);
    if (f.number == 0) return false;
    switch (f.wire_type) {
      case 0:
        if (!read_varint(msg, i, f.varint)) return false;
        break;
      case 1:
      case 5: {
        size_t n = f.wire_type == 1 ? 8 : 4;
        if (n > msg.size() - i) return false;
        f.payload = msg.substr(i, n);
        i += n;
        break;
      }
      case 2: {
        uint64_t len;
        if (!read_varint(msg, i, len) || len > msg.size() - i) return false;
        f.payload = msg.substr(i, len);
        i += len;
        break;
      }
      default:
        return false;  // groups (3, 4) are not used by sentencepiece_model.proto
    }
    f.raw = msg.substr(start, i - start);
    out.push_back(f);
  }
  return true;
}

bool decode_piece(std::string_view payload, Piece& out) {
  std::vector<Field> fields;
  if (!parse_fields(payload, fields)) return false;
  out = Piece{};
  for (const auto& f : fields) {
    if (f.number == 1 && f.wire_type == 2) {
      out.piece.assign(f.payload);
    } else if (f.number == 2 && f.wire_type == 5) {
      std::memcpy(&out.score, f.payload.data(), 4);
    } else if (f.number == 3 && f.wire_type == 0) {
      out.type = static_cast<int32_t>(f.varint);
    }
  }
  return true;
}

std::string encode_piece(const Piece& p) {
  std::string out;
  write_bytes_field(out, 1, p.piece);
  out += '\x15';  // field 2 (score), wire type 5: always present, as when Python sets it
  char b[4];
  std::memcpy(b, &p.score, 4);
  out.append(b, 4);
  if (p.type != kNormal) {
    out += '\x18';  // field 3 (type), wire type 0
    write_varint(out, static_cast<uint64_t>(p.type));
  }
  return out;
}

std::string without_dummy_prefix(std::string_view model) {
  std::vector<Field> fields;
  if (!parse_fields(model, fields)) return {};
  static const std::string kFlag("\x18\x00", 2);  // field 3 (add_dummy_prefix), varint 0
  std::string out;
  bool patched = false;
  for (const auto& f : fields) {
    if (f.number == kNormalizerSpec && f.wire_type == 2) {
      write_bytes_field(out, kNormalizerSpec, std::string(f.payload) + kFlag);
      patched = true;
    } else {
      out.append(f.raw);
    }
  }
  if (!patched) write_bytes_field(out, kNormalizerSpec, kFlag);
  return out;
}

}  // namespace yak::tok::spproto
