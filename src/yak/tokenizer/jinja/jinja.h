// A Jinja2 interpreter for the templates Hugging Face models ship (chat_template): the language
// subset those templates use, rendered as transformers renders them — jinja2's
// ImmutableSandboxedEnvironment with trim_blocks and lstrip_blocks, the loop controls
// ({% break %}, {% continue %}) and the {% generation %} tag, newlines normalised and one
// trailing newline of the source dropped, and the globals raise_exception, strftime_now, range,
// namespace and dict. Statements: if/elif/else, for (tuple targets, `if` filter, else, the
// loop.* variables), set (names, tuples, namespace attributes, blocks), macro, call blocks,
// filter blocks. Expressions: Python's operators and literals, attribute and item access,
// slices, filters, tests, and the string/dict/list methods templates call. A template that uses
// something else, or raises, fails with TemplateError naming the template and line.
#pragma once
#include <ctime>
#include <functional>
#include <memory>
#include <string>

#include "yak/base/error.h"
#include "yak/tokenizer/jinja/value.h"

namespace yak::jinja {

// A template failed to parse or render; what() is "NAME:LINE: message". kind() is jinja2's
// exception class for the same failure: TemplateSyntaxError, TemplateError (raise_exception),
// UndefinedError, TypeError, SecurityError...
class TemplateError : public Error {
 public:
  TemplateError(std::string kind, const std::string& what) : Error(what), kind_(std::move(kind)) {}
  const std::string& kind() const { return kind_; }

 private:
  std::string kind_;
};

struct TemplateNode;

class Template {
 public:
  // Parses `source` (name is used in errors: a file name or "chat_template").
  Template(const std::string& source, std::string name = "template");
  ~Template();
  Template(Template&&) noexcept;
  Template& operator=(Template&&) noexcept;

  // Renders with `variables` (a dict) as the template's globals, beside the built-in ones.
  // strftime_now(format) formats the time `clock` gives (default: the local time now).
  std::string render(const Value& variables, const std::function<std::tm()>& clock = {}) const;
  const std::string& name() const { return name_; }
  const std::string& source() const { return source_; }

 private:
  std::string name_, source_;
  std::unique_ptr<TemplateNode> root_;
};

}  // namespace yak::jinja
