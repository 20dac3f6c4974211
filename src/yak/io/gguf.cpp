#include "yak/io/gguf.h"

#include <cstring>

#include "yak/base/error.h"

namespace yak::io {

namespace {

constexpr uint64_t kMaxDims = 4;  // GGML_MAX_DIMS
constexpr int kMaxDepth = 4;      // nested arrays deeper than this are corrupt in practice

// Bounds-checked little-endian cursor over the file bytes.
class Reader {
 public:
  Reader(const uint8_t* p, size_t n, const std::string& where) : p_(p), n_(n), where_(where) {}
  size_t pos() const { return pos_; }
  size_t remaining() const { return n_ - pos_; }

  template <typename T>
  T read(const std::string& what) {
    if (remaining() < sizeof(T)) truncated(what);
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string str(const std::string& what) {
    uint64_t len = read<uint64_t>(what + " (string length)");
    if (len > remaining()) truncated(what + " (string of " + std::to_string(len) + " bytes)");
    std::string s(reinterpret_cast<const char*>(p_ + pos_), static_cast<size_t>(len));
    pos_ += len;
    return s;
  }
  [[noreturn]] void truncated(const std::string& what) const {
    throw Error(where_ + ": GGUF file is truncated while reading " + what + " at byte " + std::to_string(pos_));
  }
  [[noreturn]] void corrupt(const std::string& what) const {
    throw Error(where_ + ": corrupt GGUF: " + what + " (at byte " + std::to_string(pos_) + ")");
  }

 private:
  const uint8_t* p_;
  size_t n_, pos_ = 0;
  const std::string& where_;
};

size_t min_size(GgufType t) {
  switch (t) {
    case GgufType::U8:
    case GgufType::I8:
    case GgufType::BOOL:
      return 1;
    case GgufType::U16:
    case GgufType::I16:
      return 2;
    case GgufType::U32:
    case GgufType::I32:
    case GgufType::F32:
      return 4;
    case GgufType::U64:
    case GgufType::I64:
    case GgufType::F64:
    case GgufType::STRING:
      return 8;
    case GgufType::ARRAY:
      return 12;
  }
  return 1;
}

GgufValue read_value(Reader& r, GgufType type, const std::string& key, int depth) {
  GgufValue v;
  v.type = type;
  switch (type) {
    case GgufType::U8:
      v.u = r.read<uint8_t>(key);
      v.i = static_cast<int64_t>(v.u);
      break;
    case GgufType::I8:
      v.i = r.read<int8_t>(key);
      v.u = static_cast<uint64_t>(v.i);
      break;
    case GgufType::U16:
      v.u = r.read<uint16_t>(key);
      v.i = static_cast<int64_t>(v.u);
      break;
    case GgufType::I16:
      v.i = r.read<int16_t>(key);
      v.u = static_cast<uint64_t>(v.i);
      break;
    case GgufType::U32:
      v.u = r.read<uint32_t>(key);
      v.i = static_cast<int64_t>(v.u);
      break;
    case GgufType::I32:
      v.i = r.read<int32_t>(key);
      v.u = static_cast<uint64_t>(v.i);
      break;
    case GgufType::U64:
      v.u = r.read<uint64_t>(key);
      v.i = static_cast<int64_t>(v.u);
      break;
    case GgufType::I64:
      v.i = r.read<int64_t>(key);
      v.u = static_cast<uint64_t>(v.i);
      break;
    case GgufType::F32:
      v.f = r.read<float>(key);
      break;
    case GgufType::F64:
      v.f = r.read<double>(key);
      break;
    case GgufType::BOOL: {
      uint8_t b = r.read<uint8_t>(key);
      if (b > 1) r.corrupt("key '" + key + "': bool value " + std::to_string(b));
      v.b = b != 0;
      break;
    }
    case GgufType::STRING:
      v.s = r.str(key);
      break;
    case GgufType::ARRAY: {
      if (depth >= kMaxDepth) r.corrupt("key '" + key + "': arrays nested too deeply");
      uint32_t et = r.read<uint32_t>(key + " (array element type)");
      if (et > static_cast<uint32_t>(GgufType::F64))
        r.corrupt("key '" + key + "': unknown array element type " + std::to_string(et));
      v.elem_type = static_cast<GgufType>(et);
      uint64_t n = r.read<uint64_t>(key + " (array length)");
      // Every element needs at least min_size bytes: reject impossible counts before allocating.
      if (n > r.remaining() / min_size(v.elem_type))
        r.truncated("key '" + key + "' (array of " + std::to_string(n) + " elements)");
      v.arr.reserve(static_cast<size_t>(n));
      for (uint64_t k = 0; k < n; ++k) v.arr.push_back(read_value(r, v.elem_type, key, depth + 1));
      break;
    }
    default:
      r.corrupt("key '" + key + "': unknown value type " + std::to_string(static_cast<uint32_t>(type)));
  }
  return v;
}

}  // namespace

const char* gguf_type_name(GgufType t) {
  static const char* names[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                "bool", "string", "array", "u64", "i64", "f64"};
  auto i = static_cast<uint32_t>(t);
  return i < 13 ? names[i] : "unknown";
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufType::U8:
    case GgufType::I8:
    case GgufType::U16:
    case GgufType::I16:
    case GgufType::U32:
    case GgufType::I32:
    case GgufType::U64:
    case GgufType::I64:
      return true;
    default:
      return false;
  }
}

uint64_t ggml_type_nbytes(uint32_t t, uint64_t n) {
  // {block elements, block bytes} for ggml types (ggml.h enum order).
  struct B {
    uint32_t blck, size;
  };
  static const B table[] = {
      {1, 4},     {1, 2},    {32, 18},  {32, 20},   {0, 0},     {0, 0},     {32, 22},
      {32, 24},  // F32 F16 Q4_0 Q4_1 - - Q5_0 Q5_1
      {32, 34},   {32, 36},  {256, 84}, {256, 110}, {256, 144}, {256, 176}, {256, 210},
      {256, 292},  // Q8_0 Q8_1 Q2_K..Q8_K
      {256, 66},  {256, 74}, {256, 98}, {256, 50},  {32, 18},   {256, 110}, {256, 82},
      {256, 136},  // IQ2_XXS IQ2_XS IQ3_XXS IQ1_S IQ4_NL IQ3_S IQ2_S IQ4_XS
      {1, 1},     {1, 2},    {1, 4},    {1, 8},     {1, 8},     {256, 56},  {1, 2},  // I8 I16 I32 I64 F64 IQ1_M BF16
  };
  if (t >= sizeof(table) / sizeof(table[0])) return 0;
  B b = table[t];
  if (b.blck == 0 || n % b.blck != 0) return 0;
  uint64_t blocks = n / b.blck;
  if (blocks > UINT64_MAX / b.size) return 0;
  return blocks * b.size;
}

GgufFile GgufFile::open(const std::filesystem::path& path) {
  auto f = MappedFile::open(path);
  GgufFile g = parse(f->data(), f->size(), path.string());
  g.file_ = f;
  return g;
}

GgufFile GgufFile::parse(const uint8_t* data, size_t size, const std::string& where) {
  GgufFile g;
  g.where_ = where;
  Reader r(data, size, g.where_);
  uint32_t magic = r.read<uint32_t>("magic");
  if (magic != 0x46554747u) throw Error(where + ": not a GGUF file (bad magic)");
  g.version_ = r.read<uint32_t>("version");
  if (g.version_ != 2 && g.version_ != 3)
    throw Error(where + ": GGUF version " + std::to_string(g.version_) + " is not supported (expected 2 or 3)");
  uint64_t n_tensors = r.read<uint64_t>("tensor count");
  uint64_t n_kv = r.read<uint64_t>("metadata count");
  if (n_kv > r.remaining() / 12) r.truncated("metadata (" + std::to_string(n_kv) + " entries)");
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key = r.str("metadata key #" + std::to_string(k));
    uint32_t t = r.read<uint32_t>("type of key '" + key + "'");
    if (t > static_cast<uint32_t>(GgufType::F64))
      r.corrupt("key '" + key + "': unknown value type " + std::to_string(t));
    GgufValue v = read_value(r, static_cast<GgufType>(t), key, 0);
    if (!g.kv_.emplace(key, std::move(v)).second) r.corrupt("duplicate metadata key '" + key + "'");
  }
  if (auto a = g.find("general.alignment")) {
    if (!a->is_integer() || a->u == 0 || (a->u & (a->u - 1)) != 0 || a->u > (1u << 20))
      throw Error(where + ": general.alignment must be a power of two (got " + std::to_string(a->u) + ")");
    g.alignment_ = a->u;
  }
  if (n_tensors > r.remaining() / 24) r.truncated("tensor infos (" + std::to_string(n_tensors) + " tensors)");
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensorInfo ti;
    ti.name = r.str("tensor #" + std::to_string(k) + " name");
    uint32_t nd = r.read<uint32_t>("tensor '" + ti.name + "' n_dims");
    if (nd == 0 || nd > kMaxDims)
      r.corrupt("tensor '" + ti.name + "' has " + std::to_string(nd) + " dims (expected 1..4)");
    uint64_t ne = 1;
    for (uint32_t d = 0; d < nd; ++d) {
      uint64_t dim = r.read<uint64_t>("tensor '" + ti.name + "' dims");
      if (dim != 0 && ne > UINT64_MAX / dim) r.corrupt("tensor '" + ti.name + "' has too many elements");
      ne *= dim;
      ti.dims.push_back(dim);
    }
    ti.ggml_type = r.read<uint32_t>("tensor '" + ti.name + "' type");
    ti.offset = r.read<uint64_t>("tensor '" + ti.name + "' offset");
    if (ti.offset % g.alignment_ != 0) r.corrupt("tensor '" + ti.name + "' offset is not aligned");
    ti.nbytes = ggml_type_nbytes(ti.ggml_type, ne);
    g.tensors_.push_back(std::move(ti));
  }
  uint64_t pos = r.pos();
  g.data_offset_ = (pos + g.alignment_ - 1) / g.alignment_ * g.alignment_;
  if (!g.tensors_.empty()) {
    if (g.data_offset_ > size) throw Error(where + ": GGUF file is truncated before the tensor data");
    uint64_t avail = size - g.data_offset_;
    for (const auto& t : g.tensors_)
      if (t.offset > avail || t.nbytes > avail - t.offset)
        throw Error(where + ": GGUF file is truncated: tensor '" + t.name + "' extends past the end of the file");
  }
  return g;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

