// GBNF parsing (to byte-level rules), the stack-set matcher and the vocabulary trie.
#include "yak/infer/grammar.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>

#include "yak/base/error.h"
#include "yak/tokenizer/tokenizer.h"

namespace yak::infer {

using Elem = Grammar::Elem;
using Seq = std::vector<Elem>;
using Alts = std::vector<Seq>;

namespace {

Elem byte_range(uint32_t lo, uint32_t hi) {
  Elem e;
  e.kind = Elem::Bytes;
  for (uint32_t b = lo; b <= hi; ++b) e.set[b >> 6] |= uint64_t{1} << (b & 63);
  return e;
}
Elem ref(int32_t rule) {
  Elem e;
  e.kind = Elem::Ref;
  e.rule = rule;
  return e;
}

int utf8_len(uint32_t cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }
void utf8_encode(uint32_t cp, uint8_t* out) {
  switch (utf8_len(cp)) {
    case 1:
      out[0] = static_cast<uint8_t>(cp);
      break;
    case 2:
      out[0] = static_cast<uint8_t>(0xC0 | (cp >> 6));
      out[1] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
      break;
    case 3:
      out[0] = static_cast<uint8_t>(0xE0 | (cp >> 12));
      out[1] = static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F));
      out[2] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
      break;
    default:
      out[0] = static_cast<uint8_t>(0xF0 | (cp >> 18));
      out[1] = static_cast<uint8_t>(0x80 | ((cp >> 12) & 0x3F));
      out[2] = static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F));
      out[3] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
  }
}

// Code points lo..hi of one encoded length as sequences of byte ranges: split until every byte
// position ranges independently (the classic UTF-8 range construction).
void utf8_sequences(uint32_t lo, uint32_t hi, Alts& out) {
  const int n = utf8_len(lo);
  for (int i = 1; i < n; ++i) {
    const uint32_t m = (uint32_t{1} << (6 * i)) - 1;
    if ((lo & ~m) != (hi & ~m)) {
      if ((lo & m) != 0) {
        utf8_sequences(lo, lo | m, out);
        utf8_sequences((lo | m) + 1, hi, out);
        return;
      }
      if ((hi & m) != m) {
        utf8_sequences(lo, (hi & ~m) - 1, out);
        utf8_sequences(hi & ~m, hi, out);
        return;
      }
    }
  }
  uint8_t a[4], b[4];
  utf8_encode(lo, a);
  utf8_encode(hi, b);
  Seq s;
  for (int i = 0; i < n; ++i) s.push_back(byte_range(a[i], b[i]));
  out.push_back(std::move(s));
}

// Any code point range (surrogates left out: they are not valid UTF-8).
void utf8_alternatives(uint32_t lo, uint32_t hi, Alts& out) {
  static constexpr uint32_t kBounds[][2] = {{0, 0x7F}, {0x80, 0x7FF}, {0x800, 0xD7FF}, {0xE000, 0xFFFF}, {0x10000, 0x10FFFF}};
  for (auto [a, b] : kBounds) {
    const uint32_t l = std::max(lo, a), h = std::min(hi, b);
    if (l <= h) utf8_sequences(l, h, out);
  }
}

}  // namespace

// Text -> rules (alternatives of element sequences), then flattened into Grammar::code_.
class GrammarBuilder {
 public:
  GrammarBuilder(std::string_view text, std::string where) : s_(text), where_(std::move(where)) {}

  std::shared_ptr<const Grammar> build() {
    skip_space();
    while (pos_ < s_.size()) {
      const size_t at = pos_;
      std::string name = identifier();
      if (name.empty()) fail(at, "expected a rule name");
      skip_space();
      if (s_.substr(pos_, 3) != "::=") fail(pos_, "expected '::=' after the rule name '" + name + "'");
      pos_ += 3;
      const int32_t r = rule_id(name);
      if (defined_[static_cast<size_t>(r)]) fail(at, "rule '" + name + "' is defined twice");
      defined_[static_cast<size_t>(r)] = true;
      rules_[static_cast<size_t>(r)] = alternates(name, false);
      skip_space();
    }
    for (size_t r = 0; r < names_.size(); ++r)
      if (!defined_[r]) throw Error(where_ + ": rule '" + names_[r] + "' is used but never defined");
    auto root = ids_.find("root");
    if (root == ids_.end()) throw Error(where_ + ": no rule named 'root' (where the grammar starts)");
    check_left_recursion();
    auto g = std::make_shared<Grammar>();
    g->root_ = root->second;
    g->rules_.resize(rules_.size());
    for (size_t r = 0; r < rules_.size(); ++r)
      for (const Seq& alt : rules_[r]) {
        g->rules_[r].push_back(static_cast<int32_t>(g->code_.size()));
        g->code_.insert(g->code_.end(), alt.begin(), alt.end());
        g->code_.push_back(Elem{});
      }
    return g;
  }

