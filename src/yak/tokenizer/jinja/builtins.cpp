// jinja2's filters and tests, Python's operators and the str/dict/list methods chat templates
// call, with Python's results (code points for lengths and slices, banker's rounding, floor
// division and modulo signs, str.split's whitespace rule).
#include "yak/tokenizer/jinja/builtins.h"

#include <utf8proc.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "yak/base/utf8.h"
#include "yak/tokenizer/jinja/jinja.h"

namespace yak::jinja {

namespace {

bool py_space(char32_t c) { return utf8::is_python_space(static_cast<uint32_t>(c)); }

std::u32string cps(const std::string& s) { return utf8_decode(s); }
std::string enc(const std::u32string& s) { return utf8_encode(s); }

std::string to_lower(const std::string& s) {
  auto c = cps(s);
  for (auto& x : c) x = static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(x)));
  return enc(c);
}
std::string to_upper(const std::string& s) {
  auto c = cps(s);
  for (auto& x : c) x = static_cast<char32_t>(utf8proc_toupper(static_cast<utf8proc_int32_t>(x)));
  return enc(c);
}
bool is_cased_letter(char32_t c) {
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT;
}

// str.strip / lstrip / rstrip with Python's rules (chars given: strip those code points).
std::string strip(const std::string& s, const Value& chars, bool left, bool right) {
  const auto c = cps(s);
  std::u32string set;
  const bool ws = chars.is_none() || chars.is_undefined();
  if (!ws) set = cps(chars.to_str());
  auto drop = [&](char32_t x) { return ws ? py_space(x) : set.find(x) != std::u32string::npos; };
  size_t b = 0, e = c.size();
  if (left)
    while (b < e && drop(c[b])) ++b;
  if (right)
    while (e > b && drop(c[e - 1])) --e;
  return enc(c.substr(b, e - b));
}

// str.split(sep=None, maxsplit=-1) and rsplit.
List split(const std::string& s, const Value& sep, int64_t maxsplit, bool from_right, Host& host) {
  List out;
  if (sep.is_none() || sep.is_undefined()) {
    const auto c = cps(s);
    std::vector<std::u32string> words;
    size_t i = 0;
    if (!from_right) {
      while (i < c.size()) {
        while (i < c.size() && py_space(c[i])) ++i;
        if (i >= c.size()) break;
        if (maxsplit >= 0 && static_cast<int64_t>(words.size()) == maxsplit) {
          size_t e = c.size();
          while (e > i && py_space(c[e - 1])) --e;
          words.push_back(c.substr(i, e - i));
          break;
        }
        size_t j = i;
        while (j < c.size() && !py_space(c[j])) ++j;
        words.push_back(c.substr(i, j - i));
        i = j;
      }
    } else {
      size_t e = c.size();
      while (e > 0) {
        while (e > 0 && py_space(c[e - 1])) --e;
        if (e == 0) break;
        if (maxsplit >= 0 && static_cast<int64_t>(words.size()) == maxsplit) {
          size_t b = 0;
          while (b < e && py_space(c[b])) ++b;
          words.insert(words.begin(), c.substr(b, e - b));
          break;
        }
        size_t j = e;
        while (j > 0 && !py_space(c[j - 1])) --j;
        words.insert(words.begin(), c.substr(j, e - j));
        e = j;
      }
    }
    for (auto& w : words) out.emplace_back(enc(w));
    return out;
  }
  const std::string d = sep.to_str();
  if (d.empty()) host.fail("ValueError", "empty separator");
  std::vector<std::string> parts;
  if (!from_right) {
    size_t p = 0;
    while (true) {
      if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) break;
      const size_t q = s.find(d, p);
      if (q == std::string::npos) break;
      parts.push_back(s.substr(p, q - p));
      p = q + d.size();
    }
    parts.push_back(s.substr(p));
  } else {
    size_t e = s.size();
    std::vector<std::string> rev;
    while (true) {
      if (maxsplit >= 0 && static_cast<int64_t>(rev.size()) == maxsplit) break;
      if (e < d.size()) break;
      const size_t q = s.rfind(d, e - d.size());
      if (q == std::string::npos) break;
      rev.push_back(s.substr(q + d.size(), e - q - d.size()));
      e = q;
    }
    rev.push_back(s.substr(0, e));
    parts.assign(rev.rbegin(), rev.rend());
  }
  for (auto& p : parts) out.emplace_back(std::move(p));
  return out;
}

std::string replace(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
  if (from.empty()) {
    // Python inserts `to` around every character.
    const auto c = cps(s);
    std::string out;
    int64_t n = 0;
    for (size_t i = 0; i <= c.size(); ++i) {
      if (count < 0 || n < count) out += to, ++n;
      if (i < c.size()) out += enc(std::u32string(1, c[i]));
    }
    return out;
  }
  std::string out;
  size_t p = 0;
  int64_t n = 0;
  while (count < 0 || n < count) {
    const size_t q = s.find(from, p);
    if (q == std::string::npos) break;
    out += s.substr(p, q - p) + to;
    p = q + from.size();
    ++n;
  }
  return out + s.substr(p);
}

