// Lexer and parser: template text -> tokens (with jinja2's whitespace rules under trim_blocks and
// lstrip_blocks) -> statement and expression trees.
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>

#include "yak/tokenizer/jinja/ast.h"
#include "yak/tokenizer/jinja/jinja.h"
#include "yak/tokenizer/jinja/parse.h"

namespace yak::jinja {

namespace {

enum class Tok { Text, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Int, Float, Op, Eof };

struct Token {
  Tok kind;
  std::string text;
  int line;
};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string rstrip(const std::string& s) {
  size_t n = s.size();
  while (n > 0 && is_space(s[n - 1])) --n;
  return s.substr(0, n);
}

// Python string-literal escapes, as jinja2 decodes them (unicode-escape).
std::string unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 >= s.size()) {
      out += s[i];
      continue;
    }
    const char c = s[++i];
    auto hex = [&](size_t n) {
      char32_t cp = 0;
      for (size_t k = 1; k <= n; ++k) {
        if (i + k >= s.size() || !std::isxdigit(static_cast<unsigned char>(s[i + k]))) return false;
        const char h = s[i + k];
        cp = cp * 16 + static_cast<char32_t>(std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(h) - 'a' + 10));
      }
      out += utf8_encode(std::u32string(1, cp));
      i += n;
      return true;
    };
    switch (c) {
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case '\\': out += '\\'; break;
      case '\'': out += '\''; break;
      case '"': out += '"'; break;
      case 'a': out += '\a'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'v': out += '\v'; break;
      case '0': out += '\0'; break;
      case '\n': break;  // line continuation
      case 'x':
        if (!hex(2)) out += "\\x";
        break;
      case 'u':
        if (!hex(4)) out += "\\u";
        break;
      case 'U':
        if (!hex(8)) out += "\\U";
        break;
      default: out += '\\', out += c;
    }
  }
  return out;
}

class Lexer {
 public:
  Lexer(std::string src, const std::string& name) : name_(name) {
    // jinja2 normalises every newline to \n and drops one trailing newline.
    std::string s;
    s.reserve(src.size());
    for (size_t i = 0; i < src.size(); ++i) {
      if (src[i] == '\r') {
        s += '\n';
        if (i + 1 < src.size() && src[i + 1] == '\n') ++i;
      } else {
        s += src[i];
      }
    }
    if (!s.empty() && s.back() == '\n') s.pop_back();
    src_ = std::move(s);
  }

  std::vector<Token> run() {
    size_t pos = 0;
    bool line_starting = true;
    while (pos < src_.size()) {
      size_t at = pos;
      char type = 0;
      while (true) {
        at = src_.find('{', at);
        if (at == std::string::npos || at + 1 >= src_.size()) break;
        const char c = src_[at + 1];
        if (c == '{' || c == '%' || c == '#') {
          type = c;
          break;
        }
        ++at;
      }
      if (!type) {
        emit_text(src_.substr(pos));
        break;
      }
      std::string text = src_.substr(pos, at - pos);
      const char sign = at + 2 < src_.size() ? src_[at + 2] : 0;
      if (sign == '-') {
        text = rstrip(text);
      } else if (sign != '+' && type != '{') {  // lstrip_blocks
        const size_t l = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
        if (l > 0 || line_starting) {
          bool blank = true;
          for (size_t k = l; k < text.size(); ++k) blank = blank && is_space(text[k]);
          if (blank) text.resize(l);
        }
      }
      emit_text(text);
      line_ += count_lines(pos, at);
      pos = at + 2 + ((sign == '-' || sign == '+') ? 1 : 0);
      if (type == '#') {
        const size_t end = src_.find("#}", pos);
        if (end == std::string::npos) fail("the comment is not closed");
        const bool strip = end > pos && src_[end - 1] == '-';
        line_ += count_lines(pos, end);
        pos = finish_tag(end + 2, strip, true, line_starting);
        continue;
      }
      tokens_.push_back({type == '{' ? Tok::VarBegin : Tok::BlockBegin, "", line_});
      pos = lex_inside(pos, type == '{' ? '}' : '%', line_starting);
    }
    tokens_.push_back({Tok::Eof, "", line_});
    return std::move(tokens_);
  }