 private:
  [[noreturn]] void fail(size_t at, const std::string& what) const {
    const size_t line = 1 + static_cast<size_t>(std::count(s_.begin(), s_.begin() + static_cast<long>(std::min(at, s_.size())), '\n'));
    throw Error(where_ + ": line " + std::to_string(line) + ": " + what);
  }

  void skip_space() {
    while (pos_ < s_.size()) {
      const char c = s_[pos_];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        ++pos_;
      } else if (c == '#') {
        while (pos_ < s_.size() && s_[pos_] != '\n') ++pos_;
      } else {
        break;
      }
    }
  }
  static bool name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  }
  std::string identifier() {
    const size_t b = pos_;
    while (pos_ < s_.size() && name_char(s_[pos_])) ++pos_;
    return std::string(s_.substr(b, pos_ - b));
  }
  // At `name ::=`: the next rule starts here.
  bool at_rule_start() {
    size_t p = pos_;
    while (p < s_.size() && name_char(s_[p])) ++p;
    if (p == pos_) return false;
    while (p < s_.size() && (s_[p] == ' ' || s_[p] == '\t' || s_[p] == '\n' || s_[p] == '\r')) ++p;
    return s_.substr(p, 3) == "::=";
  }

  int32_t rule_id(const std::string& name) {
    auto [it, fresh] = ids_.emplace(name, static_cast<int32_t>(names_.size()));
    if (fresh) new_rule(name);
    return it->second;
  }
  int32_t new_rule(const std::string& name) {
    names_.push_back(name);
    rules_.emplace_back();
    defined_.push_back(false);
    return static_cast<int32_t>(names_.size() - 1);
  }
  int32_t generated(const std::string& name, Alts alts) {
    const int32_t r = new_rule(name);
    rules_[static_cast<size_t>(r)] = std::move(alts);
    defined_[static_cast<size_t>(r)] = true;
    return r;
  }

  Alts alternates(const std::string& rule, bool nested) {
    Alts alts;
    alts.push_back(sequence(rule, nested));
    skip_space();
    while (pos_ < s_.size() && s_[pos_] == '|') {
      ++pos_;
      alts.push_back(sequence(rule, nested));
      skip_space();
    }
    return alts;
  }

  Seq sequence(const std::string& rule, bool nested) {
    Seq seq;
    for (;;) {
      skip_space();
      if (pos_ >= s_.size()) break;
      const char c = s_[pos_];
      if (c == '|' || c == ')') break;
      if (!nested && at_rule_start()) break;
      const size_t at = pos_;
      Seq item;
      if (c == '"') {
        item = literal();
      } else if (c == '[') {
        item = {char_class(rule)};
      } else if (c == '.') {
        ++pos_;
        Alts any;
        utf8_alternatives(0, 0x10FFFF, any);
        item = {ref(generated(rule + " (any character)", std::move(any)))};
      } else if (c == '(') {
        ++pos_;
        if (++depth_ > kMaxDepth) fail(at, "groups nest deeper than " + std::to_string(kMaxDepth));
        Alts inner = alternates(rule, true);
        --depth_;
        skip_space();
        if (pos_ >= s_.size() || s_[pos_] != ')') fail(at, "'(' without its ')'");
        ++pos_;
        item = {ref(generated(rule + " (group)", std::move(inner)))};
      } else if (name_char(c)) {
        item = {ref(rule_id(identifier()))};
      } else {
        fail(at, std::string("unexpected '") + c + "'");
      }
      repetition(rule, item);
      seq.insert(seq.end(), item.begin(), item.end());
    }
    return seq;
  }

  // A postfix operator on the item just read, if one follows.
  void repetition(const std::string& rule, Seq& item) {
    if (pos_ >= s_.size()) return;
    const char c = s_[pos_];
    size_t min = 0, max = 0;
    bool unbounded = false;
    if (c == '*') {
      unbounded = true;
    } else if (c == '+') {
      min = 1, unbounded = true;
    } else if (c == '?') {
      max = 1;
    } else if (c == '{') {
      const size_t at = pos_;
      ++pos_;
      min = number(at);
      skip_space();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        skip_space();
        if (pos_ < s_.size() && s_[pos_] == '}') {
          unbounded = true;
        } else {
          max = number(at);
        }
      } else {
        max = min;
      }
      skip_space();
      if (pos_ >= s_.size() || s_[pos_] != '}') fail(at, "expected '}' to close the repetition");
      if (!unbounded && max < min) fail(at, "repetition {m,n} with n < m");
      if (min > 1000 || max > 1000) fail(at, "repetition counts above 1000 are not supported");
    } else {
      return;
    }
    ++pos_;
    const Seq x = item.size() == 1 ? item : Seq{ref(generated(rule + " (repeated)", Alts{item}))};
    Seq out;
    for (size_t i = 0; i < min; ++i) out.insert(out.end(), x.begin(), x.end());
    if (unbounded) {
      const int32_t star = new_rule(rule + " (repeated)");
      Seq again = x;
      again.push_back(ref(star));
      rules_[static_cast<size_t>(star)] = Alts{again, Seq{}};
      defined_[static_cast<size_t>(star)] = true;
      out.push_back(ref(star));
    } else if (max > min) {
      // x? nested (max - min) deep: opt_k ::= x opt_(k-1) | ""
      int32_t inner = -1;
      for (size_t k = 0; k < max - min; ++k) {
        Seq alt = x;
        if (inner >= 0) alt.push_back(ref(inner));
        inner = generated(rule + " (optional)", Alts{alt, Seq{}});
      }
      out.push_back(ref(inner));
    }
    item = std::move(out);
  }

  size_t number(size_t at) {
    skip_space();
    const size_t b = pos_;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9' && pos_ - b < 6) ++pos_;
    if (pos_ == b) fail(at, "expected a number in the repetition");
    return static_cast<size_t>(std::stoul(std::string(s_.substr(b, pos_ - b))));
  }

  // One character of a literal or class: an escape or a whole UTF-8 character.
  uint32_t character(size_t at) {
    if (pos_ >= s_.size()) fail(at, "unterminated literal or class");
    const auto c = static_cast<uint8_t>(s_[pos_]);
    if (c == '\\') {
      if (pos_ + 1 >= s_.size()) fail(at, "unterminated escape");
      const char e = s_[pos_ + 1];
      pos_ += 2;
      switch (e) {
        case 'n':
          return '\n';
        case 'r':
          return '\r';
        case 't':
          return '\t';
        case 'x':
          return hex(2, at);
        case 'u':
          return hex(4, at);
        case 'U':
          return hex(8, at);
        case '\\':
        case '"':
        case '[':
        case ']':
        case '-':
        case '^':
          return static_cast<uint8_t>(e);
        default:
          fail(at, std::string("unknown escape '\\") + e + "'");
      }
    }
    const int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || pos_ + static_cast<size_t>(n) > s_.size()) fail(at, "the grammar is not valid UTF-8");
    uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (int i = 1; i < n; ++i) {
      const auto d = static_cast<uint8_t>(s_[pos_ + static_cast<size_t>(i)]);
      if ((d & 0xC0) != 0x80) fail(at, "the grammar is not valid UTF-8");
      cp = (cp << 6) | (d & 0x3F);
    }
    pos_ += static_cast<size_t>(n);
    return cp;
  }
  uint32_t hex(int digits, size_t at) {
    uint32_t v = 0;
    for (int i = 0; i < digits; ++i, ++pos_) {
      if (pos_ >= s_.size()) fail(at, "short \\x/\\u escape");
      const char h = s_[pos_];
      const int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
      if (d < 0) fail(at, "bad hex digit in an escape");
      v = v * 16 + static_cast<uint32_t>(d);
    }
    if (v > 0x10FFFF) fail(at, "code point beyond U+10FFFF");
    return v;
  }

  Seq literal() {
    const size_t at = pos_++;
    Seq out;
    for (;;) {
      if (pos_ >= s_.size()) fail(at, "unterminated literal");
      if (s_[pos_] == '"') {
        ++pos_;
        return out;
      }
      const bool raw_byte = s_[pos_] == '\\' && pos_ + 1 < s_.size() && s_[pos_ + 1] == 'x';
      const uint32_t cp = character(at);
      if (raw_byte || cp < 0x80) {
        out.push_back(byte_range(cp, cp));  // \xHH is one byte, as in llama.cpp
      } else {
        uint8_t b[4];
        utf8_encode(cp, b);
        for (int i = 0; i < utf8_len(cp); ++i) out.push_back(byte_range(b[i], b[i]));
      }
    }
  }

  Elem char_class(const std::string& rule) {
    const size_t at = pos_++;
    bool negated = false;
    if (pos_ < s_.size() && s_[pos_] == '^') negated = true, ++pos_;
    std::vector<std::pair<uint32_t, uint32_t>> ranges;
    while (pos_ < s_.size() && s_[pos_] != ']') {
      const uint32_t lo = character(at);
      uint32_t hi = lo;
      if (pos_ + 1 < s_.size() && s_[pos_] == '-' && s_[pos_ + 1] != ']') {
        ++pos_;
        hi = character(at);
        if (hi < lo) fail(at, "character range with its end before its start");
      }
      ranges.emplace_back(lo, hi);
    }
    if (pos_ >= s_.size()) fail(at, "'[' without its ']'");
    ++pos_;
    std::sort(ranges.begin(), ranges.end());
    if (negated) {
      std::vector<std::pair<uint32_t, uint32_t>> rest;
      uint32_t next = 0;
      for (auto [lo, hi] : ranges) {
        if (lo > next) rest.emplace_back(next, lo - 1);
        next = std::max(next, hi + 1);
      }
      if (next <= 0x10FFFF) rest.emplace_back(next, 0x10FFFF);
      ranges = std::move(rest);
    }
    if (ranges.empty()) fail(at, "a character class that matches nothing");
    Elem ascii;
    ascii.kind = Elem::Bytes;
    Alts wide;
    for (auto [lo, hi] : ranges) {
      if (lo < 0x80) {
        const Elem e = byte_range(lo, std::min<uint32_t>(hi, 0x7F));
        for (int w = 0; w < 4; ++w) ascii.set[static_cast<size_t>(w)] |= e.set[static_cast<size_t>(w)];
      }
      if (hi >= 0x80) utf8_alternatives(std::max<uint32_t>(lo, 0x80), hi, wide);
    }
    if (wide.empty()) return ascii;
    if (ascii.set != std::array<uint64_t, 4>{}) wide.insert(wide.begin(), Seq{ascii});
    return ref(generated(rule + " (class)", std::move(wide)));
  }

  // A rule that can reach itself without reading a byte would expand forever.
  void check_left_recursion() const {
    const size_t n = rules_.size();
    std::vector<bool> nullable(n, false);
    for (bool changed = true; changed;) {
      changed = false;
      for (size_t r = 0; r < n; ++r) {
        if (nullable[r]) continue;
        for (const Seq& alt : rules_[r])
          if (std::all_of(alt.begin(), alt.end(), [&](const Elem& e) {
                return e.kind == Elem::Ref && nullable[static_cast<size_t>(e.rule)];
              })) {
            nullable[r] = changed = true;
            break;
          }
      }
    }
    std::vector<uint8_t> state(n, 0);  // 0 unseen, 1 on the path, 2 done
    std::function<void(size_t)> visit = [&](size_t r) {
      state[r] = 1;
      for (const Seq& alt : rules_[r])
        for (const Elem& e : alt) {
          if (e.kind != Elem::Ref) break;
          const auto s = static_cast<size_t>(e.rule);
          if (state[s] == 1) throw Error(where_ + ": rule '" + names_[s] + "' is left-recursive");
          if (state[s] == 0) visit(s);
          if (!nullable[s]) break;
        }
      state[r] = 2;
    };
    for (size_t r = 0; r < n; ++r)
      if (state[r] == 0) visit(r);
  }

  static constexpr int kMaxDepth = 200;  // parentheses inside parentheses (the parser recurses)
  std::string_view s_;
  std::string where_;
  size_t pos_ = 0;
  int depth_ = 0;
  std::map<std::string, int32_t> ids_;
  std::vector<std::string> names_;
  std::vector<Alts> rules_;
  std::vector<bool> defined_;
};