// jinja2's title filter: every chunk after a run of [-\s({[<] starts upper, the rest lower.
std::string title_filter(const std::string& s) {
  const auto c = cps(s);
  std::u32string out;
  bool start = true;
  for (const char32_t x : c) {
    const bool sep = x == '-' || py_space(x) || x == '(' || x == '{' || x == '[' || x == '<';
    if (sep) {
      out += x;
      start = true;
    } else {
      out += static_cast<char32_t>(start ? utf8proc_toupper(static_cast<utf8proc_int32_t>(x))
                                         : utf8proc_tolower(static_cast<utf8proc_int32_t>(x)));
      start = false;
    }
  }
  return enc(out);
}

// Python's str.title(): upper after an uncased character, lower after a cased one.
std::string title_method(const std::string& s) {
  std::u32string out;
  bool prev_cased = false;
  for (const char32_t x : cps(s)) {
    const bool cased = is_cased_letter(x);
    out += static_cast<char32_t>(prev_cased ? utf8proc_tolower(static_cast<utf8proc_int32_t>(x))
                                            : utf8proc_toupper(static_cast<utf8proc_int32_t>(x)));
    prev_cased = cased;
  }
  return enc(out);
}

std::string capitalize(const std::string& s) {
  auto c = cps(s);
  for (size_t i = 0; i < c.size(); ++i)
    c[i] = static_cast<char32_t>(i == 0 ? utf8proc_toupper(static_cast<utf8proc_int32_t>(c[i]))
                                        : utf8proc_tolower(static_cast<utf8proc_int32_t>(c[i])));
  return enc(c);
}

int64_t length(const Value& v, Host& host) {
  if (v.is_undefined()) return 0;
  if (v.is_string()) return static_cast<int64_t>(cps(v.str()).size());
  if (v.is_list()) return static_cast<int64_t>(v.items().size());
  if (v.is_dict()) return static_cast<int64_t>(v.dict_ref().entries.size());
  host.fail("TypeError", "object of type '" + v.type_name() + "' has no len()");
}

Value to_list(const Value& v, Host& host) { return Value::list(iterate(v, host)); }

// "a.b.0" attribute paths as jinja2's make_attrgetter reads them.
Value attr_path(const Value& v, const std::string& path, Host& host) {
  Value x = v;
  size_t p = 0;
  while (p <= path.size()) {
    const size_t q = std::min(path.find('.', p), path.size());
    const std::string part = path.substr(p, q - p);
    const bool digits = !part.empty() && part.size() < 18 && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    x = digits ? host.getitem(x, Value(static_cast<int64_t>(std::stoll(part)))) : host.getitem(x, Value(part));
    p = q + 1;
  }
  return x;
}

// Python's printf-style `fmt % args` for %s %r %d %i %f %x %%.
std::string percent_format(const std::string& fmt, const Value& args, Host& host) {
  List a = args.is_tuple() ? args.items() : List{args};
  size_t k = 0;
  std::string out;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    if (++i >= fmt.size()) host.fail("ValueError", "incomplete format");
    std::string spec;
    while (i < fmt.size() && std::strchr("0123456789.-+ #", fmt[i])) spec += fmt[i++];
    const char c = fmt[i];
    if (c == '%') {
      out += '%';
      continue;
    }
    if (k >= a.size()) host.fail("TypeError", "not enough arguments for format string");
    const Value& x = a[k++];
    char buf[128];
    if (c == 's') out += x.to_str();
    else if (c == 'r') out += x.repr();
    else if (c == 'd' || c == 'i') {
      if (!x.is_number()) host.fail("TypeError", "%d format: a real number is required, not " + x.type_name());
      std::snprintf(buf, sizeof buf, ("%" + spec + "lld").c_str(), static_cast<long long>(x.is_float() ? std::trunc(x.as_double()) : x.as_int()));
      out += buf;
    } else if (c == 'f' || c == 'e' || c == 'g' || c == 'x') {
      if (!x.is_number()) host.fail("TypeError", std::string("%") + c + " format: a number is required");
      if (c == 'x') std::snprintf(buf, sizeof buf, ("%" + spec + "llx").c_str(), static_cast<long long>(x.as_int()));
      else std::snprintf(buf, sizeof buf, ("%" + spec + c).c_str(), x.as_double());
      out += buf;
    } else {
      host.fail("ValueError", std::string("unsupported format character '") + c + "'");
    }
  }
  if (k < a.size() && args.is_tuple()) host.fail("TypeError", "not all arguments converted during string formatting");
  return out;
}

// str.format with {} {0} {name} fields (no format specs).
std::string brace_format(const std::string& fmt, Args& a, Host& host) {
  std::string out;
  size_t auto_i = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] == '{' && i + 1 < fmt.size() && fmt[i + 1] == '{') { out += '{'; ++i; continue; }
    if (fmt[i] == '}' && i + 1 < fmt.size() && fmt[i + 1] == '}') { out += '}'; ++i; continue; }
    if (fmt[i] != '{') { out += fmt[i]; continue; }
    const size_t e = fmt.find('}', i);
    if (e == std::string::npos) host.fail("ValueError", "Single '{' encountered in format string");
    std::string field = fmt.substr(i + 1, e - i - 1);
    if (field.find(':') != std::string::npos) field = field.substr(0, field.find(':'));
    Value v;
    if (field.empty()) v = a.get(auto_i++, "");
    else if (field.size() < 9 && std::all_of(field.begin(), field.end(), [](char c) { return c >= '0' && c <= '9'; }))
      v = a.get(static_cast<size_t>(std::stoul(field)), "");
    else v = a.get(SIZE_MAX, field.c_str());
    if (v.is_undefined()) host.fail("KeyError", "'" + field + "'");
    out += v.to_str();
    i = e;
  }
  return out;
}