const uint8_t* GgufFile::tensor_data(const GgufTensorInfo& t) const {
  if (!file_) return nullptr;
  return file_->data() + data_offset_ + t.offset;
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

namespace {
[[noreturn]] void wrong(const std::string& where, const std::string& key, const GgufValue& v, const char* want) {
  throw Error(where + ": metadata '" + key + "' is " + gguf_type_name(v.type) + ", expected " + want);
}
}  // namespace

std::string GgufFile::get_string(const std::string& key) const {
  auto v = find(key);
  if (!v) throw Error(where_ + ": missing metadata '" + key + "'");
  if (v->type != GgufType::STRING) wrong(where_, key, *v, "string");
  return v->s;
}

int64_t GgufFile::get_int(const std::string& key) const {
  auto v = find(key);
  if (!v) throw Error(where_ + ": missing metadata '" + key + "'");
  if (!v->is_integer()) wrong(where_, key, *v, "an integer");
  return v->i;
}

bool GgufFile::get_bool(const std::string& key) const {
  auto v = find(key);
  if (!v) throw Error(where_ + ": missing metadata '" + key + "'");
  if (v->type != GgufType::BOOL) wrong(where_, key, *v, "bool");
  return v->b;
}

std::vector<std::string> GgufFile::get_string_array(const std::string& key) const {
  auto v = find(key);
  if (!v) throw Error(where_ + ": missing metadata '" + key + "'");
  if (v->type != GgufType::ARRAY || v->elem_type != GgufType::STRING) wrong(where_, key, *v, "an array of strings");
  std::vector<std::string> out;
  out.reserve(v->arr.size());
  for (const auto& e : v->arr) out.push_back(e.s);
  return out;
}

std::vector<double> GgufFile::get_number_array(const std::string& key) const {
  auto v = find(key);
  if (!v) throw Error(where_ + ": missing metadata '" + key + "'");
  if (v->type != GgufType::ARRAY) wrong(where_, key, *v, "an array of numbers");
  std::vector<double> out;
  out.reserve(v->arr.size());
  for (const auto& e : v->arr) {
    if (!e.is_number()) wrong(where_, key, *v, "an array of numbers");
    out.push_back(e.is_integer() ? static_cast<double>(e.i) : e.f);
  }
  return out;
}

std::optional<int64_t> GgufFile::get_int_opt(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  return get_int(key);
}
std::optional<bool> GgufFile::get_bool_opt(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  return get_bool(key);
}
std::optional<std::string> GgufFile::get_string_opt(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  return get_string(key);
}

}  // namespace yak::io
