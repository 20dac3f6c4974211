// Values of the Jinja interpreter, with Python's semantics where Hugging Face chat templates rely
// on them: str() and repr() spelling (True, None, ['a', 1], 0.1), == across int/float/bool,
// truthiness, strings measured and sliced in code points, lists and dicts shared by reference
// (a namespace is a dict whose attributes can be assigned), and jinja2's Undefined (prints as
// nothing, is false, iterates as empty, fails on attribute access).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "yak/base/json.h"

namespace yak::jinja {

class Value;
using List = std::vector<Value>;
struct Dict;
struct Args;
using Function = std::function<Value(Args&)>;

struct Undefined {
  std::string name;  // what was looked up, for the error message
};
struct None {};

class Value {
 public:
  Value() : v_(Undefined{}) {}
  Value(None) : v_(None{}) {}
  Value(Undefined u) : v_(std::move(u)) {}
  Value(bool b) : v_(b) {}
  Value(int i) : v_(static_cast<int64_t>(i)) {}
  Value(int64_t i) : v_(i) {}
  Value(double d) : v_(d) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(const char* s) : v_(std::string(s)) {}
  Value(std::shared_ptr<List> l, bool tuple = false) : v_(std::move(l)), tuple_(tuple) {}
  Value(std::shared_ptr<Dict> d) : v_(std::move(d)) {}
  Value(std::shared_ptr<Function> f) : v_(std::move(f)) {}

  static Value list(List items = {}) { return Value(std::make_shared<List>(std::move(items))); }
  static Value tuple(List items) { return Value(std::make_shared<List>(std::move(items)), true); }
  static Value dict();
  static Value function(Function f) { return Value(std::make_shared<Function>(std::move(f))); }
  static Value from_json(const nlohmann::ordered_json& j);

  bool is_undefined() const { return std::holds_alternative<Undefined>(v_); }
  bool is_none() const { return std::holds_alternative<None>(v_); }
  bool is_bool() const { return std::holds_alternative<bool>(v_); }
  bool is_int() const { return std::holds_alternative<int64_t>(v_); }  // bool is not
  bool is_float() const { return std::holds_alternative<double>(v_); }
  bool is_number() const { return is_int() || is_float() || is_bool(); }
  bool is_string() const { return std::holds_alternative<std::string>(v_); }
  bool is_list() const { return std::holds_alternative<std::shared_ptr<List>>(v_); }
  bool is_tuple() const { return is_list() && tuple_; }
  bool is_dict() const { return std::holds_alternative<std::shared_ptr<Dict>>(v_); }
  bool is_function() const { return std::holds_alternative<std::shared_ptr<Function>>(v_); }

  // Typed access; a value of another type throws yak::Error naming both types (a template's type
  // error, never a crash).
  bool as_bool() const { return get<bool>("bool"); }
  int64_t as_int() const;  // int or bool
  double as_double() const;  // int, float or bool
  const std::string& str() const { return get<std::string>("str"); }
  List& items() const { return *get<std::shared_ptr<List>>("list"); }
  Dict& dict_ref() const { return *get<std::shared_ptr<Dict>>("dict"); }
  Function& fn() const { return *get<std::shared_ptr<Function>>("function"); }
  const std::string& undefined_name() const { return get<Undefined>("Undefined").name; }

  bool truthy() const;
  std::string type_name() const;  // Python's: 'str', 'NoneType', 'dict', ...
  std::string to_str() const;     // str(x)
  std::string repr() const;       // repr(x)
  // JSON as Python's json.dumps(x, ensure_ascii=False, indent=..., separators=..., sort_keys=...)
  // writes it; indent < 0 is None. Throws on values JSON cannot hold (functions, Undefined).
  std::string to_json(int indent = -1, const std::string& item_sep = "", const std::string& key_sep = "",
                      bool sort_keys = false) const;
  nlohmann::ordered_json to_ordered_json() const;

  friend bool operator==(const Value& a, const Value& b);
  friend bool operator!=(const Value& a, const Value& b) { return !(a == b); }

 private:
  template <typename T>
  const T& get(const char* want) const {
    if (const T* p = std::get_if<T>(&v_)) return *p;
    throw_type(want);
  }
  [[noreturn]] void throw_type(const char* want) const;

  std::variant<Undefined, None, bool, int64_t, double, std::string, std::shared_ptr<List>, std::shared_ptr<Dict>,
               std::shared_ptr<Function>>
      v_;
  bool tuple_ = false;
};

// An insertion-ordered dict (Python 3.7+). Keys are Values (templates index by ints too); the
// dicts of a chat template are small, so lookups are linear.
struct Dict {
  std::vector<std::pair<Value, Value>> entries;
  bool is_namespace = false;  // namespace(): attributes may be assigned with {% set ns.x = ... %}
  Value* find(const Value& key);
  const Value* find(const Value& key) const;
  void set(const Value& key, Value v);
};

// Call arguments: positional, then keyword.
struct Args {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
  // The i-th positional argument or the keyword `name`, else `fallback`.
  Value get(size_t i, const char* name, Value fallback = Value()) const;
};

// Python's float repr (shortest round trip: 0.1, 1.0, 1e-05, 1e+16).
std::string python_float(double d);
// Code points of UTF-8 text, and back.
std::u32string utf8_decode(const std::string& s);
std::string utf8_encode(const std::u32string& s);
// Less-than as Python orders numbers, strings and lists; throws for other types.
bool less(const Value& a, const Value& b);

}  // namespace yak::jinja