// json.dumps(ensure_ascii=True): every code point past ASCII as \uXXXX (surrogate pairs above the BMP).
std::string ascii_escape(const std::string& j) {
  std::string out;
  for (const char32_t c : cps(j)) {
    if (c < 0x80) {
      out += static_cast<char>(c);
      continue;
    }
    char buf[16];
    if (c < 0x10000) {
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
    } else {
      const char32_t v = c - 0x10000;
      std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", static_cast<unsigned>(0xd800 + (v >> 10)), static_cast<unsigned>(0xdc00 + (v & 0x3ff)));
    }
    out += buf;
  }
  return out;
}

Value tuple2(Value a, Value b) { return Value::tuple({std::move(a), std::move(b)}); }

// Sort key for sort/dictsort/unique: strings lower-cased unless case-sensitive.
Value sort_key(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value(to_lower(v.str()));
  return v;
}

void sort_values(List& l, bool reverse, const std::function<Value(const Value&)>& key, Host& host) {
  std::vector<std::pair<Value, Value>> kv;
  for (auto& x : l) kv.emplace_back(key(x), x);
  try {
    std::stable_sort(kv.begin(), kv.end(), [&](const auto& a, const auto& b) { return reverse ? less(b.first, a.first) : less(a.first, b.first); });
  } catch (const Error& e) {
    host.fail("TypeError", e.what());
  }
  l.clear();
  for (auto& [k, v] : kv) l.push_back(std::move(v));
}

bool kw_bool(const Args& a, size_t i, const char* name, bool fallback) {
  const Value v = a.get(i, name);
  return v.is_undefined() ? fallback : v.truthy();
}

// select/reject/selectattr/rejectattr: the items whose test (or truthiness) is `want`.
Value select(const Value& v, Args& a, bool by_attr, bool want, Host& host) {
  const List items = v.truthy() ? iterate(v, host) : List{};  // jinja2 yields nothing for a false value
  size_t i = 0;
  std::string attr;
  if (by_attr) attr = a.get(i++, "attribute").to_str();
  const Value test = a.get(i++, "");
  Args rest;
  for (size_t k = i; k < a.pos.size(); ++k) rest.pos.push_back(a.pos[k]);
  List out;
  for (const Value& x : items) {
    host.tick();
    const Value y = by_attr ? attr_path(x, attr, host) : x;
    const bool r = test.is_undefined() ? y.truthy() : apply_test(test.to_str(), y, rest, host);
    if (r == want) out.push_back(x);
  }
  return Value::list(std::move(out));
}

Value number_op(const std::string& op, const Value& a, const Value& b, Host& host) {
  const bool fl = a.is_float() || b.is_float();
  if (op == "+") return fl ? Value(a.as_double() + b.as_double()) : Value(a.as_int() + b.as_int());
  if (op == "-") return fl ? Value(a.as_double() - b.as_double()) : Value(a.as_int() - b.as_int());
  if (op == "*") return fl ? Value(a.as_double() * b.as_double()) : Value(a.as_int() * b.as_int());
  if (op == "/") {
    if (b.as_double() == 0) host.fail("ZeroDivisionError", "division by zero");
    return Value(a.as_double() / b.as_double());
  }
  if (op == "//" || op == "%") {
    if (b.as_double() == 0) host.fail("ZeroDivisionError", "integer division or modulo by zero");
    if (fl) {
      const double x = a.as_double(), y = b.as_double();
      const double q = std::floor(x / y);
      return op == "//" ? Value(q) : Value(x - q * y);
    }
    const int64_t x = a.as_int(), y = b.as_int();
    int64_t q = x / y;
    if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
    return op == "//" ? Value(q) : Value(x - q * y);
  }
  if (op == "**") {
    if (!fl && b.as_int() >= 0) {
      int64_t r = 1;
      for (int64_t k = 0; k < b.as_int() && k < 64; ++k) r *= a.as_int();
      return Value(r);
    }
    return Value(std::pow(a.as_double(), b.as_double()));
  }
  host.fail("TypeError", "unsupported operator " + op);
}

}  // namespace

List iterate(const Value& v, Host& host) {
  if (v.is_undefined()) return {};
  if (v.is_list()) return v.items();
  if (v.is_dict()) {
    List keys;
    for (const auto& [k, x] : v.dict_ref().entries) keys.push_back(k);
    return keys;
  }
  if (v.is_string()) {
    List chars;
    for (const char32_t c : cps(v.str())) chars.emplace_back(enc(std::u32string(1, c)));
    return chars;
  }
  host.fail("TypeError", "'" + v.type_name() + "' object is not iterable");
}

