#include "yak/io/gguf_writer.h"

#include <cstring>

#include "yak/base/error.h"
#include "yak/io/safetensors.h"

namespace yak::io {
namespace {

constexpr uint64_t kAlign = 32;

template <typename T>
void put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}
void put_str(std::string& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out += s;
}

void encode(std::string& out, const GgufValue& v, bool with_type) {
  if (with_type) put<uint32_t>(out, static_cast<uint32_t>(v.type));
  switch (v.type) {
    case GgufType::U8:
      put<uint8_t>(out, static_cast<uint8_t>(v.u));
      break;
    case GgufType::I8:
      put<int8_t>(out, static_cast<int8_t>(v.i));
      break;
    case GgufType::U16:
      put<uint16_t>(out, static_cast<uint16_t>(v.u));
      break;
    case GgufType::I16:
      put<int16_t>(out, static_cast<int16_t>(v.i));
      break;
    case GgufType::U32:
      put<uint32_t>(out, static_cast<uint32_t>(v.u));
      break;
    case GgufType::I32:
      put<int32_t>(out, static_cast<int32_t>(v.i));
      break;
    case GgufType::U64:
      put<uint64_t>(out, v.u);
      break;
    case GgufType::I64:
      put<int64_t>(out, v.i);
      break;
    case GgufType::F32:
      put<float>(out, static_cast<float>(v.f));
      break;
    case GgufType::F64:
      put<double>(out, v.f);
      break;
    case GgufType::BOOL:
      put<uint8_t>(out, v.b ? 1 : 0);
      break;
    case GgufType::STRING:
      put_str(out, v.s);
      break;
    case GgufType::ARRAY:
      put<uint32_t>(out, static_cast<uint32_t>(v.elem_type));
      put<uint64_t>(out, v.arr.size());
      for (const auto& e : v.arr) encode(out, e, false);
      break;
  }
}

}  // namespace

bool GgufWriter::has(const std::string& key) const {
  for (const auto& k : kv_)
    if (k.key == key) return true;
  return false;
}

void GgufWriter::add_value(const std::string& key, const GgufValue& v) {
  if (has(key)) throw Error("GGUF writer: key '" + key + "' given twice");
  Kv k{key, {}};
  encode(k.bytes, v, true);
  kv_.push_back(std::move(k));
}

void GgufWriter::add_string(const std::string& key, const std::string& v) {
  GgufValue g;
  g.type = GgufType::STRING;
  g.s = v;
  add_value(key, g);
}
void GgufWriter::add_u32(const std::string& key, uint32_t v) {
  GgufValue g;
  g.type = GgufType::U32;
  g.u = v;
  add_value(key, g);
}
void GgufWriter::add_i32(const std::string& key, int32_t v) {
  GgufValue g;
  g.type = GgufType::I32;
  g.i = v;
  add_value(key, g);
}
void GgufWriter::add_f32(const std::string& key, float v) {
  GgufValue g;
  g.type = GgufType::F32;
  g.f = v;
  add_value(key, g);
}
void GgufWriter::add_bool(const std::string& key, bool v) {
  GgufValue g;
  g.type = GgufType::BOOL;
  g.b = v;
  add_value(key, g);
}
void GgufWriter::add_strings(const std::string& key, const std::vector<std::string>& v) {
  GgufValue g;
  g.type = GgufType::ARRAY;
  g.elem_type = GgufType::STRING;
  for (const auto& s : v) {
    GgufValue e;
    e.type = GgufType::STRING;
    e.s = s;
    g.arr.push_back(std::move(e));
  }
  add_value(key, g);
}
void GgufWriter::add_i32s(const std::string& key, const std::vector<int32_t>& v) {
  GgufValue g;
  g.type = GgufType::ARRAY;
  g.elem_type = GgufType::I32;
  for (int32_t x : v) {
    GgufValue e;
    e.type = GgufType::I32;
    e.i = x;
    g.arr.push_back(e);
  }
  add_value(key, g);
}
void GgufWriter::add_f32s(const std::string& key, const std::vector<float>& v) {
  GgufValue g;
  g.type = GgufType::ARRAY;
  g.elem_type = GgufType::F32;
  for (float x : v) {
    GgufValue e;
    e.type = GgufType::F32;
    e.f = x;
    g.arr.push_back(e);
  }
  add_value(key, g);
}

void GgufWriter::add_tensor(const std::string& name, const Tensor& t) {
  if (dtype_info(t.dtype()).ggml < 0)
    throw Error("GGUF writer: tensor '" + name + "' has dtype " + dtype_name(t.dtype()) + ", which GGUF cannot hold");
  if (!t.is_host() || !t.is_contiguous())
    throw Error("GGUF writer: tensor '" + name + "' must be a contiguous host tensor");
  for (const auto& [n, x] : tensors_)
    if (n == name) throw Error("GGUF writer: tensor '" + name + "' given twice");
  tensors_.emplace_back(name, t);
}

void GgufWriter::write(const std::filesystem::path& path) const {
  std::string head;
  head += "GGUF";
  put<uint32_t>(head, 3);
  put<uint64_t>(head, tensors_.size());
  put<uint64_t>(head, kv_.size() + (has("general.alignment") ? 0 : 1));
  for (const auto& k : kv_) {
    put_str(head, k.key);
    head += k.bytes;
  }
  if (!has("general.alignment")) {
    put_str(head, "general.alignment");
    put<uint32_t>(head, static_cast<uint32_t>(GgufType::U32));
    put<uint32_t>(head, static_cast<uint32_t>(kAlign));
  }
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors_) {
    put_str(head, name);
    put<uint32_t>(head, static_cast<uint32_t>(t.ndim()));
    for (int d = t.ndim(); d-- > 0;) put<uint64_t>(head, static_cast<uint64_t>(t.dim(d)));  // fastest first
    put<uint32_t>(head, static_cast<uint32_t>(dtype_info(t.dtype()).ggml));
    put<uint64_t>(head, offset);
    offset = (offset + t.nbytes() + kAlign - 1) / kAlign * kAlign;
  }
  head.append((kAlign - head.size() % kAlign) % kAlign, '\0');
  static const char zeros[kAlign] = {};
  std::vector<std::pair<const void*, size_t>> parts{{head.data(), head.size()}};
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const Tensor& t = tensors_[i].second;
    parts.emplace_back(t.raw(), t.nbytes());
    const size_t pad = static_cast<size_t>((kAlign - t.nbytes() % kAlign) % kAlign);
    if (pad && i + 1 < tensors_.size()) parts.emplace_back(zeros, pad);
  }
  write_all_atomic(path, parts);
}

}  // namespace yak::io
