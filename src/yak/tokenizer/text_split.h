// Pieces every tokenizer family shares: added-token matching, PCRE2 pre-tokenizer regexes,
// GPT-2's byte<->unicode table and lossy UTF-8 repair for decoded bytes.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace yak::tok {

// A token matched verbatim in the text before pre-tokenization (HF "added token").
struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = true;
  bool lstrip = false;  // swallow whitespace on the left
  bool rstrip = false;  // swallow whitespace on the right
  bool normalized = false;
  bool single_word = false;
};

// Splits text at added tokens: leftmost match wins, longest at one position, never split.
class AddedTokenMatcher {
 public:
  struct Piece {
    std::string_view text;  // plain text when id < 0
    int32_t id = -1;
    size_t offset = 0;  // byte offset of the piece in the original text
  };
  void add(const AddedToken& t);
  bool empty() const { return tokens_.empty(); }
  const std::vector<AddedToken>& tokens() const { return tokens_; }
  std::vector<Piece> split(std::string_view text) const;

 private:
  std::vector<AddedToken> tokens_;
  // first byte -> token indices, longest first
  std::array<std::vector<uint32_t>, 256> by_first_{};
};

// A compiled PCRE2 pattern (UTF + Unicode properties, JIT when available).
class Regex {
 public:
  // Throws yak::Error naming `where` when the pattern does not compile.
  Regex(const std::string& pattern, const std::string& where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  // HF Split(behavior=Isolated): matches and the gaps between them both become pieces.
  void split_isolated(std::string_view s, std::vector<std::string_view>& out) const;
  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*
};

// Applies regexes in sequence, each splitting the pieces of the previous one.
std::vector<std::string_view> split_pieces(std::string_view text, const std::vector<std::unique_ptr<Regex>>& regexes);

// GPT-2 byte-level alphabet: byte -> UTF-8 of its printable stand-in, and back.
const std::array<std::string, 256>& byte_to_unicode();
// Maps a byte-level token's text back to raw bytes; false when it holds a non-alphabet char.
bool unicode_to_bytes(std::string_view token, std::string& out);
// A SentencePiece-style piece's text appended to out: U+2581 becomes a space.
void append_sp_piece(std::string_view piece, std::string& out);

// Replaces invalid UTF-8 with U+FFFD, one per maximal invalid subpart (as Rust's from_utf8_lossy).
std::string utf8_lossy(std::string_view bytes);

// NFC via utf8proc; input must be valid UTF-8.
std::string nfc(std::string_view text);

// Throws yak::Error when text is not valid UTF-8 (names the byte offset).
void require_utf8(std::string_view text, const char* what);

inline bool ends_with_replacement(std::string_view s) {
  return s.size() >= 3 && s.substr(s.size() - 3) == "\xEF\xBF\xBD";
}

}  // namespace yak::tok