Value slice(const Value& v, const Value& lo, const Value& hi, const Value& step, Host& host) {
  List items;
  std::u32string chars;
  int64_t n;
  if (v.is_list()) n = static_cast<int64_t>(v.items().size());
  else if (v.is_string()) chars = cps(v.str()), n = static_cast<int64_t>(chars.size());
  else host.fail("TypeError", "'" + v.type_name() + "' object is not subscriptable");
  const int64_t st = step.is_none() ? 1 : step.as_int();
  if (st == 0) host.fail("ValueError", "slice step cannot be zero");
  auto clamp = [&](const Value& x, int64_t dflt) {
    if (x.is_none()) return dflt;
    int64_t i = x.as_int();
    if (i < 0) i += n;
    if (st > 0) return std::clamp<int64_t>(i, 0, n);
    return std::clamp<int64_t>(i, -1, n - 1);
  };
  const int64_t b = clamp(lo, st > 0 ? 0 : n - 1), e = clamp(hi, st > 0 ? n : -1);
  std::u32string s;
  for (int64_t i = b; st > 0 ? i < e : i > e; i += st) {
    if (v.is_list()) items.push_back(v.items()[static_cast<size_t>(i)]);
    else s += chars[static_cast<size_t>(i)];
  }
  if (v.is_string()) return Value(enc(s));
  return v.is_tuple() ? Value::tuple(std::move(items)) : Value::list(std::move(items));
}

std::vector<std::pair<std::string, Value>> builtin_globals(Host& host, std::function<std::tm()> clock) {
  std::vector<std::pair<std::string, Value>> g;
  g.emplace_back("range", Value::function([&host](Args& a) -> Value {
    int64_t start = 0, stop, step = 1;
    if (a.pos.size() == 1) stop = a.pos[0].as_int();
    else if (a.pos.size() >= 2) start = a.pos[0].as_int(), stop = a.pos[1].as_int(), step = a.pos.size() > 2 ? a.pos[2].as_int() : 1;
    else host.fail("TypeError", "range expected at least 1 argument");
    if (step == 0) host.fail("ValueError", "range() arg 3 must not be zero");
    List l;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
      if (l.size() >= 100000) host.fail("OverflowError", "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
      l.emplace_back(i);
    }
    return Value::list(std::move(l));
  }));
  auto make_dict = [&host](Args& a, bool ns) -> Value {
    Value d = Value::dict();
    d.dict_ref().is_namespace = ns;
    for (const Value& p : a.pos) {
      if (!p.is_dict()) host.fail("TypeError", "cannot convert " + p.type_name() + " to a dict");
      for (const auto& [k, v] : p.dict_ref().entries) d.dict_ref().set(k, v);
    }
    for (const auto& [k, v] : a.kw) d.dict_ref().set(Value(k), v);
    return d;
  };
  g.emplace_back("namespace", Value::function([make_dict](Args& a) { return make_dict(a, true); }));
  g.emplace_back("dict", Value::function([make_dict](Args& a) { return make_dict(a, false); }));
  g.emplace_back("raise_exception", Value::function([&host](Args& a) -> Value {
    host.fail("TemplateError", a.get(0, "message").to_str());
    return Value();
  }));
  g.emplace_back("strftime_now", Value::function([clock](Args& a) -> Value {
    const std::tm tm = clock();
    char buf[256];
    const size_t n = std::strftime(buf, sizeof buf, a.get(0, "format").to_str().c_str(), &tm);
    return Value(std::string(buf, n));
  }));
  return g;
}