std::shared_ptr<const Grammar> Grammar::parse(std::string_view text, const std::string& where) {
  return GrammarBuilder(text, where).build();
}

// ---------------------------------------------------------------- vocabulary trie

VocabTrie::VocabTrie(const tok::Tokenizer& tok) {
  const int32_t n = tok.vocab_size();
  bytes_.resize(static_cast<size_t>(n));
  nodes_.emplace_back();
  for (int32_t id = 0; id < n; ++id) {
    auto b = tok.token_bytes(id);
    if (!b || b->empty()) continue;
    int32_t at = 0;
    for (char ch : *b) {
      const auto c = static_cast<uint8_t>(ch);
      int32_t child = nodes_[static_cast<size_t>(at)].first_child;
      while (child >= 0 && nodes_[static_cast<size_t>(child)].byte != c) child = nodes_[static_cast<size_t>(child)].next_sibling;
      if (child < 0) {
        Node nn;
        nn.byte = c;
        nn.next_sibling = nodes_[static_cast<size_t>(at)].first_child;
        child = static_cast<int32_t>(nodes_.size());
        nodes_.push_back(nn);
        nodes_[static_cast<size_t>(at)].first_child = child;
      }
      at = child;
    }
    Node& end = nodes_[static_cast<size_t>(at)];
    if (end.token < 0) {
      end.token = id;
    } else {
      extra_.emplace_back(id, end.more);
      end.more = static_cast<int32_t>(extra_.size() - 1);
    }
    bytes_[static_cast<size_t>(id)] = std::move(*b);
  }
}