 private:
  [[noreturn]] void fail(const std::string& msg) const {
    throw TemplateError("TemplateSyntaxError", name_ + ":" + std::to_string(line_) + ": " + msg);
  }
  int count_lines(size_t from, size_t to) const {
    int n = 0;
    for (size_t i = from; i < to && i < src_.size(); ++i) n += src_[i] == '\n';
    return n;
  }
  void emit_text(const std::string& t) {
    if (!t.empty()) tokens_.push_back({Tok::Text, t, line_});
  }
  // After a tag's closing characters at `pos`: strip what follows ('-') or one newline
  // (trim_blocks, for block and comment tags).
  size_t finish_tag(size_t pos, bool strip, bool trim, bool& line_starting) {
    const size_t start = pos;
    if (strip) {
      while (pos < src_.size() && is_space(src_[pos])) ++pos;
    } else if (trim && pos < src_.size() && src_[pos] == '\n') {
      ++pos;
    }
    line_starting = pos > start && src_[pos - 1] == '\n';
    if (pos == start) line_starting = false;
    line_ += count_lines(start, pos);
    return pos;
  }

  size_t lex_inside(size_t pos, char closer, bool& line_starting) {
    int depth = 0;
    while (true) {
      while (pos < src_.size() && is_space(src_[pos])) line_ += src_[pos] == '\n', ++pos;
      if (pos >= src_.size()) fail(closer == '}' ? "unexpected end of template, expected '}}'" : "unexpected end of template, expected '%}'");
      if (depth == 0) {
        const bool dash = src_[pos] == '-' && pos + 2 < src_.size() && src_[pos + 1] == closer && src_[pos + 2] == '}';
        const bool plain = src_[pos] == closer && pos + 1 < src_.size() && src_[pos + 1] == '}';
        if (dash || plain) {
          tokens_.push_back({closer == '}' ? Tok::VarEnd : Tok::BlockEnd, "", line_});
          return finish_tag(pos + (dash ? 3 : 2), dash, closer == '%', line_starting);
        }
      }
      const char c = src_[pos];
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t e = pos;
        while (e < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) ++e;
        tokens_.push_back({Tok::Name, src_.substr(pos, e - pos), line_});
        pos = e;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        size_t e = pos;
        bool flt = false;
        while (e < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) ++e;
        if (e + 1 < src_.size() && src_[e] == '.' && std::isdigit(static_cast<unsigned char>(src_[e + 1]))) {
          flt = true;
          ++e;
          while (e < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) ++e;
        }
        if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
          size_t f = e + 1;
          if (f < src_.size() && (src_[f] == '+' || src_[f] == '-')) ++f;
          if (f < src_.size() && std::isdigit(static_cast<unsigned char>(src_[f]))) {
            flt = true;
            e = f;
            while (e < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e]))) ++e;
          }
        }
        std::string num = src_.substr(pos, e - pos);
        num.erase(std::remove(num.begin(), num.end(), '_'), num.end());
        tokens_.push_back({flt ? Tok::Float : Tok::Int, num, line_});
        pos = e;
      } else if (c == '\'' || c == '"') {
        size_t e = pos + 1;
        while (e < src_.size() && src_[e] != c) e += src_[e] == '\\' ? 2 : 1;
        if (e >= src_.size()) fail("unexpected end of string");
        const std::string raw = src_.substr(pos + 1, e - pos - 1);
        tokens_.push_back({Tok::String, unescape(raw), line_});
        line_ += count_lines(pos, e);
        pos = e + 1;
      } else {
        static const char* two[] = {"**", "//", "==", "!=", "<=", ">="};
        std::string op(1, c);
        for (const char* t : two)
          if (src_.compare(pos, 2, t) == 0) op = t;
        if (op.size() == 1 && !std::strchr("+-*/%~<>=.,:|()[]{}", c)) fail(std::string("unexpected char '") + c + "'");
        if (op == "(" || op == "[" || op == "{") ++depth;
        if (op == ")" || op == "]" || op == "}") {
          if (depth == 0) fail("unexpected '" + op + "'");
          --depth;
        }
        tokens_.push_back({Tok::Op, op, line_});
        pos += op.size();
      }
    }
  }

  std::string src_;
  const std::string& name_;
  std::vector<Token> tokens_;
  int line_ = 1;
};