Value method(const Value& obj, const std::string& name, Host& host) {
  auto bound = [](auto fn) { return Value::function(std::move(fn)); };
  auto unsafe = [&host, &obj, &name] {
    const std::string t = obj.type_name();
    return Value::function([&host, t, name](Args&) -> Value {
      host.fail("SecurityError", "access to attribute '" + name + "' of '" + t + "' object is unsafe.");
      return Value();
    });
  };
  if (obj.is_string()) {
    const std::string s = obj.str();
    if (name == "startswith" || name == "endswith") {
      const bool start = name == "startswith";
      return bound([s, start](Args& a) -> Value {
        const Value p = a.get(0, "prefix");
        List opts = p.is_list() ? p.items() : List{p};
        for (const Value& o : opts) {
          const std::string x = o.to_str();
          if (start ? s.compare(0, x.size(), x) == 0 : (s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0))
            return Value(true);
        }
        return Value(false);
      });
    }
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
      const bool l = name != "rstrip", r = name != "lstrip";
      return bound([s, l, r](Args& a) { return Value(strip(s, a.get(0, "chars", Value(None{})), l, r)); });
    }
    if (name == "split" || name == "rsplit") {
      const bool right = name == "rsplit";
      return bound([s, right, &host](Args& a) {
        const Value m = a.get(1, "maxsplit");
        return Value::list(split(s, a.get(0, "sep", Value(None{})), m.is_undefined() ? -1 : m.as_int(), right, host));
      });
    }
    if (name == "replace")
      return bound([s](Args& a) {
        const Value c = a.get(2, "count");
        return Value(replace(s, a.get(0, "old").to_str(), a.get(1, "new").to_str(), c.is_undefined() ? -1 : c.as_int()));
      });
    if (name == "upper") return bound([s](Args&) { return Value(to_upper(s)); });
    if (name == "lower") return bound([s](Args&) { return Value(to_lower(s)); });
    if (name == "title") return bound([s](Args&) { return Value(title_method(s)); });
    if (name == "capitalize") return bound([s](Args&) { return Value(capitalize(s)); });
    if (name == "find" || name == "rfind" || name == "index" || name == "count") {
      return bound([s, name, &host](Args& a) -> Value {
        const std::string sub = a.get(0, "sub").to_str();
        if (name == "count") {
          if (sub.empty()) return Value(static_cast<int64_t>(cps(s).size()) + 1);
          int64_t n = 0;
          for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
          return Value(n);
        }
        const size_t p = name == "rfind" ? s.rfind(sub) : s.find(sub);
        if (p == std::string::npos) {
          if (name == "index") host.fail("ValueError", "substring not found");
          return Value(static_cast<int64_t>(-1));
        }
        return Value(static_cast<int64_t>(cps(s.substr(0, p)).size()));
      });
    }
    if (name == "join")
      return bound([s, &host](Args& a) {
        std::string out;
        const List items = iterate(a.get(0, "iterable"), host);
        for (size_t i = 0; i < items.size(); ++i) out += (i ? s : "") + items[i].to_str();
        return Value(out);
      });
    if (name == "splitlines")
      return bound([s](Args&) {
        List out;
        size_t p = 0;
        while (p < s.size()) {
          size_t q = s.find_first_of("\r\n", p);
          if (q == std::string::npos) {
            out.emplace_back(s.substr(p));
            break;
          }
          out.emplace_back(s.substr(p, q - p));
          p = q + ((s[q] == '\r' && q + 1 < s.size() && s[q + 1] == '\n') ? 2 : 1);
        }
        return Value::list(std::move(out));
      });
    if (name == "format") return bound([s, &host](Args& a) { return Value(brace_format(s, a, host)); });
    if (name == "isdigit" || name == "isalpha" || name == "isalnum" || name == "isspace" || name == "isupper" ||
        name == "islower")
      return bound([s, name](Args&) {
        const auto c = cps(s);
        if (c.empty()) return Value(false);
        bool cased = false;
        for (const char32_t x : c) {
          const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(x));
          const bool alpha = cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
          const bool digit = cat == UTF8PROC_CATEGORY_ND;
          if (name == "isdigit" && !digit) return Value(false);
          if (name == "isalpha" && !alpha) return Value(false);
          if (name == "isalnum" && !alpha && !digit) return Value(false);
          if (name == "isspace" && !py_space(x)) return Value(false);
          if (name == "isupper" && cat == UTF8PROC_CATEGORY_LL) return Value(false);
          if (name == "islower" && cat == UTF8PROC_CATEGORY_LU) return Value(false);
          cased = cased || cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL;
        }
        return Value(name == "isupper" || name == "islower" ? cased : true);
      });
    if (name == "removeprefix" || name == "removesuffix") {
      const bool pre = name == "removeprefix";
      return bound([s, pre](Args& a) {
        const std::string x = a.get(0, "x").to_str();
        if (pre && s.compare(0, x.size(), x) == 0) return Value(s.substr(x.size()));
        if (!pre && s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0)
          return Value(s.substr(0, s.size() - x.size()));
        return Value(s);
      });
    }
    return Value(Undefined{name});
  }
  if (obj.is_dict()) {
    const Value d = obj;
    if (name == "get")
      return bound([d](Args& a) {
        const Value* v = d.dict_ref().find(a.get(0, "key"));
        return v ? *v : a.get(1, "default", Value(None{}));
      });
    if (name == "items")
      return bound([d](Args&) {
        List l;
        for (const auto& [k, v] : d.dict_ref().entries) l.push_back(tuple2(k, v));
        return Value::list(std::move(l));
      });
    if (name == "keys" || name == "values") {
      const bool keys = name == "keys";
      return bound([d, keys](Args&) {
        List l;
        for (const auto& [k, v] : d.dict_ref().entries) l.push_back(keys ? k : v);
        return Value::list(std::move(l));
      });
    }
    if (name == "copy")
      return bound([d](Args&) {
        Value c = Value::dict();
        c.dict_ref().entries = d.dict_ref().entries;
        return c;
      });
    if (name == "update" || name == "pop" || name == "popitem" || name == "setdefault" || name == "clear") return unsafe();
    return Value(Undefined{name});
  }
  if (obj.is_list()) {
    const Value l = obj;
    if (name == "index" || name == "count") {
      const bool count = name == "count";
      return bound([l, count, &host](Args& a) -> Value {
        const Value x = a.get(0, "x");
        int64_t n = 0, i = 0;
        for (const Value& y : l.items()) {
          if (y == x) {
            if (!count) return Value(i);
            ++n;
          }
          ++i;
        }
        if (!count) host.fail("ValueError", x.repr() + " is not in list");
        return Value(n);
      });
    }
    if (name == "append" || name == "extend" || name == "insert" || name == "pop" || name == "remove" ||
        name == "sort" || name == "reverse" || name == "clear")
      return unsafe();
  }
  return Value(Undefined{name});
}

