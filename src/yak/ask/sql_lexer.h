// SQL tokens for the safety checker, the semantic model's expressions and the translator.
// Comments become whitespace; an unterminated string, quoted name or comment is an error.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace yak::ask {

struct Token {
  enum class Kind { Ident, Number, String, Blob, Param, Op, End };
  Kind kind = Kind::End;
  std::string text;     // identifiers unquoted, strings unescaped, operators as written
  bool quoted = false;  // "name", `name` or [name]
  size_t pos = 0;       // byte offset in the input
};

// Throws yak::Error naming `where` and the byte offset on bad input.
std::vector<Token> tokenize_sql(std::string_view sql, const std::string& where = "SQL");

// Case-insensitive ASCII comparison of an identifier with an upper-case keyword.
bool is_keyword(const Token& t, std::string_view upper);
// True for words that can never be a bare column name in the subset (SELECT, FROM, AND, ...).
bool reserved_word(std::string_view word);

std::string quote_ident(const std::string& name);   // "name" with inner quotes doubled
std::string quote_string(const std::string& text);  // 'text' with inner quotes doubled

}  // namespace yak::ask
