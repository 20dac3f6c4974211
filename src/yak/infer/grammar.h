// Constrained decoding: a grammar in llama.cpp's GBNF notation compiled to byte-level rules, a
// matcher that follows every way the text so far can continue (a set of parse stacks), and the
// vocabulary as a byte trie so that one walk per step finds every token the grammar allows.
//
//   root   ::= "{" ws pair ("," ws pair)* "}"
//   pair   ::= [a-z]+ ws ":" ws ("true" | "false")
//   ws     ::= [ \t\n]*
//
// Terminals: "literal" (escapes \n \r \t \\ \" \xHH \uHHHH \UHHHHHHHH), [class] and [^class]
// (ranges, the same escapes; classes with characters beyond ASCII match whole UTF-8 sequences),
// `.` (any character). Operators: alternation |, grouping ( ), postfix * + ? {m} {m,} {m,n}.
// Comments run from # to the end of the line; a rule ends where the next `name ::=` starts.
// The start rule is `root`. Left recursion is refused (it would never consume a byte).
#pragma once
#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace yak::tok {
class Tokenizer;
}

namespace yak::infer {

class Grammar {
 public:
  // Parses GBNF text; `where` names it in errors (yak::Error with the line and what was expected).
  static std::shared_ptr<const Grammar> parse(std::string_view text, const std::string& where = "grammar");

  // One element of an alternative: a set of bytes, a reference to a rule, or the alternative's end.
  struct Elem {
    enum Kind : uint8_t { Bytes, Ref, End } kind = End;
    int32_t rule = -1;                // Ref
    std::array<uint64_t, 4> set{};    // Bytes: bit b set when byte b matches
    bool has(uint8_t b) const { return (set[b >> 6] >> (b & 63)) & 1; }
  };
  const std::vector<Elem>& code() const { return code_; }
  // Start offsets (into code()) of each alternative of rule r.
  const std::vector<int32_t>& alternatives(int32_t r) const { return rules_[static_cast<size_t>(r)]; }
  int32_t root() const { return root_; }
  size_t rule_count() const { return rules_.size(); }

 private:
  friend class GrammarBuilder;
  std::vector<Elem> code_;
  std::vector<std::vector<int32_t>> rules_;
  int32_t root_ = 0;
};

// The vocabulary as a byte trie: tokens that share a prefix share its walk. Tokens without text
// (special and control tokens, ids the tokenizer does not have) are not in it.
class VocabTrie {
 public:
  explicit VocabTrie(const tok::Tokenizer& tok);
  struct Node {
    int32_t first_child = -1, next_sibling = -1;
    int32_t token = -1;  // a token whose bytes end here (-1: none)
    int32_t more = -1;   // index into extra_ of further tokens with the same bytes
    uint8_t byte = 0;
  };
  const std::vector<Node>& nodes() const { return nodes_; }
  const std::vector<std::pair<int32_t, int32_t>>& extra() const { return extra_; }  // (token, next)
  const std::string& bytes(int32_t id) const;  // "" for tokens not in the trie
  int32_t vocab_size() const { return static_cast<int32_t>(bytes_.size()); }

 private:
  std::vector<Node> nodes_;  // nodes_[0] is the root (no byte)
  std::vector<std::pair<int32_t, int32_t>> extra_;
  std::vector<std::string> bytes_;
};

// What a request's output must follow: the grammar and the vocabulary it is matched over.
struct TokenConstraint {
  std::shared_ptr<const Grammar> grammar;
  std::shared_ptr<const VocabTrie> vocab;
};

// Follows one sequence through a grammar. State: the set of parse stacks whose tops each expect
// a set of bytes; an empty stack means the text so far is a complete sentence of the grammar.
class GrammarMatcher {
 public:
  explicit GrammarMatcher(TokenConstraint c);
  // Sets logits of every token the grammar does not allow next to -inf; EOS ids (sorted) stay
  // only when the text so far is complete. Returns how many tokens remain allowed.
  size_t mask(std::span<float> logits, std::span<const int32_t> eos);
  // Advances by a token's bytes; false (state unchanged) when the grammar does not allow it.
  bool accept_token(int32_t id);
  bool accept_bytes(std::string_view bytes);
  bool complete() const;  // the text so far is a sentence of the grammar
  bool dead() const { return tops_.empty(); }
  // Nothing but the end can follow (complete and no byte allowed).
  bool finished() const;

 private:
  struct StackNode {
    int32_t pos;     // offset into the grammar's code: the element to match next
    int32_t parent;  // node to continue with when this alternative ends (-1: the root's end)
  };
  static constexpr int32_t kAccept = -1;  // a top meaning "the whole grammar is matched"
  void expand(int32_t pos, int32_t parent, std::vector<int32_t>& out, int depth);
  void push_top(int32_t pos, int32_t parent, std::vector<int32_t>& out);
  void advance(const std::vector<int32_t>& from, uint8_t byte, std::vector<int32_t>& out);
  void walk(int32_t trie_node, const std::vector<int32_t>& tops, size_t level, std::vector<uint8_t>& allowed);
  std::vector<int32_t> signature() const;  // the stacks' contents, in a canonical order

  TokenConstraint c_;
  std::vector<StackNode> nodes_;  // stacks share their tails; scratch nodes are dropped after a walk
  std::vector<int32_t> tops_;     // node ids, or kAccept
  std::deque<std::vector<int32_t>> scratch_;  // one tops buffer per trie depth
  // Masks of recent states, by signature: inside a JSON string every step has the same stacks
  // (the character loop is tail-recursive), so the walk runs once per string, not per token.
  struct CachedMask {
    std::vector<int32_t> signature;
    std::vector<uint8_t> allowed;
  };
  std::deque<CachedMask> cache_;
};

}  // namespace yak::infer