Value apply_filter(const std::string& name, const Value& v, Args& a, Host& host) {
  if (name == "tojson") {
    // transformers' tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False).
    const bool ascii = kw_bool(a, 0, "ensure_ascii", false);
    const Value indent = a.get(1, "indent", Value(None{}));
    const Value sep = a.get(2, "separators", Value(None{}));
    std::string item_sep, key_sep;
    if (sep.is_list() && sep.items().size() == 2) item_sep = sep.items()[0].to_str(), key_sep = sep.items()[1].to_str();
    try {
      std::string j = v.to_json(indent.is_none() ? -1 : static_cast<int>(indent.as_int()), item_sep, key_sep,
                                kw_bool(a, 3, "sort_keys", false));
      return Value(ascii ? ascii_escape(j) : j);
    } catch (const Error& e) {
      host.fail("TypeError", e.what());
    }
  }
  if (name == "length" || name == "count") return Value(length(v, host));
  if (name == "trim") return Value(strip(v.to_str(), a.get(0, "chars", Value(None{})), true, true));
  if (name == "string") return Value(v.to_str());
  if (name == "safe") return v;
  if (name == "lower") return Value(to_lower(v.to_str()));
  if (name == "upper") return Value(to_upper(v.to_str()));
  if (name == "title") return Value(title_filter(v.to_str()));
  if (name == "capitalize") return Value(capitalize(v.to_str()));
  if (name == "items") {
    if (v.is_undefined()) return Value::list();
    if (!v.is_dict()) host.fail("TypeError", "Can only get item pairs from a mapping.");
    List l;
    for (const auto& [k, x] : v.dict_ref().entries) l.push_back(tuple2(k, x));
    return Value::list(std::move(l));
  }
  if (name == "list") return to_list(v, host);
  if (name == "join") {
    const std::string d = a.get(0, "d", Value("")).to_str();
    const Value attr = a.get(1, "attribute", Value(None{}));
    std::string out;
    const List items = iterate(v, host);
    for (size_t i = 0; i < items.size(); ++i)
      out += (i ? d : "") + (attr.is_none() ? items[i] : attr_path(items[i], attr.to_str(), host)).to_str();
    return Value(out);
  }
  if (name == "selectattr" || name == "rejectattr") return select(v, a, true, name == "selectattr", host);
  if (name == "select" || name == "reject") return select(v, a, false, name == "select", host);
  if (name == "map") {
    const List items = v.truthy() ? iterate(v, host) : List{};
    List out;
    const Value attr = a.get(SIZE_MAX, "attribute");
    if (!attr.is_undefined()) {
      const Value dflt = a.get(SIZE_MAX, "default");
      for (const Value& x : items) {
        Value y = attr_path(x, attr.to_str(), host);
        out.push_back(y.is_undefined() && !dflt.is_undefined() ? dflt : y);
      }
    } else {
      if (a.pos.empty()) host.fail("FilterArgumentError", "map requires a filter argument");
      const std::string f = a.pos[0].to_str();
      Args rest;
      rest.pos.assign(a.pos.begin() + 1, a.pos.end());
      rest.kw = a.kw;
      for (const Value& x : items) out.push_back(apply_filter(f, x, rest, host));
    }
    return Value::list(std::move(out));
  }
  if (name == "replace") {
    const Value c = a.get(2, "count", Value(None{}));
    return Value(replace(v.to_str(), a.get(0, "old").to_str(), a.get(1, "new").to_str(), c.is_none() ? -1 : c.as_int()));
  }
  if (name == "indent") {
    const Value w = a.get(0, "width", Value(static_cast<int64_t>(4)));
    const std::string ind = w.is_string() ? w.str() : std::string(static_cast<size_t>(std::max<int64_t>(0, w.as_int())), ' ');
    const bool first = kw_bool(a, 1, "first", false), blank = kw_bool(a, 2, "blank", false);
    std::string s = v.to_str() + "\n";
    std::vector<std::string> lines;
    size_t p = 0;
    while (p < s.size()) {
      size_t q = s.find('\n', p);
      lines.push_back(s.substr(p, q - p));
      p = q + 1;
    }
    std::string rv;
    if (blank) {
      for (size_t i = 0; i < lines.size(); ++i) rv += (i ? "\n" + ind : "") + lines[i];
    } else {
      rv = lines.empty() ? "" : lines[0];
      for (size_t i = 1; i < lines.size(); ++i) rv += "\n" + (lines[i].empty() ? "" : ind + lines[i]);
    }
    return Value(first ? ind + rv : rv);
  }
  if (name == "int" || name == "float") {
    const bool integer = name == "int";
    const Value dflt = a.get(0, "default", integer ? Value(static_cast<int64_t>(0)) : Value(0.0));
    if (v.is_number()) return integer ? Value(v.is_float() ? static_cast<int64_t>(std::trunc(v.as_double())) : v.as_int()) : Value(v.as_double());
    if (v.is_string()) {
      const std::string s = strip(v.str(), Value(None{}), true, true);
      try {
        size_t used = 0;
        if (integer) {
          const long long x = std::stoll(s, &used, 10);
          if (used == s.size()) return Value(static_cast<int64_t>(x));
        }
        const double d = std::stod(s, &used);
        if (used == s.size()) return integer ? Value(static_cast<int64_t>(std::trunc(d))) : Value(d);
      } catch (const std::exception&) {
      }
    }
    return dflt;
  }
  if (name == "default" || name == "d") {
    const Value dflt = a.get(0, "default_value", Value(""));
    const bool boolean = kw_bool(a, 1, "boolean", false);
    if (v.is_undefined() || (boolean && !v.truthy())) return dflt;
    return v;
  }
  if (name == "unique") {
    const bool cs = kw_bool(a, 0, "case_sensitive", false);
    const Value attr = a.get(1, "attribute", Value(None{}));
    List seen, out;
    for (const Value& x : iterate(v, host)) {
      const Value k = sort_key(attr.is_none() ? x : attr_path(x, attr.to_str(), host), cs);
      if (std::find(seen.begin(), seen.end(), k) != seen.end()) continue;
      seen.push_back(k);
      out.push_back(x);
    }
    return Value::list(std::move(out));
  }
  if (name == "dictsort") {
    if (!v.is_dict()) host.fail("TypeError", "dictsort needs a mapping");
    const bool cs = kw_bool(a, 0, "case_sensitive", false);
    const std::string by = a.get(1, "by", Value("key")).to_str();
    const bool rev = kw_bool(a, 2, "reverse", false);
    List l;
    for (const auto& [k, x] : v.dict_ref().entries) l.push_back(tuple2(k, x));
    const size_t pos = by == "value" ? 1 : 0;
    sort_values(l, rev, [&](const Value& t) { return sort_key(t.items()[pos], cs); }, host);
    return Value::list(std::move(l));
  }
  if (name == "sort") {
    List l = iterate(v, host);
    const bool rev = kw_bool(a, 0, "reverse", false), cs = kw_bool(a, 1, "case_sensitive", false);
    const Value attr = a.get(2, "attribute", Value(None{}));
    sort_values(l, rev, [&](const Value& x) { return sort_key(attr.is_none() ? x : attr_path(x, attr.to_str(), host), cs); }, host);
    return Value::list(std::move(l));
  }
  if (name == "first" || name == "last") {
    const List l = iterate(v, host);
    if (l.empty()) return Value(Undefined{name});
    return name == "first" ? l.front() : l.back();
  }
  if (name == "reverse") {
    if (v.is_string()) {
      auto c = cps(v.str());
      std::reverse(c.begin(), c.end());
      return Value(enc(c));
    }
    List l = iterate(v, host);
    std::reverse(l.begin(), l.end());
    return Value::list(std::move(l));
  }
  if (name == "sum") {
    const Value attr = a.get(0, "attribute", Value(None{}));
    Value total = a.get(1, "start", Value(static_cast<int64_t>(0)));
    for (const Value& x : iterate(v, host)) total = binary_op("+", total, attr.is_none() ? x : attr_path(x, attr.to_str(), host), host);
    return total;
  }
  if (name == "min" || name == "max") {
    List l = iterate(v, host);
    if (l.empty()) return Value(Undefined{name});
    const bool cs = kw_bool(a, 0, "case_sensitive", false);
    sort_values(l, false, [&](const Value& x) { return sort_key(x, cs); }, host);
    return name == "min" ? l.front() : l.back();
  }
  if (name == "abs") {
    if (!v.is_number()) host.fail("TypeError", "bad operand type for abs(): '" + v.type_name() + "'");
    return v.is_float() ? Value(std::fabs(v.as_double())) : Value(static_cast<int64_t>(std::llabs(v.as_int())));
  }
  if (name == "round") {
    const int64_t prec = a.get(0, "precision", Value(static_cast<int64_t>(0))).as_int();
    const std::string m = a.get(1, "method", Value("common")).to_str();
    const double scale = std::pow(10.0, static_cast<double>(prec)), x = v.as_double() * scale;
    double r = m == "floor" ? std::floor(x) : m == "ceil" ? std::ceil(x) : std::nearbyint(x);
    return Value(r / scale);
  }
  if (name == "escape" || name == "e" || name == "forceescape") {
    std::string out;
    for (const char c : v.to_str()) {
      switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&#34;"; break;
        case '\'': out += "&#39;"; break;
        default: out += c;
      }
    }
    return Value(out);
  }
  if (name == "attr") return host.getattr(v, a.get(0, "name").to_str());
  if (name == "format") {
    List args = a.pos;
    return Value(percent_format(v.to_str(), Value::tuple(std::move(args)), host));
  }
  if (name == "pprint") return Value(v.repr());
  if (name == "wordcount") return Value(static_cast<int64_t>(split(v.to_str(), Value(None{}), -1, false, host).size()));
  if (name == "center") {
    const auto c = cps(v.to_str());
    const auto w = static_cast<size_t>(std::max<int64_t>(0, a.get(0, "width", Value(static_cast<int64_t>(80))).as_int()));
    if (c.size() >= w) return Value(v.to_str());
    const size_t pad = w - c.size(), left = pad / 2 + (pad & w & 1);
    return Value(std::string(left, ' ') + enc(c) + std::string(pad - left, ' '));
  }
  host.fail("TemplateAssertionError", "No filter named '" + name + "'.");
}

