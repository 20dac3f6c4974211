#include "yak/io/torch_pickle.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "yak/base/error.h"
#include "yak/base/mmap.h"
#include "yak/base/png.h"
#include "yak/io/zip.h"

namespace yak::io {
namespace {

// ---- values of the restricted pickle machine ------------------------------------------------
// Containers live in an arena owned by the machine and values refer to them by index, so
// self-referencing containers (legal in pickle) neither leak nor recurse on destruction.

enum class Kind : uint8_t { None, Bool, Int, Float, Str, Bytes, Global, Obj, Mark };
enum class ObjKind : uint8_t { Tuple, List, Dict, Storage, Tensor };

struct Val {
  Kind kind = Kind::None;
  int64_t i = 0;  // Bool, Int; Obj: arena index
  double f = 0;
  std::shared_ptr<const std::string> s;  // Str, Bytes, Global ("module.name")
};

struct Obj {
  ObjKind kind = ObjKind::Tuple;
  std::vector<Val> items;                       // Tuple, List
  std::vector<std::pair<Val, Val>> pairs;       // Dict, in insertion order
  std::unordered_map<std::string, size_t> str_index;  // Dict: string key -> position in pairs
  // Storage
  DType dtype = DType::F32;
  std::string key;
  int64_t numel = 0;
  // Tensor
  size_t storage = 0;
  int64_t offset = 0;
  std::vector<int64_t> shape, stride;
};

const char* kind_name(const Val& v, const std::vector<Obj>& arena) {
  switch (v.kind) {
    case Kind::None: return "None";
    case Kind::Bool: return "a bool";
    case Kind::Int: return "an int";
    case Kind::Float: return "a float";
    case Kind::Str: return "a string";
    case Kind::Bytes: return "bytes";
    case Kind::Global: return "a global";
    case Kind::Mark: return "a mark";
    case Kind::Obj: break;
  }
  switch (arena[static_cast<size_t>(v.i)].kind) {
    case ObjKind::Tuple: return "a tuple";
    case ObjKind::List: return "a list";
    case ObjKind::Dict: return "a dict";
    case ObjKind::Storage: return "a storage";
    case ObjKind::Tensor: return "a tensor";
  }
  return "?";
}

// torch.<Name>Storage -> element type.
bool storage_dtype(const std::string& global, DType& out) {
  static const std::pair<const char*, DType> kTable[] = {
      {"torch.FloatStorage", DType::F32},  {"torch.HalfStorage", DType::F16},  {"torch.BFloat16Storage", DType::BF16},
      {"torch.DoubleStorage", DType::F64}, {"torch.LongStorage", DType::I64},  {"torch.IntStorage", DType::I32},
      {"torch.ShortStorage", DType::I16},  {"torch.CharStorage", DType::I8},   {"torch.ByteStorage", DType::U8},
      {"torch.BoolStorage", DType::Bool}};
  for (auto& [name, t] : kTable)
    if (global == name) {
      out = t;
      return true;
    }
  return false;
}

// The globals a state dict needs; every other one is refused when the pickle names it.
bool allowed_global(const std::string& g) {
  static const char* kAllowed[] = {"collections.OrderedDict",
                                   "torch._utils._rebuild_tensor",
                                   "torch._utils._rebuild_tensor_v2",
                                   "torch._utils._rebuild_parameter",
                                   "torch._utils._rebuild_parameter_with_state",
                                   "torch._tensor._rebuild_from_type_v2",
                                   "torch.Tensor",
                                   "torch.nn.parameter.Parameter",
                                   "torch.Size",
                                   "_codecs.encode"};
  for (auto* a : kAllowed)
    if (g == a) return true;
  DType t;
  return storage_dtype(g, t);
}

class Machine {
 public:
  Machine(const uint8_t* data, size_t size, std::string where) : p_(data), n_(size), where_(std::move(where)) {}

  Val run();
  std::vector<Obj>& arena() { return arena_; }
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(where_ + ": byte " + std::to_string(op_at_) + ": " + what);
  }