const std::string& VocabTrie::bytes(int32_t id) const {
  static const std::string none;
  return id >= 0 && id < vocab_size() ? bytes_[static_cast<size_t>(id)] : none;
}

// ---------------------------------------------------------------- matcher

GrammarMatcher::GrammarMatcher(TokenConstraint c) : c_(std::move(c)) {
  check(c_.grammar && c_.vocab, "GrammarMatcher: a grammar and a vocabulary are needed");
  for (int32_t alt : c_.grammar->alternatives(c_.grammar->root())) expand(alt, kAccept, tops_, 0);
}

void GrammarMatcher::push_top(int32_t pos, int32_t parent, std::vector<int32_t>& out) {
  for (int32_t t : out)
    if (t != kAccept && nodes_[static_cast<size_t>(t)].pos == pos && nodes_[static_cast<size_t>(t)].parent == parent) return;
  nodes_.push_back({pos, parent});
  out.push_back(static_cast<int32_t>(nodes_.size() - 1));
}

void GrammarMatcher::expand(int32_t pos, int32_t parent, std::vector<int32_t>& out, int depth) {
  if (depth > 4096) throw Error("grammar: rules nest deeper than 4096 without reading a byte");
  const auto& code = c_.grammar->code();
  const Elem& e = code[static_cast<size_t>(pos)];
  switch (e.kind) {
    case Elem::End:
      if (parent == kAccept) {
        if (std::find(out.begin(), out.end(), kAccept) == out.end()) out.push_back(kAccept);
      } else {
        const StackNode up = nodes_[static_cast<size_t>(parent)];
        expand(up.pos, up.parent, out, depth + 1);
      }
      return;
    case Elem::Bytes:
      push_top(pos, parent, out);
      return;
    case Elem::Ref: {
      int32_t cont = parent;  // a reference that ends its alternative continues with the parent
      if (code[static_cast<size_t>(pos) + 1].kind != Elem::End) {
        nodes_.push_back({pos + 1, parent});
        cont = static_cast<int32_t>(nodes_.size() - 1);
      }
      for (int32_t alt : c_.grammar->alternatives(e.rule)) expand(alt, cont, out, depth + 1);
      return;
    }
  }
}

