#include "yak/ask/sql_lexer.h"

#include <algorithm>
#include <array>
#include <cctype>

#include "yak/base/error.h"

namespace yak::ask {

namespace {

bool ident_start(unsigned char c) {
  return std::isalpha(c) || c == '_' || c >= 0x80;
}
bool ident_char(unsigned char c) {
  return std::isalnum(c) || c == '_' || c == '$' || c >= 0x80;
}

std::string upper(std::string_view s) {
  std::string u(s);
  for (auto& c : u) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return u;
}

}  // namespace

bool is_keyword(const Token& t, std::string_view kw) {
  if (t.kind != Token::Kind::Ident || t.quoted || t.text.size() != kw.size()) return false;
  for (size_t i = 0; i < kw.size(); ++i)
    if (std::toupper(static_cast<unsigned char>(t.text[i])) != kw[i]) return false;
  return true;
}

bool reserved_word(std::string_view word) {
  static const std::array<std::string_view, 62> words = {
      "ALL",    "AND",      "AS",     "ASC",     "BETWEEN", "BY",        "CASE",    "CAST",   "CROSS",
      "DESC",   "DISTINCT", "ELSE",   "END",     "ESCAPE",  "EXCEPT",    "EXISTS",  "FROM",   "FULL",
      "GLOB",   "GROUP",    "HAVING", "IN",      "INNER",   "INTERSECT", "IS",      "ISNULL", "JOIN",
      "LEFT",   "LIKE",     "LIMIT",  "NATURAL", "NOT",     "NOTNULL",   "NULL",    "OFFSET", "ON",
      "OR",     "ORDER",    "OUTER",  "REGEXP",  "RIGHT",   "SELECT",    "THEN",    "UNION",  "USING",
      "WHEN",   "WHERE",    "WITH",   "TRUE",    "FALSE",   "INSERT",    "UPDATE",  "DELETE", "DROP",
      "CREATE", "ALTER",    "ATTACH", "DETACH",  "PRAGMA",  "VACUUM",    "REPLACE", "COLLATE"};
  const std::string u = upper(word);
  return std::find(words.begin(), words.end(), u) != words.end();
}

std::vector<Token> tokenize_sql(std::string_view s, const std::string& where) {
  std::vector<Token> out;
  size_t i = 0;
  auto fail = [&](const std::string& what, size_t at) {
    throw Error(where + ": " + what + " at byte " + std::to_string(at));
  };
  if (const size_t nul = s.find('\0'); nul != std::string_view::npos) fail("NUL byte", nul);
  while (i < s.size()) {
    const unsigned char c = s[i];
    if (std::isspace(c)) {
      ++i;
      continue;
    }
    if (c == '-' && i + 1 < s.size() && s[i + 1] == '-') {  // line comment
      while (i < s.size() && s[i] != '\n') ++i;
      continue;
    }
    if (c == '/' && i + 1 < s.size() && s[i + 1] == '*') {
      const size_t end = s.find("*/", i + 2);
      if (end == std::string_view::npos) fail("unterminated comment", i);
      i = end + 2;
      continue;
    }
    Token t;
    t.pos = i;
    if ((c == 'x' || c == 'X') && i + 1 < s.size() && s[i + 1] == '\'') {
      const size_t end = s.find('\'', i + 2);
      if (end == std::string_view::npos) fail("unterminated blob literal", i);
      t.kind = Token::Kind::Blob;
      t.text = std::string(s.substr(i + 2, end - i - 2));
      for (char h : t.text)
        if (!std::isxdigit(static_cast<unsigned char>(h))) fail("bad blob literal", i);
      i = end + 1;
    } else if (ident_start(c)) {
      size_t j = i;
      while (j < s.size() && ident_char(s[j])) ++j;
      t.kind = Token::Kind::Ident;
      t.text = std::string(s.substr(i, j - i));
      i = j;
    } else if (c == '"' || c == '`' || c == '[' || c == '\'') {
      const char close = c == '[' ? ']' : static_cast<char>(c);
      std::string v;
      size_t j = i + 1;
      for (;;) {
        if (j >= s.size()) fail(c == '\'' ? "unterminated string" : "unterminated quoted name", i);
        if (s[j] == close) {
          if (close != ']' && j + 1 < s.size() && s[j + 1] == close) {
            v += close;
            j += 2;
            continue;
          }
          break;
        }
        v += s[j++];
      }
      i = j + 1;
      t.kind = c == '\'' ? Token::Kind::String : Token::Kind::Ident;
      t.quoted = c != '\'';
      t.text = std::move(v);
      if (t.quoted && t.text.empty()) fail("empty quoted name", t.pos);
    } else if (std::isdigit(c) ||
               (c == '.' && i + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1])))) {
      size_t j = i;
      if (c == '0' && j + 1 < s.size() && (s[j + 1] == 'x' || s[j + 1] == 'X')) {
        j += 2;
        while (j < s.size() && std::isxdigit(static_cast<unsigned char>(s[j]))) ++j;
      } else {
        while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
        if (j < s.size() && s[j] == '.') {
          ++j;
          while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
        }
        if (j < s.size() && (s[j] == 'e' || s[j] == 'E')) {
          size_t k = j + 1;
          if (k < s.size() && (s[k] == '+' || s[k] == '-')) ++k;
          if (k < s.size() && std::isdigit(static_cast<unsigned char>(s[k]))) {
            j = k;
            while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
          }
        }
      }
      if (j < s.size() && ident_char(s[j])) fail("bad number", i);
      t.kind = Token::Kind::Number;
      t.text = std::string(s.substr(i, j - i));
      i = j;
    } else if (c == '?' || c == ':' || c == '@' || c == '$') {
      size_t j = i + 1;
      while (j < s.size() && (c == '?' ? std::isdigit(static_cast<unsigned char>(s[j])) != 0 : ident_char(s[j]))) ++j;
      if (c != '?' && j == i + 1) fail("bad parameter", i);
      t.kind = Token::Kind::Param;
      t.text = std::string(s.substr(i, j - i));
      i = j;
    } else {
      static const std::array<std::string_view, 8> two = {"||", "==", "!=", "<>", "<=", ">=", "<<", ">>"};
      const std::string_view rest = s.substr(i);
      std::string_view op;
      for (auto o : two)
        if (!o.empty() && rest.substr(0, 2) == o) op = o;
      if (op.empty()) {
        if (std::string_view("(),.;+-*/%=<>&|~").find(static_cast<char>(c)) == std::string_view::npos)
          fail(std::string("unexpected character '") + static_cast<char>(c) + "'", i);
        op = rest.substr(0, 1);
      }
      t.kind = Token::Kind::Op;
      t.text = std::string(op);
      i += op.size();
    }
    out.push_back(std::move(t));
  }
  Token end;
  end.pos = s.size();
  out.push_back(end);
  return out;
}

std::string quote_ident(const std::string& name) {
  std::string q = "\"";
  for (char c : name) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string quote_string(const std::string& text) {
  std::string q = "'";
  for (char c : text) q += c == '\'' ? std::string("''") : std::string(1, c);
  return q + "'";
}

}  // namespace yak::ask
