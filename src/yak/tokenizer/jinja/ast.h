// The parsed form of a Jinja template (internal to the interpreter): expressions and statements
// as small trees, each with the source line it came from.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "yak/tokenizer/jinja/value.h"

namespace yak::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

enum class ExprKind {
  Literal,   // value
  Name,      // name
  Attr,      // kids[0].name
  Item,      // kids[0][kids[1]]
  Slice,     // kids[0][kids[1]:kids[2]:kids[3]] (null kids are omitted bounds)
  Call,      // kids[0](kids[1..]) with arg_names ("" = positional)
  Filter,    // kids[0] | name(kids[1..])
  Test,      // kids[0] is [not] name(kids[1..])
  Not,       // not kids[0]
  Neg,       // -kids[0]
  Pos,       // +kids[0]
  Binary,    // kids[0] op kids[1]: + - * / // % ** ~ and or
  Compare,   // kids[0] ops[0] kids[1] ops[1] kids[2] ... (== != < > <= >= in notin)
  Cond,      // kids[1] if kids[0] else kids[2] (kids[2] may be null)
  ListLit,   // [kids...]
  TupleLit,  // (kids...)
  DictLit,   // {kids[0]: kids[1], ...}
};

struct Expr {
  ExprKind kind;
  int line = 0;
  Value value;                         // Literal
  std::string name;                    // Name, Attr, Filter, Test, Binary's operator
  bool negated = false;                // Test
  std::vector<ExprPtr> kids;           // operands (nullable for Slice / Cond)
  std::vector<std::string> arg_names;  // Call / Filter / Test: keyword of each argument after kids[0]
  std::vector<std::string> ops;        // Compare
};

struct Node;
using Body = std::vector<Node>;

enum class NodeKind {
  Text,         // text
  Output,       // {{ expr }}
  If,           // branches (conds[i], bodies[i]); else in else_body
  For,          // for targets in expr [if cond] body [else else_body]
  Set,          // set targets = expr | set ns.attr = expr (attr non-empty)
  SetBlock,     // set targets[0] %}body{% endset (filters applied when filter non-null)
  Macro,        // macro name(params = defaults) body
  CallBlock,    // call[(params)] expr %}body{% endcall
  FilterBlock,  // filter f %}body{% endfilter (the filter chain in expr, applied to kids' output)
  Break,
  Continue,
  Generation,   // {% generation %}body{% endgeneration %}: the body, as is
};

struct Node {
  NodeKind kind = NodeKind::Text;
  int line = 0;
  std::string text;                  // Text; Macro name; Set's namespace attribute
  ExprPtr expr, cond;                // Output/For iter/Set value/CallBlock call/FilterBlock filter chain; For's if
  std::vector<std::string> targets;  // For/Set targets; Macro/CallBlock parameters
  std::vector<ExprPtr> defaults;     // Macro/CallBlock parameter defaults (null: required)
  std::vector<ExprPtr> conds;        // If
  std::vector<Body> bodies;          // If branches; bodies[0] is the body of every other statement
  Body else_body;                    // If/For
};

}  // namespace yak::jinja