bool apply_test(const std::string& name, const Value& v, Args& a, Host& host) {
  const Value x = a.get(0, "value");
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict() && !v.dict_ref().is_namespace;
  if (name == "iterable") return v.is_undefined() || v.is_list() || v.is_dict() || v.is_string();
  if (name == "sequence") return v.is_undefined() || v.is_list() || v.is_dict() || v.is_string();
  if (name == "callable") return v.is_function();
  if (name == "odd" || name == "even") {
    if (!v.is_number()) host.fail("TypeError", "odd/even need a number");
    return (v.as_int() % 2 != 0) == (name == "odd");
  }
  if (name == "divisibleby") return x.as_int() != 0 && v.as_int() % x.as_int() == 0;
  if (name == "eq" || name == "equalto" || name == "==") return v == x;
  if (name == "ne" || name == "!=") return v != x;
  if (name == "lt" || name == "lessthan" || name == "<") return compare_op("<", v, x, host);
  if (name == "le" || name == "<=") return compare_op("<=", v, x, host);
  if (name == "gt" || name == "greaterthan" || name == ">") return compare_op(">", v, x, host);
  if (name == "ge" || name == ">=") return compare_op(">=", v, x, host);
  if (name == "in") return compare_op("in", v, x, host);
  if (name == "sameas") {
    if (v.is_list() && x.is_list()) return &v.items() == &x.items();
    if (v.is_dict() && x.is_dict()) return &v.dict_ref() == &x.dict_ref();
    if (v.is_bool() != x.is_bool()) return false;
    return v == x && v.type_name() == x.type_name();
  }
  if (name == "lower") return v.is_string() && to_lower(v.str()) == v.str();
  if (name == "upper") return v.is_string() && to_upper(v.str()) == v.str();
  if (name == "escaped") return false;
  host.fail("TemplateAssertionError", "No test named '" + name + "'.");
}