class Parser {
 public:
  Parser(std::vector<Token> toks, const std::string& name) : t_(std::move(toks)), name_(name) {}

  Body parse_all() {
    Body b = parse_body({});
    if (peek().kind != Tok::Eof) fail("unexpected tag");
    return b;
  }

 private:
  const Token& peek(size_t k = 0) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
  Token next() { return t_[std::min(i_++, t_.size() - 1)]; }
  [[noreturn]] void fail(const std::string& msg) const {
    throw TemplateError("TemplateSyntaxError", name_ + ":" + std::to_string(peek().line) + ": " + msg);
  }
  bool is_op(const char* op, size_t k = 0) const { return peek(k).kind == Tok::Op && peek(k).text == op; }
  bool is_name(const char* n, size_t k = 0) const { return peek(k).kind == Tok::Name && peek(k).text == n; }
  void expect_op(const char* op) {
    if (!is_op(op)) fail(std::string("expected '") + op + "', got '" + peek().text + "'");
    next();
  }
  std::string expect_name() {
    if (peek().kind != Tok::Name) fail("expected a name, got '" + peek().text + "'");
    return next().text;
  }
  void expect_block_end() {
    if (peek().kind != Tok::BlockEnd) fail("expected the end of the statement, got '" + peek().text + "'");
    next();
  }

  // Statements until a block tag whose keyword is in `ends` (left unconsumed, after its '{%').
  Body parse_body(const std::vector<std::string>& ends) {
    Body body;
    while (true) {
      const Token& tk = peek();
      if (tk.kind == Tok::Eof) {
        if (!ends.empty()) fail("unexpected end of template, expected '" + ends.front() + "'");
        return body;
      }
      if (tk.kind == Tok::Text) {
        Node n;
        n.kind = NodeKind::Text;
        n.line = tk.line;
        n.text = tk.text;
        next();
        body.push_back(std::move(n));
      } else if (tk.kind == Tok::VarBegin) {
        next();
        Node n;
        n.kind = NodeKind::Output;
        n.line = tk.line;
        n.expr = parse_expr();
        if (peek().kind != Tok::VarEnd) fail("expected '}}', got '" + peek().text + "'");
        next();
        body.push_back(std::move(n));
      } else if (tk.kind == Tok::BlockBegin) {
        const Token& kw = peek(1);
        if (kw.kind != Tok::Name) fail("expected a statement name");
        for (const auto& e : ends)
          if (kw.text == e) {
            next();  // '{%' ; the caller reads the keyword
            return body;
          }
        next();
        body.push_back(parse_statement());
      } else {
        fail("unexpected '" + tk.text + "'");
      }
    }
  }