void GrammarMatcher::advance(const std::vector<int32_t>& from, uint8_t byte, std::vector<int32_t>& out) {
  out.clear();
  const auto& code = c_.grammar->code();
  for (int32_t t : from) {
    if (t == kAccept) continue;
    const StackNode n = nodes_[static_cast<size_t>(t)];
    if (code[static_cast<size_t>(n.pos)].has(byte)) expand(n.pos + 1, n.parent, out, 0);
  }
}

bool GrammarMatcher::accept_bytes(std::string_view bytes) {
  std::vector<int32_t> cur = tops_, next;
  const size_t mark = nodes_.size();
  for (char ch : bytes) {
    advance(cur, static_cast<uint8_t>(ch), next);
    if (next.empty()) {
      nodes_.resize(mark);
      return false;
    }
    cur.swap(next);
  }
  tops_ = std::move(cur);
  return true;
}

bool GrammarMatcher::accept_token(int32_t id) {
  const std::string& b = c_.vocab->bytes(id);
  return !b.empty() && accept_bytes(b);
}

bool GrammarMatcher::complete() const { return std::find(tops_.begin(), tops_.end(), kAccept) != tops_.end(); }

bool GrammarMatcher::finished() const {
  return !tops_.empty() && std::all_of(tops_.begin(), tops_.end(), [](int32_t t) { return t == kAccept; });
}

