// The parser's entry point (internal to the interpreter).
#pragma once
#include <string>

#include "yak/tokenizer/jinja/ast.h"

namespace yak::jinja {

// Tokens and trees of a template; throws TemplateError (TemplateSyntaxError) naming the line.
Body parse_template(const std::string& source, const std::string& name);

}  // namespace yak::jinja