  Node parse_statement() {
    Nest nest(*this);
    const Token kw = next();
    Node n;
        n.kind = NodeKind::Text;
    n.line = kw.line;
    const std::string& k = kw.text;
    if (k == "if") {
      n.kind = NodeKind::If;
      n.conds.push_back(parse_expr());
      expect_block_end();
      while (true) {
        n.bodies.push_back(parse_body({"elif", "else", "endif"}));
        const std::string w = next().text;
        if (w == "elif") {
          n.conds.push_back(parse_expr());
          expect_block_end();
        } else if (w == "else") {
          expect_block_end();
          n.else_body = parse_body({"endif"});
          next();
          expect_block_end();
          break;
        } else {
          expect_block_end();
          break;
        }
      }
    } else if (k == "for") {
      n.kind = NodeKind::For;
      n.targets.push_back(expect_name());
      while (is_op(",")) {
        next();
        n.targets.push_back(expect_name());
      }
      if (!is_name("in")) fail("expected 'in' in the for loop");
      next();
      n.expr = parse_tuple_or_expr(/*no_cond=*/true);
      if (is_name("if")) {
        next();
        n.cond = parse_expr();
      }
      if (is_name("recursive")) fail("recursive for loops are not supported");
      expect_block_end();
      n.bodies.push_back(parse_body({"else", "endfor"}));
      if (next().text == "else") {
        expect_block_end();
        n.else_body = parse_body({"endfor"});
        next();
      }
      expect_block_end();
    } else if (k == "set") {
      const std::string first = expect_name();
      if (is_op(".")) {
        next();
        n.kind = NodeKind::Set;
        n.targets.push_back(first);
        n.text = expect_name();
        expect_op("=");
        n.expr = parse_tuple_or_expr(false);
        expect_block_end();
      } else {
        n.targets.push_back(first);
        while (is_op(",")) {
          next();
          n.targets.push_back(expect_name());
        }
        if (is_op("=")) {
          next();
          n.kind = NodeKind::Set;
          n.expr = parse_tuple_or_expr(false);
          expect_block_end();
        } else {
          n.kind = NodeKind::SetBlock;
          if (n.targets.size() != 1) fail("a set block assigns one name");
          if (is_op("|")) n.expr = parse_filter_chain(nullptr);
          expect_block_end();
          n.bodies.push_back(parse_body({"endset"}));
          next();
          expect_block_end();
        }
      }
    } else if (k == "macro" || k == "call") {
      n.kind = k == "macro" ? NodeKind::Macro : NodeKind::CallBlock;
      if (k == "macro") n.text = expect_name();
      if (is_op("(")) {  // the macro's parameters, or {% call(params) expr %}: caller()'s
        next();
        parse_params(n);
      }
      if (k == "call") n.expr = parse_expr();
      expect_block_end();
      n.bodies.push_back(parse_body({k == "macro" ? "endmacro" : "endcall"}));
      next();
      if (peek().kind == Tok::Name) next();  // {% endmacro name %}
      expect_block_end();
    } else if (k == "filter") {
      n.kind = NodeKind::FilterBlock;
      n.expr = parse_filter_chain(nullptr, /*leading_bar=*/false);
      expect_block_end();
      n.bodies.push_back(parse_body({"endfilter"}));
      next();
      expect_block_end();
    } else if (k == "break" || k == "continue") {
      n.kind = k == "break" ? NodeKind::Break : NodeKind::Continue;
      expect_block_end();
    } else if (k == "generation") {
      n.kind = NodeKind::Generation;
      expect_block_end();
      n.bodies.push_back(parse_body({"endgeneration"}));
      next();
      expect_block_end();
    } else {
      --i_;
      fail("unknown statement '" + k + "'");
    }
    return n;
  }

  // Parameters after '(' up to ')': names with optional defaults.
  void parse_params(Node& n) {
    while (!is_op(")")) {
      n.targets.push_back(expect_name());
      if (is_op("=")) {
        next();
        n.defaults.push_back(parse_expr());
      } else {
        n.defaults.push_back(nullptr);
      }
      if (is_op(",")) next();
      else if (!is_op(")")) fail("expected ',' or ')' in the parameters");
    }
    next();
  }

  ExprPtr make(ExprKind k, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = line;
    return e;
  }