void GrammarMatcher::walk(int32_t trie_node, const std::vector<int32_t>& tops, size_t level, std::vector<uint8_t>& allowed) {
  const auto& trie = c_.vocab->nodes();
  if (scratch_.size() <= level + 1) scratch_.resize(level + 2);  // a deque: references stay valid
  for (int32_t ch = trie[static_cast<size_t>(trie_node)].first_child; ch >= 0; ch = trie[static_cast<size_t>(ch)].next_sibling) {
    const auto& node = trie[static_cast<size_t>(ch)];
    const size_t mark = nodes_.size();
    std::vector<int32_t>& next = scratch_[level + 1];
    advance(tops, node.byte, next);
    if (!next.empty()) {
      if (node.token >= 0) allowed[static_cast<size_t>(node.token)] = 1;
      for (int32_t x = node.more; x >= 0; x = c_.vocab->extra()[static_cast<size_t>(x)].second)
        allowed[static_cast<size_t>(c_.vocab->extra()[static_cast<size_t>(x)].first)] = 1;
      if (node.first_child >= 0) walk(ch, next, level + 1, allowed);
    }
    nodes_.resize(mark);  // the subtree's stacks are not needed again
  }
}

std::vector<int32_t> GrammarMatcher::signature() const {
  std::vector<std::vector<int32_t>> chains;
  for (int32_t t : tops_) {
    std::vector<int32_t> c;
    for (int32_t n = t; n != kAccept; n = nodes_[static_cast<size_t>(n)].parent) c.push_back(nodes_[static_cast<size_t>(n)].pos);
    c.push_back(kAccept);
    chains.push_back(std::move(c));
  }
  std::sort(chains.begin(), chains.end());
  std::vector<int32_t> sig;
  for (const auto& c : chains) sig.insert(sig.end(), c.begin(), c.end());
  return sig;
}

size_t GrammarMatcher::mask(std::span<float> logits, std::span<const int32_t> eos) {
  const size_t width = std::max(logits.size(), static_cast<size_t>(c_.vocab->vocab_size()));
  std::vector<int32_t> sig = signature();
  const std::vector<uint8_t>* allowed = nullptr;
  for (const auto& c : cache_)
    if (c.signature == sig && c.allowed.size() == width) allowed = &c.allowed;
  if (!allowed) {
    std::vector<uint8_t> fresh(width, 0);
    const std::vector<int32_t> start = tops_;
    walk(0, start, 0, fresh);
    if (cache_.size() >= 8) cache_.pop_front();
    cache_.push_back({std::move(sig), std::move(fresh)});
    allowed = &cache_.back().allowed;
  }
  const bool done = complete();
  size_t n = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    bool ok = (*allowed)[i] != 0;
    if (!ok && done) ok = std::binary_search(eos.begin(), eos.end(), static_cast<int32_t>(i));
    if (ok) {
      ++n;
    } else {
      logits[i] = -std::numeric_limits<float>::infinity();
    }
  }
  return n;
}

}  // namespace yak::infer
