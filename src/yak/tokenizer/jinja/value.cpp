#include "yak/tokenizer/jinja/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "yak/base/error.h"
#include "yak/base/utf8.h"

namespace yak::jinja {

Value Value::dict() { return Value(std::make_shared<Dict>()); }

Value Value::from_json(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return Value(None{});
    case nlohmann::ordered_json::value_t::boolean: return Value(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return Value(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: return Value(static_cast<int64_t>(j.get<uint64_t>()));
    case nlohmann::ordered_json::value_t::number_float: return Value(j.get<double>());
    case nlohmann::ordered_json::value_t::string: return Value(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      List l;
      for (const auto& x : j) l.push_back(from_json(x));
      return list(std::move(l));
    }
    case nlohmann::ordered_json::value_t::object: {
      Value d = dict();
      for (const auto& [k, v] : j.items()) d.dict_ref().entries.emplace_back(Value(k), from_json(v));
      return d;
    }
    default: throw Error("jinja: a JSON value of type " + std::string(j.type_name()) + " has no template value");
  }
}

void Value::throw_type(const char* want) const {
  std::string got = type_name();
  if (const auto* u = std::get_if<Undefined>(&v_); u && !u->name.empty()) got += " '" + u->name + "'";
  throw Error("expected " + std::string(want) + ", got " + got);
}

int64_t Value::as_int() const {
  if (is_bool()) return as_bool() ? 1 : 0;
  return get<int64_t>("int");
}

double Value::as_double() const {
  if (is_float()) return std::get<double>(v_);
  if (is_int() || is_bool()) return static_cast<double>(as_int());
  throw_type("a number");
}

bool Value::truthy() const {
  return std::visit(
      [](const auto& x) -> bool {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, Undefined> || std::is_same_v<T, None>) return false;
        else if constexpr (std::is_same_v<T, bool>) return x;
        else if constexpr (std::is_same_v<T, int64_t>) return x != 0;
        else if constexpr (std::is_same_v<T, double>) return x != 0.0;
        else if constexpr (std::is_same_v<T, std::string>) return !x.empty();
        else if constexpr (std::is_same_v<T, std::shared_ptr<List>>) return !x->empty();
        else if constexpr (std::is_same_v<T, std::shared_ptr<Dict>>) return !x->entries.empty() || x->is_namespace;
        else return true;
      },
      v_);
}

std::string Value::type_name() const {
  if (is_undefined()) return "Undefined";
  if (is_none()) return "NoneType";
  if (is_bool()) return "bool";
  if (is_int()) return "int";
  if (is_float()) return "float";
  if (is_string()) return "str";
  if (is_list()) return tuple_ ? "tuple" : "list";
  if (is_dict()) return dict_ref().is_namespace ? "Namespace" : "dict";
  return "function";
}

std::string python_float(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string s(buf, r.ptr);  // [-]d[.ddd]e[+-]XX, the shortest digits that round-trip
  std::string sign;
  if (s[0] == '-') sign = "-", s.erase(0, 1);
  const size_t e = s.find('e');
  const int exp = std::stoi(s.substr(e + 1));
  std::string digits = s.substr(0, e);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  if (exp < -4 || exp >= 16) {
    std::string m = digits.substr(0, 1);
    if (digits.size() > 1) m += "." + digits.substr(1);
    char eb[16];
    std::snprintf(eb, sizeof eb, "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    return sign + m + eb;
  }
  if (exp < 0) return sign + "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
  const auto point = static_cast<size_t>(exp + 1);
  if (digits.size() <= point) return sign + digits + std::string(point - digits.size(), '0') + ".0";
  return sign + digits.substr(0, point) + "." + digits.substr(point);
}

namespace {
std::string repr_string(const std::string& s) {
  const bool dq = s.find('\'') != std::string::npos && s.find('"') == std::string::npos;
  const char q = dq ? '"' : '\'';
  std::string out(1, q);
  for (const unsigned char c : s) {
    if (c == static_cast<unsigned char>(q) || c == '\\') out += '\\', out += static_cast<char>(c);
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7f) {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      out += b;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + q;
}

void json_string(std::string& out, const std::string& s) {
  out += '"';
  for (const unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char b[8];
          std::snprintf(b, sizeof b, "\\u%04x", c);
          out += b;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

struct JsonWriter {
  int indent;
  std::string item_sep, key_sep;
  bool sort_keys;
  std::string out;

  void newline(int depth) {
    out += '\n';
    out.append(static_cast<size_t>(indent * depth), ' ');
  }
  std::string key_text(const Value& k) {
    if (k.is_string()) return k.str();
    if (k.is_bool()) return k.as_bool() ? "true" : "false";
    if (k.is_none()) return "null";
    if (k.is_int()) return std::to_string(k.as_int());
    if (k.is_float()) return python_float(k.as_double());
    throw Error("keys must be str, int, float, bool or None, not " + k.type_name());
  }
  void write(const Value& v, int depth) {
    if (v.is_none()) out += "null";
    else if (v.is_bool()) out += v.as_bool() ? "true" : "false";
    else if (v.is_int()) out += std::to_string(v.as_int());
    else if (v.is_float()) {
      const double d = v.as_double();
      out += std::isnan(d) ? "NaN" : std::isinf(d) ? (d > 0 ? "Infinity" : "-Infinity") : python_float(d);
    } else if (v.is_string()) json_string(out, v.str());
    else if (v.is_list()) {
      const auto& l = v.items();
      if (l.empty()) { out += "[]"; return; }
      out += '[';
      for (size_t i = 0; i < l.size(); ++i) {
        if (i) out += item_sep;
        if (indent >= 0) newline(depth + 1);
        write(l[i], depth + 1);
      }
      if (indent >= 0) newline(depth);
      out += ']';
    } else if (v.is_dict()) {
      std::vector<std::pair<std::string, const Value*>> kv;
      for (const auto& [k, x] : v.dict_ref().entries) kv.emplace_back(key_text(k), &x);
      if (sort_keys) std::stable_sort(kv.begin(), kv.end(), [](auto& a, auto& b) { return a.first < b.first; });
      if (kv.empty()) { out += "{}"; return; }
      out += '{';
      for (size_t i = 0; i < kv.size(); ++i) {
        if (i) out += item_sep;
        if (indent >= 0) newline(depth + 1);
        json_string(out, kv[i].first);
        out += key_sep;
        write(*kv[i].second, depth + 1);
      }
      if (indent >= 0) newline(depth);
      out += '}';
    } else {
      throw Error("Object of type " + v.type_name() + " is not JSON serializable");
    }
  }
};
}  // namespace

std::string Value::to_str() const {
  if (is_undefined()) return "";
  if (is_string()) return str();
  return repr();
}

std::string Value::repr() const {
  if (is_undefined()) return "";
  if (is_none()) return "None";
  if (is_bool()) return as_bool() ? "True" : "False";
  if (is_int()) return std::to_string(as_int());
  if (is_float()) return python_float(as_double());
  if (is_string()) return repr_string(str());
  if (is_list()) {
    std::string s = tuple_ ? "(" : "[";
    const auto& l = items();
    for (size_t i = 0; i < l.size(); ++i) s += (i ? ", " : "") + l[i].repr();
    if (tuple_ && l.size() == 1) s += ",";
    return s + (tuple_ ? ")" : "]");
  }
  if (is_dict()) {
    const auto& d = dict_ref();
    std::string s = d.is_namespace ? "<Namespace {" : "{";
    for (size_t i = 0; i < d.entries.size(); ++i)
      s += (i ? ", " : "") + d.entries[i].first.repr() + ": " + d.entries[i].second.repr();
    return s + (d.is_namespace ? "}>" : "}");
  }
  return "<function>";
}

std::string Value::to_json(int indent, const std::string& item_sep, const std::string& key_sep, bool sort_keys) const {
  JsonWriter w{indent, item_sep.empty() ? (indent >= 0 ? "," : ", ") : item_sep, key_sep.empty() ? ": " : key_sep,
               sort_keys, {}};
  w.write(*this, 0);
  return w.out;
}

nlohmann::ordered_json Value::to_ordered_json() const {
  if (is_none() || is_undefined()) return nullptr;
  if (is_bool()) return as_bool();
  if (is_int()) return as_int();
  if (is_float()) return as_double();
  if (is_string()) return str();
  if (is_list()) {
    auto a = nlohmann::ordered_json::array();
    for (const auto& x : items()) a.push_back(x.to_ordered_json());
    return a;
  }
  if (is_dict()) {
    auto o = nlohmann::ordered_json::object();
    for (const auto& [k, v] : dict_ref().entries) o[k.to_str()] = v.to_ordered_json();
    return o;
  }
  throw Error("a function has no JSON value");
}

bool operator==(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() == b.as_double();
    return a.as_int() == b.as_int();
  }
  if (a.is_string() && b.is_string()) return a.str() == b.str();
  if (a.is_none() && b.is_none()) return true;
  if (a.is_undefined() && b.is_undefined()) return true;
  if (a.is_list() && b.is_list()) {
    if (a.is_tuple() != b.is_tuple()) return false;
    const auto &x = a.items(), &y = b.items();
    if (x.size() != y.size()) return false;
    for (size_t i = 0; i < x.size(); ++i)
      if (x[i] != y[i]) return false;
    return true;
  }
  if (a.is_dict() && b.is_dict()) {
    const auto &x = a.dict_ref(), &y = b.dict_ref();
    if (&x == &y) return true;
    if (x.entries.size() != y.entries.size()) return false;
    for (const auto& [k, v] : x.entries) {
      const Value* w = y.find(k);
      if (!w || *w != v) return false;
    }
    return true;
  }
  if (a.is_function() && b.is_function()) return &a.fn() == &b.fn();
  return false;
}

bool less(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() < b.as_double();
    return a.as_int() < b.as_int();
  }
  if (a.is_string() && b.is_string()) return a.str() < b.str();  // UTF-8 order is code-point order
  if (a.is_list() && b.is_list()) {
    const auto &x = a.items(), &y = b.items();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (less(x[i], y[i])) return true;
      if (less(y[i], x[i])) return false;
    }
    return x.size() < y.size();
  }
  throw Error("'<' not supported between instances of '" + a.type_name() + "' and '" + b.type_name() + "'");
}

Value* Dict::find(const Value& key) {
  for (auto& [k, v] : entries)
    if (k == key) return &v;
  return nullptr;
}

const Value* Dict::find(const Value& key) const {
  for (const auto& [k, v] : entries)
    if (k == key) return &v;
  return nullptr;
}

void Dict::set(const Value& key, Value v) {
  if (Value* x = find(key)) *x = std::move(v);
  else entries.emplace_back(key, std::move(v));
}

Value Args::get(size_t i, const char* name, Value fallback) const {
  if (i < pos.size()) return pos[i];
  for (const auto& [k, v] : kw)
    if (k == name) return v;
  return fallback;
}

std::u32string utf8_decode(const std::string& s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) out.push_back(static_cast<char32_t>(utf8::next(s, i)));
  return out;
}

std::string utf8_encode(const std::u32string& s) {
  std::string out;
  out.reserve(s.size());
  for (const char32_t c : s) utf8::append(out, static_cast<uint32_t>(c));
  return out;
}

}  // namespace yak::jinja