  // `a, b` without brackets is a tuple where jinja2 allows one (for iterables, set values).
  ExprPtr parse_tuple_or_expr(bool no_cond) {
    const int line = peek().line;
    ExprPtr first = no_cond ? parse_or() : parse_expr();
    if (!is_op(",")) return first;
    auto t = make(ExprKind::TupleLit, line);
    t->kids.push_back(std::move(first));
    while (is_op(",")) {
      next();
      if (peek().kind == Tok::BlockEnd || is_name("if")) break;
      t->kids.push_back(no_cond ? parse_or() : parse_expr());
    }
    return t;
  }

  ExprPtr parse_expr() {
    Nest nest(*this);
    ExprPtr e = parse_or();
    while (is_name("if")) {
      const int line = next().line;
      auto c = make(ExprKind::Cond, line);
      c->kids.push_back(parse_or());  // kids[0]: the condition
      c->kids.push_back(std::move(e));
      if (is_name("else")) {
        next();
        c->kids.push_back(parse_expr());
      } else {
        c->kids.push_back(nullptr);
      }
      e = std::move(c);
    }
    return e;
  }
  ExprPtr binary(const char* op, ExprPtr a, ExprPtr b, int line) {
    auto e = make(ExprKind::Binary, line);
    e->name = op;
    e->kids.push_back(std::move(a));
    e->kids.push_back(std::move(b));
    return e;
  }
  ExprPtr parse_or() {
    ExprPtr e = parse_and();
    while (is_name("or")) {
      const int line = next().line;
      e = binary("or", std::move(e), parse_and(), line);
    }
    return e;
  }
  ExprPtr parse_and() {
    ExprPtr e = parse_not();
    while (is_name("and")) {
      const int line = next().line;
      e = binary("and", std::move(e), parse_not(), line);
    }
    return e;
  }
  ExprPtr parse_not() {
    Nest nest(*this);
    if (is_name("not")) {
      const int line = next().line;
      auto e = make(ExprKind::Not, line);
      e->kids.push_back(parse_not());
      return e;
    }
    return parse_compare();
  }
  ExprPtr parse_compare() {
    const int line = peek().line;
    ExprPtr first = parse_math1();
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (peek().kind == Tok::Op && (peek().text == "==" || peek().text == "!=" || peek().text == "<" ||
                                     peek().text == ">" || peek().text == "<=" || peek().text == ">=")) {
        op = next().text;
      } else if (is_name("in")) {
        next();
        op = "in";
      } else if (is_name("not") && is_name("in", 1)) {
        next();
        next();
        op = "notin";
      } else {
        break;
      }
      if (!cmp) {
        cmp = make(ExprKind::Compare, line);
        cmp->kids.push_back(std::move(first));
      }
      cmp->ops.push_back(op);
      cmp->kids.push_back(parse_math1());
    }
    return cmp ? std::move(cmp) : std::move(first);
  }
  ExprPtr parse_math1() {
    ExprPtr e = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token op = next();
      e = binary(op.text == "+" ? "+" : "-", std::move(e), parse_concat(), op.line);
    }
    return e;
  }
  ExprPtr parse_concat() {
    ExprPtr e = parse_math2();
    while (is_op("~")) {
      const int line = next().line;
      e = binary("~", std::move(e), parse_math2(), line);
    }
    return e;
  }
  ExprPtr parse_math2() {
    ExprPtr e = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token op = next();
      static const char* names[] = {"*", "/", "//", "%"};
      const char* nm = names[0];
      for (const char* x : names)
        if (op.text == x) nm = x;
      e = binary(nm, std::move(e), parse_pow(), op.line);
    }
    return e;
  }
  ExprPtr parse_pow() {
    ExprPtr e = parse_unary(true);
    while (is_op("**")) {
      const int line = next().line;
      e = binary("**", std::move(e), parse_unary(true), line);
    }
    return e;
  }
  ExprPtr parse_unary(bool with_filter) {
    Nest nest(*this);
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      const Token op = next();
      e = make(op.text == "-" ? ExprKind::Neg : ExprKind::Pos, op.line);
      e->kids.push_back(parse_unary(false));
    } else {
      e = parse_postfix(parse_primary());
    }
    if (with_filter) e = parse_filter_expr(std::move(e));
    return e;
  }

  ExprPtr parse_primary() {
    const Token tk = next();
    switch (tk.kind) {
      case Tok::Name: {
        if (tk.text == "true" || tk.text == "True" || tk.text == "false" || tk.text == "False") {
          auto e = make(ExprKind::Literal, tk.line);
          e->value = Value(tk.text == "true" || tk.text == "True");
          return e;
        }
        if (tk.text == "none" || tk.text == "None") {
          auto e = make(ExprKind::Literal, tk.line);
          e->value = Value(None{});
          return e;
        }
        auto e = make(ExprKind::Name, tk.line);
        e->name = tk.text;
        return e;
      }
      case Tok::String: {
        std::string s = tk.text;
        while (peek().kind == Tok::String) s += next().text;  // adjacent literals join
        auto e = make(ExprKind::Literal, tk.line);
        e->value = Value(std::move(s));
        return e;
      }
      case Tok::Int: {
        auto e = make(ExprKind::Literal, tk.line);
        try {
          e->value = Value(static_cast<int64_t>(std::stoll(tk.text)));
        } catch (const std::exception&) {
          --i_;
          fail("integer literal out of range");
        }
        return e;
      }
      case Tok::Float: {
        auto e = make(ExprKind::Literal, tk.line);
        e->value = Value(std::strtod(tk.text.c_str(), nullptr));  // overflow gives inf, as Python's float()
        return e;
      }
      case Tok::Op: {
        if (tk.text == "(") {
          if (is_op(")")) {
            next();
            return make(ExprKind::TupleLit, tk.line);
          }
          ExprPtr first = parse_expr();
          if (is_op(")")) {
            next();
            return first;
          }
          auto t = make(ExprKind::TupleLit, tk.line);
          t->kids.push_back(std::move(first));
          while (is_op(",")) {
            next();
            if (is_op(")")) break;
            t->kids.push_back(parse_expr());
          }
          expect_op(")");
          return t;
        }
        if (tk.text == "[") {
          auto l = make(ExprKind::ListLit, tk.line);
          while (!is_op("]")) {
            l->kids.push_back(parse_expr());
            if (is_op(",")) next();
            else if (!is_op("]")) fail("expected ',' or ']' in the list");
          }
          next();
          return l;
        }
        if (tk.text == "{") {
          auto d = make(ExprKind::DictLit, tk.line);
          while (!is_op("}")) {
            d->kids.push_back(parse_expr());
            expect_op(":");
            d->kids.push_back(parse_expr());
            if (is_op(",")) next();
            else if (!is_op("}")) fail("expected ',' or '}' in the dict");
          }
          next();
          return d;
        }
        break;
      }
      default: break;
    }
    --i_;
    fail("unexpected '" + (tk.text.empty() ? std::string("end of tag") : tk.text) + "'");
  }

  void parse_call_args(Expr& e) {
    // after '('
    while (!is_op(")")) {
      if (peek().kind == Tok::Name && is_op("=", 1)) {
        e.arg_names.push_back(next().text);
        next();
      } else if (is_op("*") || is_op("**")) {  // f(*list, **dict)
        e.arg_names.push_back(next().text);
      } else {
        e.arg_names.emplace_back();
      }
      e.kids.push_back(parse_expr());
      if (is_op(",")) next();
      else if (!is_op(")")) fail("expected ',' or ')' in the call");
    }
    next();
  }

  ExprPtr parse_postfix(ExprPtr e) {
    while (true) {
      if (is_op(".")) {
        const int line = next().line;
        auto a = make(ExprKind::Attr, line);
        if (peek().kind == Tok::Int) {  // x.0 is x[0]
          a->kind = ExprKind::Item;
          a->kids.push_back(std::move(e));
          auto idx = make(ExprKind::Literal, line);
          const std::string digits = next().text;
          if (digits.size() > 18) fail("index " + digits + " is out of range");
          idx->value = Value(static_cast<int64_t>(std::stoll(digits)));
          a->kids.push_back(std::move(idx));
        } else {
          a->name = expect_name();
          a->kids.push_back(std::move(e));
        }
        e = std::move(a);
      } else if (is_op("[")) {
        const int line = next().line;
        ExprPtr lo, hi, step;
        bool slice = false;
        if (!is_op(":")) lo = parse_expr();
        if (is_op(":")) {
          slice = true;
          next();
          if (!is_op("]") && !is_op(":")) hi = parse_expr();
          if (is_op(":")) {
            next();
            if (!is_op("]")) step = parse_expr();
          }
        }
        expect_op("]");
        auto s = make(slice ? ExprKind::Slice : ExprKind::Item, line);
        s->kids.push_back(std::move(e));
        s->kids.push_back(std::move(lo));
        if (slice) {
          s->kids.push_back(std::move(hi));
          s->kids.push_back(std::move(step));
        }
        e = std::move(s);
      } else if (is_op("(")) {
        const int line = next().line;
        auto c = make(ExprKind::Call, line);
        c->kids.push_back(std::move(e));
        parse_call_args(*c);
        e = std::move(c);
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_filter_expr(ExprPtr e) {
    while (true) {
      if (is_op("|")) {
        e = parse_filter_chain(std::move(e));
      } else if (is_name("is")) {
        const int line = next().line;
        auto t = make(ExprKind::Test, line);
        if (is_name("not")) {
          next();
          t->negated = true;
        }
        t->name = expect_name();
        t->kids.push_back(std::move(e));
        if (is_op("(")) {
          next();
          parse_call_args(*t);
        } else if ((peek().kind == Tok::Name || peek().kind == Tok::String || peek().kind == Tok::Int ||
                    peek().kind == Tok::Float || is_op("[") || is_op("{")) &&
                   !(peek().kind == Tok::Name && (peek().text == "else" || peek().text == "or" ||
                                                  peek().text == "and" || peek().text == "if" || peek().text == "is" ||
                                                  peek().text == "in" || peek().text == "not"))) {
          t->arg_names.emplace_back();
          t->kids.push_back(parse_postfix(parse_primary()));
        }
        e = std::move(t);
      } else {
        return e;
      }
    }
  }

  // One or more `| name(args)`; with e null the chain filters a block's output (kids[0] null).
  ExprPtr parse_filter_chain(ExprPtr e, bool leading_bar = true) {
    bool first = true;
    while ((first && !leading_bar) || is_op("|")) {
      if (!(first && !leading_bar)) next();
      first = false;
      const int line = peek().line;
      auto f = make(ExprKind::Filter, line);
      f->name = expect_name();
      while (is_op(".")) {  // dotted filter names
        next();
        f->name += "." + expect_name();
      }
      f->kids.push_back(std::move(e));
      if (is_op("(")) {
        next();
        parse_call_args(*f);
      }
      e = std::move(f);
    }
    return e;
  }

  // Nesting of expressions and statements, bounded so that hostile input cannot exhaust the stack.
  struct Nest {
    Parser& p;
    explicit Nest(Parser& parser) : p(parser) {
      if (++p.depth_ > 200) p.fail("too deeply nested (more than 200 levels)");
    }
    ~Nest() { --p.depth_; }
  };

  std::vector<Token> t_;
  size_t i_ = 0;
  int depth_ = 0;
  const std::string& name_;
};

}  // namespace

Body parse_template(const std::string& source, const std::string& name) {
  Lexer lx(source, name);
  Parser p(lx.run(), name);
  return p.parse_all();
}

}  // namespace yak::jinja