// Strings and lists a template builds stay below 64 MB (a doubling loop would exhaust memory).
constexpr size_t kMaxBuilt = size_t{64} << 20;

Value binary_op(const std::string& op, const Value& a, const Value& b, Host& host) {
  auto sized = [&](size_t n) {
    if (n > kMaxBuilt) host.fail("MemoryError", "a string or list past 64 MB");
  };
  if (op == "~") {
    std::string x = a.to_str(), y = b.to_str();
    sized(x.size() + y.size());
    return Value(x + y);
  }
  if (a.is_undefined() || b.is_undefined())
    host.fail("UndefinedError", "'" + (a.is_undefined() ? a : b).undefined_name() + "' is undefined");
  if (a.is_number() && b.is_number()) return number_op(op, a, b, host);
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      sized(a.str().size() + b.str().size());
      return Value(a.str() + b.str());
    }
    if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
      sized(a.items().size() + b.items().size());
      List l = a.items();
      l.insert(l.end(), b.items().begin(), b.items().end());
      return a.is_tuple() ? Value::tuple(std::move(l)) : Value::list(std::move(l));
    }
  }
  if (op == "*") {
    const Value& seq = a.is_number() ? b : a;
    const Value& n = a.is_number() ? a : b;
    if (n.is_int() || n.is_bool()) {
      const int64_t k = std::max<int64_t>(0, n.as_int());
      if (seq.is_string() || seq.is_list()) {
        const size_t unit = seq.is_string() ? seq.str().size() : seq.items().size();
        if (unit > 0 && static_cast<uint64_t>(k) > kMaxBuilt / unit) host.fail("MemoryError", "a string or list past 64 MB");
      }
      if (seq.is_string()) {
        std::string s;
        for (int64_t i = 0; i < k; ++i) s += seq.str();
        return Value(s);
      }
      if (seq.is_list()) {
        List l;
        for (int64_t i = 0; i < k; ++i) l.insert(l.end(), seq.items().begin(), seq.items().end());
        return Value::list(std::move(l));
      }
    }
  }
  if (op == "%" && a.is_string()) return Value(percent_format(a.str(), b, host));
  host.fail("TypeError", "unsupported operand type(s) for " + op + ": '" + a.type_name() + "' and '" + b.type_name() + "'");
}

bool compare_op(const std::string& op, const Value& a, const Value& b, Host& host) {
  if (op == "==") return a == b;
  if (op == "!=") return a != b;
  if (op == "in" || op == "notin") {
    bool r = false;
    if (b.is_string()) {
      if (!a.is_string()) host.fail("TypeError", "'in <string>' requires string as left operand, not " + a.type_name());
      r = b.str().find(a.str()) != std::string::npos;
    } else if (b.is_list()) {
      r = std::find(b.items().begin(), b.items().end(), a) != b.items().end();
    } else if (b.is_dict()) {
      r = b.dict_ref().find(a) != nullptr;
    } else if (!b.is_undefined()) {
      host.fail("TypeError", "argument of type '" + b.type_name() + "' is not iterable");
    }
    return op == "in" ? r : !r;
  }
  if (a.is_undefined() || b.is_undefined())
    host.fail("UndefinedError", "'" + (a.is_undefined() ? a : b).undefined_name() + "' is undefined");
  try {
    if (op == "<") return less(a, b);
    if (op == ">") return less(b, a);
    if (op == "<=") return !less(b, a);
    if (op == ">=") return !less(a, b);
  } catch (const TemplateError&) {
    throw;
  } catch (const Error& e) {
    host.fail("TypeError", e.what());
  }
  host.fail("TypeError", "unknown comparison " + op);
}

}  // namespace yak::jinja