 private:
  // Input
  uint8_t byte() {
    if (pos_ >= n_) fail("pickle ends before its STOP opcode");
    return p_[pos_++];
  }
  const uint8_t* take(uint64_t k) {
    if (k > n_ - pos_) fail("pickle ends inside an argument of " + std::to_string(k) + " bytes");
    const uint8_t* q = p_ + pos_;
    pos_ += k;
    return q;
  }
  uint64_t le(int k) {
    const uint8_t* q = take(static_cast<uint64_t>(k));
    uint64_t v = 0;
    for (int j = k - 1; j >= 0; --j) v = (v << 8) | q[j];
    return v;
  }
  std::string line() {
    std::string s;
    for (;;) {
      const uint8_t c = byte();
      if (c == '\n') return s;
      if (s.size() > 512) fail("global name longer than 512 bytes");
      s.push_back(static_cast<char>(c));
    }
  }

  // Stack
  void push(Val v) {
    if (stack_.size() > (1u << 22)) fail("pickle stack deeper than 4M entries");
    stack_.push_back(std::move(v));
  }
  Val pop() {
    if (stack_.size() <= floor()) fail("pickle pops an empty stack");
    Val v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  Val& top() {
    if (stack_.size() <= floor()) fail("pickle reads an empty stack");
    return stack_.back();
  }
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  std::vector<Val> pop_mark() {
    if (marks_.empty()) fail("pickle closes a MARK it never opened");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Val> out(std::make_move_iterator(stack_.begin() + static_cast<std::ptrdiff_t>(m)),
                         std::make_move_iterator(stack_.end()));
    stack_.resize(m);
    return out;
  }

  // Arena
  Val make(ObjKind k) {
    arena_.emplace_back();
    arena_.back().kind = k;
    Val v;
    v.kind = Kind::Obj;
    v.i = static_cast<int64_t>(arena_.size() - 1);
    return v;
  }
  Obj* as(const Val& v, ObjKind k) {
    return v.kind == Kind::Obj && arena_[static_cast<size_t>(v.i)].kind == k ? &arena_[static_cast<size_t>(v.i)] : nullptr;
  }
  Val tuple(std::vector<Val> items) {
    Val v = make(ObjKind::Tuple);
    arena_[static_cast<size_t>(v.i)].items = std::move(items);
    return v;
  }
  static Val str(Kind k, const uint8_t* q, uint64_t len) {
    Val v;
    v.kind = k;
    v.s = std::make_shared<const std::string>(reinterpret_cast<const char*>(q), len);
    return v;
  }
  static Val integer(int64_t i) {
    Val v;
    v.kind = Kind::Int;
    v.i = i;
    return v;
  }
  void setitem(Val& dict, Val key, Val value) {
    Obj* d = as(dict, ObjKind::Dict);
    if (!d) fail("SETITEM(S) on " + std::string(kind_name(dict, arena_)) + ", expected a dict");
    if (key.kind == Kind::Str) {
      auto [it, fresh] = d->str_index.emplace(*key.s, d->pairs.size());
      if (!fresh) {
        d->pairs[it->second].second = std::move(value);
        return;
      }
    }
    d->pairs.emplace_back(std::move(key), std::move(value));
  }
  void append(Val& list, std::vector<Val> items) {
    Obj* l = as(list, ObjKind::List);
    if (!l) fail("APPEND(S) on " + std::string(kind_name(list, arena_)) + ", expected a list");
    for (auto& v : items) l->items.push_back(std::move(v));
  }
  void memo_put(uint64_t key) {
    if (memo_.size() > (1u << 22) && !memo_.count(key)) fail("pickle memo larger than 4M entries");
    memo_[key] = top();
  }
  void memo_get(uint64_t key) {
    auto it = memo_.find(key);
    if (it == memo_.end()) fail("memo key " + std::to_string(key) + " read before it was written");
    push(it->second);
  }

  Val global(const std::string& module, const std::string& name) {
    const std::string g = module + "." + name;
    if (!allowed_global(g))
      fail("global '" + g +
           "' is refused: this reader accepts tensors and plain containers only and never runs code from a "
           "checkpoint (convert the file to safetensors where it was made if it really needs this)");
    Val v;
    v.kind = Kind::Global;
    v.s = std::make_shared<const std::string>(g);
    return v;
  }
  Val persistent(const Val& pid);
  Val reduce(const Val& fn, const Val& args);
  Val rebuild_tensor(const std::vector<Val>& a, const std::string& fn);
  int64_t as_int(const Val& v, const char* what) {
    if (v.kind != Kind::Int) fail(std::string(what) + " is " + kind_name(v, arena_) + ", expected an int");
    return v.i;
  }
  std::vector<int64_t> int_tuple(const Val& v, const char* what) {
    Obj* t = as(v, ObjKind::Tuple);
    if (!t) fail(std::string(what) + " is " + kind_name(v, arena_) + ", expected a tuple of ints");
    std::vector<int64_t> out;
    for (auto& x : t->items) {
      const int64_t k = as_int(x, what);
      if (k < 0) fail(std::string(what) + " holds a negative value");
      out.push_back(k);
    }
    return out;
  }

  const uint8_t* p_;
  size_t n_, pos_ = 0, op_at_ = 0;
  std::string where_;
  std::vector<Val> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Val> memo_;
  std::vector<Obj> arena_;
};

Val Machine::persistent(const Val& pid) {
  // ('storage', torch.<T>Storage, key, location, numel[, view metadata])
  Obj* t = as(pid, ObjKind::Tuple);
  if (!t || t->items.size() < 5 || t->items[0].kind != Kind::Str || *t->items[0].s != "storage")
    fail("persistent id is not ('storage', type, key, location, size)");
  const auto items = t->items;  // copy: make() below may move the arena
  Val v = make(ObjKind::Storage);
  Obj& s = arena_[static_cast<size_t>(v.i)];
  if (items[1].kind != Kind::Global || !storage_dtype(*items[1].s, s.dtype))
    fail("storage type is " +
         (items[1].kind == Kind::Global ? "'" + *items[1].s + "'" : std::string(kind_name(items[1], arena_))) +
         ", expected one of torch's Float/Half/BFloat16/Double/Long/Int/Short/Char/Byte/BoolStorage");
  if (items[2].kind != Kind::Str) fail("storage key is not a string");
  s.key = *items[2].s;
  if (items[4].kind != Kind::Int || items[4].i < 0) fail("storage size is not a non-negative int");
  s.numel = items[4].i;
  if (items.size() > 5 && items[5].kind != Kind::None) fail("storage views (PyTorch < 1.0) are not supported");
  return v;
}

Val Machine::rebuild_tensor(const std::vector<Val>& a, const std::string& fn) {
  if (a.size() < 4) fail(fn + " takes (storage, offset, size, stride, ...), got " + std::to_string(a.size()) + " values");
  Obj* s = as(a[0], ObjKind::Storage);
  if (!s) fail(fn + ": first argument is " + kind_name(a[0], arena_) + ", expected a storage");
  const size_t storage = static_cast<size_t>(a[0].i);
  const int64_t offset = as_int(a[1], "tensor offset");
  auto shape = int_tuple(a[2], "tensor size");
  auto stride = int_tuple(a[3], "tensor stride");
  if (offset < 0) fail("tensor offset is negative");
  if (shape.size() != stride.size()) fail("tensor size and stride differ in length");
  if (shape.size() > static_cast<size_t>(Shape::kMaxDims))
    fail("tensor has " + std::to_string(shape.size()) + " dimensions, at most " + std::to_string(Shape::kMaxDims) +
         " are supported");
  Val v = make(ObjKind::Tensor);
  Obj& t = arena_[static_cast<size_t>(v.i)];
  t.storage = storage;
  t.offset = offset;
  t.shape = std::move(shape);
  t.stride = std::move(stride);
  return v;
}

Val Machine::reduce(const Val& fn, const Val& args) {
  if (fn.kind != Kind::Global) fail("REDUCE calls " + std::string(kind_name(fn, arena_)) + ", expected a global");
  Obj* at = as(args, ObjKind::Tuple);
  if (!at) fail("REDUCE arguments are " + std::string(kind_name(args, arena_)) + ", expected a tuple");
  const std::vector<Val> a = at->items;
  const std::string& g = *fn.s;
  if (g == "collections.OrderedDict") {
    if (!a.empty()) fail("OrderedDict(...) with arguments is not supported");
    return make(ObjKind::Dict);
  }
  if (g == "torch._utils._rebuild_tensor_v2" || g == "torch._utils._rebuild_tensor") return rebuild_tensor(a, g);
  if (g == "torch._utils._rebuild_parameter" || g == "torch._utils._rebuild_parameter_with_state") {
    if (a.empty() || !as(a[0], ObjKind::Tensor)) fail(g + ": first argument is not a tensor");
    return a[0];
  }
  if (g == "torch._tensor._rebuild_from_type_v2") {
    // (func, type, args, state): a plain Tensor or Parameter rebuilt by an allowed function.
    if (a.size() != 4) fail(g + " takes 4 arguments");
    if (a[1].kind != Kind::Global || (*a[1].s != "torch.Tensor" && *a[1].s != "torch.nn.parameter.Parameter"))
      fail(g + ": only torch.Tensor and Parameter are rebuilt");
    if (a[0].kind != Kind::Global || *a[0].s == g) fail(g + ": the rebuilding function must be a tensor rebuild");
    Val r = reduce(a[0], a[2]);
    if (!as(r, ObjKind::Tensor)) fail(g + " did not rebuild a tensor");
    return r;
  }
  if (g == "torch.Size") {
    if (a.size() != 1 || !as(a[0], ObjKind::Tuple)) fail("torch.Size takes one tuple");
    return a[0];
  }
  if (g == "_codecs.encode") {  // how protocol 2 spells a bytes object: encode(text, 'latin1')
    if (a.size() != 2 || a[0].kind != Kind::Str || a[1].kind != Kind::Str || (*a[1].s != "latin1" && *a[1].s != "latin-1"))
      fail("_codecs.encode is accepted only as encode(text, 'latin1')");
    std::string out;
    const std::string& in = *a[0].s;
    for (size_t i = 0; i < in.size(); ++i) {  // UTF-8 code points below 256 -> one byte each
      const unsigned char c = static_cast<unsigned char>(in[i]);
      if (c < 0x80) {
        out.push_back(static_cast<char>(c));
      } else if ((c & 0xe0) == 0xc0 && c <= 0xc3 && i + 1 < in.size()) {
        out.push_back(static_cast<char>(((c & 0x03) << 6) | (static_cast<unsigned char>(in[++i]) & 0x3f)));
      } else {
        fail("_codecs.encode: text has a character outside latin-1");
      }
    }
    Val v;
    v.kind = Kind::Bytes;
    v.s = std::make_shared<const std::string>(std::move(out));
    return v;
  }
  fail("global '" + g + "' cannot be called");
}

Val Machine::run() {
  for (;;) {
    op_at_ = pos_;
    const uint8_t op = byte();
    switch (op) {
      case 0x80: {  // PROTO
        const uint8_t v = byte();
        if (v > 5) fail("pickle protocol " + std::to_string(v) + " is newer than 5");
        break;
      }
      case 0x95: take(8); break;  // FRAME: a length hint only
      case '.': {                 // STOP
        Val v = pop();
        return v;
      }
      case '(': marks_.push_back(stack_.size()); break;
      case '0': pop(); break;
      case '1': pop_mark(); break;
      case '2': push(top()); break;
      case 'N': push(Val{}); break;
      case 0x88:
      case 0x89: {
        Val v;
        v.kind = Kind::Bool;
        v.i = op == 0x88;
        push(v);
        break;
      }
      case 'K': push(integer(static_cast<int64_t>(le(1)))); break;
      case 'M': push(integer(static_cast<int64_t>(le(2)))); break;
      case 'J': push(integer(static_cast<int32_t>(static_cast<uint32_t>(le(4))))); break;
      case 0x8a:
      case 0x8b: {  // LONG1 / LONG4: little-endian two's complement
        const uint64_t len = le(op == 0x8a ? 1 : 4);
        if (len > 8) fail("integer wider than 64 bits");
        const uint8_t* q = take(len);
        uint64_t u = 0;
        for (uint64_t j = len; j-- > 0;) u = (u << 8) | q[j];
        if (len > 0 && len < 8 && (q[len - 1] & 0x80)) u |= ~uint64_t{0} << (8 * len);
        push(integer(static_cast<int64_t>(u)));
        break;
      }
      case 'G': {  // BINFLOAT: big-endian double
        const uint8_t* q = take(8);
        uint64_t u = 0;
        for (int j = 0; j < 8; ++j) u = (u << 8) | q[j];
        Val v;
        v.kind = Kind::Float;
        std::memcpy(&v.f, &u, 8);
        push(v);
        break;
      }
      case 'X': {
        const uint64_t len = le(4);
        push(str(Kind::Str, take(len), len));
        break;
      }
      case 0x8c: {
        const uint64_t len = le(1);
        push(str(Kind::Str, take(len), len));
        break;
      }
      case 0x8d: {
        const uint64_t len = le(8);
        push(str(Kind::Str, take(len), len));
        break;
      }
      case 'T':  // BINSTRING (protocol <= 2 byte strings), read as text
      case 'U': {
        const uint64_t len = le(op == 'T' ? 4 : 1);
        push(str(Kind::Str, take(len), len));
        break;
      }
      case 'B':
      case 'C':
      case 0x8e: {
        const uint64_t len = le(op == 'C' ? 1 : op == 'B' ? 4 : 8);
        push(str(Kind::Bytes, take(len), len));
        break;
      }
      case ')': push(tuple({})); break;
      case 0x85:
      case 0x86:
      case 0x87: {
        const size_t k = static_cast<size_t>(op - 0x84);
        std::vector<Val> items(k);
        for (size_t j = k; j-- > 0;) items[j] = pop();
        push(tuple(std::move(items)));
        break;
      }
      case 't': push(tuple(pop_mark())); break;
      case ']': push(make(ObjKind::List)); break;
      case 'l': {
        auto items = pop_mark();
        Val v = make(ObjKind::List);
        arena_[static_cast<size_t>(v.i)].items = std::move(items);
        push(v);
        break;
      }
      case '}': push(make(ObjKind::Dict)); break;
      case 'd': {
        auto items = pop_mark();
        if (items.size() % 2) fail("DICT with an odd number of items");
        Val v = make(ObjKind::Dict);
        for (size_t j = 0; j < items.size(); j += 2) setitem(v, std::move(items[j]), std::move(items[j + 1]));
        push(v);
        break;
      }
      case 'a': {
        Val v = pop();
        std::vector<Val> one;
        one.push_back(std::move(v));
        append(top(), std::move(one));
        break;
      }
      case 'e': {
        auto items = pop_mark();
        append(top(), std::move(items));
        break;
      }
      case 's': {
        Val v = pop(), k = pop();
        setitem(top(), std::move(k), std::move(v));
        break;
      }
      case 'u': {
        auto items = pop_mark();
        if (items.size() % 2) fail("SETITEMS with an odd number of items");
        Val& d = top();
        for (size_t j = 0; j < items.size(); j += 2) setitem(d, std::move(items[j]), std::move(items[j + 1]));
        break;
      }
      case 'q': memo_put(le(1)); break;
      case 'r': memo_put(le(4)); break;
      case 0x94: memo_put(memo_.size()); break;
      case 'h': memo_get(le(1)); break;
      case 'j': memo_get(le(4)); break;
      case 'c': {
        const std::string module = line();
        const std::string name = line();
        push(global(module, name));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        Val name = pop(), module = pop();
        if (name.kind != Kind::Str || module.kind != Kind::Str) fail("STACK_GLOBAL needs two strings");
        push(global(*module.s, *name.s));
        break;
      }
      case 'Q': {
        Val pid = pop();
        push(persistent(pid));
        break;
      }
      case 'R': {
        Val args = pop(), fn = pop();
        push(reduce(fn, args));
        break;
      }
      case 'b': {  // BUILD: only the attribute dict state_dict() carries (_metadata) is accepted, and dropped
        Val state = pop();
        Val& target = top();
        const bool ok_state = state.kind == Kind::None || as(state, ObjKind::Dict) || as(state, ObjKind::Tuple);
        if (!(as(target, ObjKind::Dict) || as(target, ObjKind::Tensor)) || !ok_state)
          fail("BUILD of " + std::string(kind_name(target, arena_)) + " with " + kind_name(state, arena_) +
               " is not supported");
        break;
      }
      case 0x81: fail("NEWOBJ (building an object of a class) is refused: a state dict holds no objects");
      case 0x92: fail("NEWOBJ_EX (building an object of a class) is refused: a state dict holds no objects");
      case 'i':
      case 'o': fail("INST/OBJ (building an object of a class) is refused: a state dict holds no objects");
      case 0x82:
      case 0x83:
      case 0x84: fail("EXT opcodes (the copyreg extension registry) are refused");
      case 0x97:
      case 0x98:
      case 0x96: fail("out-of-band buffers (protocol 5) are not supported");
      case 'P': fail("text persistent ids (protocol 0) are not supported");
      case 0x8f:
      case 0x90:
      case 0x91: fail("sets are not supported in a state dict");
      default: {
        char buf[8];
        std::snprintf(buf, sizeof buf, "0x%02x", op);
        fail(std::string("opcode ") + buf + " is not supported (text-mode pickles of protocol 0/1 are not read)");
      }
    }
  }
}

Tensor materialise(const Obj& t, const Obj& s, const ZipMember& member, const uint8_t* data,
                   const std::shared_ptr<const void>& holder, const std::string& where, const std::string& name) {
  const size_t el = dtype_bytes(s.dtype, 1);
  if (static_cast<unsigned __int128>(s.numel) * el != member.size)
    throw Error(where + ": tensor '" + name + "': storage '" + s.key + "' holds " + std::to_string(member.size) +
                " bytes, its pickle says " + std::to_string(s.numel) + " x " + std::to_string(el));
  // Every element index must fall inside the storage.
  unsigned __int128 numel = 1, last = static_cast<unsigned __int128>(t.offset);
  for (size_t d = 0; d < t.shape.size(); ++d) {
    numel *= static_cast<unsigned __int128>(t.shape[d]);
    if (numel > (static_cast<unsigned __int128>(1) << 62)) throw Error(where + ": tensor '" + name + "' is too large");
    if (t.shape[d] > 0) last += static_cast<unsigned __int128>(t.shape[d] - 1) * static_cast<uint64_t>(t.stride[d]);
  }
  if (numel > 0 && last >= static_cast<unsigned __int128>(s.numel))
    throw Error(where + ": tensor '" + name + "' reaches element " + std::to_string(static_cast<uint64_t>(last)) +
                " of a storage of " + std::to_string(s.numel));
  const Shape shape(t.shape);
  if (numel == 0) return Tensor::zeros(shape, s.dtype);
  const uint8_t* base = data + member.offset + static_cast<size_t>(t.offset) * el;
  bool contiguous = true;
  int64_t expect = 1;
  for (size_t d = t.shape.size(); d-- > 0;) {
    if (t.shape[d] != 1 && t.stride[d] != expect) contiguous = false;
    expect *= t.shape[d];
  }
  if (contiguous && reinterpret_cast<uintptr_t>(base) % el == 0) return Tensor::view(shape, s.dtype, base, holder);
  // A strided (or unaligned) layout: gather the elements in row-major order.
  Tensor out = Tensor::empty(shape, s.dtype);
  uint8_t* dst = static_cast<uint8_t*>(out.raw());
  std::vector<int64_t> idx(t.shape.size(), 0);
  for (uint64_t k = 0; k < static_cast<uint64_t>(numel); ++k) {
    int64_t off = 0;
    for (size_t d = 0; d < idx.size(); ++d) off += idx[d] * t.stride[d];
    std::memcpy(dst + k * el, base + static_cast<size_t>(off) * el, el);
    for (size_t d = idx.size(); d-- > 0;) {
      if (++idx[d] < t.shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

}  // namespace

std::map<std::string, Tensor> read_torch_buffer(const uint8_t* data, size_t size, std::shared_ptr<const void> holder,
                                                const std::string& where) {
  if (!looks_like_zip(data, size)) {
    if (size >= 2 && data[0] == 0x80)
      throw Error(where + ": a torch.save file of the legacy format (PyTorch < 1.6) is not supported; re-save it with "
                          "a current torch.save or as safetensors");
    throw Error(where + ": not a torch.save archive (no zip header)");
  }
  const auto members = read_zip_directory(data, size, where);
  // The archive's records sit under one top folder: <name>/data.pkl, <name>/data/<key>.
  std::string prefix;
  int found = 0;
  for (auto& [name, m] : members) {
    const size_t slash = name.find('/');
    if (slash != std::string::npos && name.compare(slash, std::string::npos, "/data.pkl") == 0) {
      prefix = name.substr(0, slash + 1);
      ++found;
    }
  }
  if (found != 1)
    throw Error(where + (found ? ": several data.pkl records" : ": no <name>/data.pkl record (not a torch.save archive)"));
  if (members.count(prefix + "code/") || members.count(prefix + "constants.pkl"))
    throw Error(where + ": a TorchScript module, not a state dict (save model.state_dict() instead)");
  if (auto bo = members.find(prefix + "byteorder"); bo != members.end()) {
    const std::string order(reinterpret_cast<const char*>(data + bo->second.offset), bo->second.size);
    if (order != "little") throw Error(where + ": byte order '" + order + "' is not supported (only little)");
  }
  const ZipMember& pkl = members.at(prefix + "data.pkl");
  if (pkl.method != 0) throw Error(where + ": data.pkl is compressed (method " + std::to_string(pkl.method) + ")");
  if (crc32(data + pkl.offset, pkl.size) != pkl.crc32) throw Error(where + ": data.pkl fails its CRC-32 check");

  Machine vm(data + pkl.offset, pkl.size, where + ": data.pkl");
  const Val root = vm.run();
  const auto& arena = vm.arena();
  auto dict_of = [&](const Val& v) -> const Obj* {
    return v.kind == Kind::Obj && arena[static_cast<size_t>(v.i)].kind == ObjKind::Dict ? &arena[static_cast<size_t>(v.i)]
                                                                                         : nullptr;
  };
  auto named_tensor = [&](const Val& k, const Val& v) {
    return k.kind == Kind::Str && v.kind == Kind::Obj && arena[static_cast<size_t>(v.i)].kind == ObjKind::Tensor;
  };
  auto all_tensors = [&](const Obj& d) {
    return std::all_of(d.pairs.begin(), d.pairs.end(), [&](const auto& kv) { return named_tensor(kv.first, kv.second); });
  };
  const Obj* sd = dict_of(root);
  if (!sd) throw Error(where + ": the pickle holds " + std::string(kind_name(root, arena)) + ", not a state dict");
  if (!all_tensors(*sd)) {
    const Obj* inner = nullptr;
    for (const char* key : {"state_dict", "model", "module"})
      if (auto it = sd->str_index.find(key); it != sd->str_index.end())
        if (const Obj* d = dict_of(sd->pairs[it->second].second); d && all_tensors(*d)) {
          inner = d;
          break;
        }
    if (!inner) {
      for (auto& [k, v] : sd->pairs)
        if (!named_tensor(k, v))
          throw Error(where + ": entry " + (k.kind == Kind::Str ? "'" + *k.s + "'" : std::string(kind_name(k, arena))) +
                      " holds " + kind_name(v, arena) +
                      ", expected a tensor (a state dict maps names to tensors; no state_dict/model/module dict found)");
    }
    sd = inner;
  }
  std::map<std::string, Tensor> out;
  for (auto& [k, v] : sd->pairs) {
    const Obj& t = arena[static_cast<size_t>(v.i)];
    const Obj& s = arena[t.storage];
    auto m = members.find(prefix + "data/" + s.key);
    if (m == members.end())
      throw Error(where + ": tensor '" + *k.s + "': storage record '" + prefix + "data/" + s.key + "' is missing");
    if (m->second.method != 0) throw Error(where + ": storage '" + s.key + "' is compressed");
    out[*k.s] = materialise(t, s, m->second, data, holder, where, *k.s);
  }
  return out;
}

std::map<std::string, Tensor> read_torch_file(const std::filesystem::path& path) {
  auto file = MappedFile::open(path);
  return read_torch_buffer(file->data(), file->size(), file, path.string());
}

}  // namespace yak::io
