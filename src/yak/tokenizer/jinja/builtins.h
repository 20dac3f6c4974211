// Filters, tests, methods, operators and globals of the Jinja interpreter (internal), written
// against the Host the evaluator provides for errors, calls and lookups.
#pragma once
#include <ctime>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "yak/tokenizer/jinja/value.h"

namespace yak::jinja {

class Host {
 public:
  virtual ~Host() = default;
  // Throws TemplateError of jinja2's class `kind` at the current line.
  [[noreturn]] virtual void fail(const std::string& kind, const std::string& msg) = 0;
  virtual Value call(const Value& f, Args& a) = 0;
  virtual Value getattr(const Value& obj, const std::string& name) = 0;
  virtual Value getitem(const Value& obj, const Value& key) = 0;
  virtual void tick() = 0;  // one unit of work against the step budget
};

// range, namespace, dict, raise_exception, strftime_now (formatting clock()'s time).
std::vector<std::pair<std::string, Value>> builtin_globals(Host& host, std::function<std::tm()> clock);
// obj.name as a bound method of a str, dict or list (Undefined when there is none).
Value method(const Value& obj, const std::string& name, Host& host);
// The items a for loop visits: a list's, a dict's keys, a string's characters, nothing for
// Undefined; TypeError otherwise.
List iterate(const Value& v, Host& host);
Value slice(const Value& v, const Value& lo, const Value& hi, const Value& step, Host& host);
Value apply_filter(const std::string& name, const Value& v, Args& a, Host& host);
bool apply_test(const std::string& name, const Value& v, Args& a, Host& host);
Value binary_op(const std::string& op, const Value& a, const Value& b, Host& host);
bool compare_op(const std::string& op, const Value& a, const Value& b, Host& host);

}  // namespace yak::jinja
