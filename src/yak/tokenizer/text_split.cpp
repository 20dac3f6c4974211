#include "yak/tokenizer/text_split.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>

#include "yak/base/error.h"
#include "yak/base/utf8.h"

namespace yak::tok {

// ---------------------------------------------------------------- added tokens

void AddedTokenMatcher::add(const AddedToken& t) {
  if (t.content.empty()) return;
  for (auto& old : tokens_)
    if (old.content == t.content) {
      old = t;
      return;
    }
  tokens_.push_back(t);
  for (auto& v : by_first_) v.clear();
  for (uint32_t i = 0; i < tokens_.size(); ++i)
    by_first_[static_cast<unsigned char>(tokens_[i].content[0])].push_back(i);
  for (auto& v : by_first_)
    std::stable_sort(v.begin(), v.end(),
                     [&](uint32_t a, uint32_t b) { return tokens_[a].content.size() > tokens_[b].content.size(); });
}

namespace {
bool is_ws(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool is_word_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         (static_cast<unsigned char>(c) >= 0x80);
}
}  // namespace

std::vector<AddedTokenMatcher::Piece> AddedTokenMatcher::split(std::string_view text) const {
  std::vector<Piece> out;
  if (tokens_.empty()) {
    if (!text.empty()) out.push_back({text, -1, 0});
    return out;
  }
  size_t start = 0;  // start of pending plain text
  size_t i = 0;
  while (i < text.size()) {
    const auto& cands = by_first_[static_cast<unsigned char>(text[i])];
    const AddedToken* hit = nullptr;
    for (uint32_t k : cands) {
      const auto& t = tokens_[k];
      if (text.compare(i, t.content.size(), t.content) != 0) continue;
      if (t.single_word) {
        size_t e = i + t.content.size();
        if ((i > 0 && is_word_char(text[i - 1])) || (e < text.size() && is_word_char(text[e]))) continue;
      }
      hit = &t;
      break;
    }
    if (!hit) {
      ++i;
      continue;
    }
    size_t plain_end = i;
    if (hit->lstrip)
      while (plain_end > start && is_ws(text[plain_end - 1])) --plain_end;
    if (plain_end > start) out.push_back({text.substr(start, plain_end - start), -1, start});
    out.push_back({text.substr(i, hit->content.size()), hit->id, i});
    i += hit->content.size();
    if (hit->rstrip)
      while (i < text.size() && is_ws(text[i])) ++i;
    start = i;
  }
  if (start < text.size()) out.push_back({text.substr(start), -1, start});
  return out;
}

// ---------------------------------------------------------------- regex

Regex::Regex(const std::string& pattern, const std::string& where) : pattern_(pattern) {
  int err = 0;
  PCRE2_SIZE erroff = 0;
  auto* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                             PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &err, &erroff, nullptr);
  if (!code) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(err, buf, sizeof(buf));
    throw Error(where + ": invalid regex at offset " + std::to_string(erroff) + ": " +
                reinterpret_cast<const char*>(buf));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter when JIT is absent
  code_ = code;
}

Regex::~Regex() {
  pcre2_code_free(static_cast<pcre2_code*>(code_));
}

void Regex::split_isolated(std::string_view s, std::vector<std::string_view>& out) const {
  auto* code = static_cast<pcre2_code*>(code_);
  // One match-data block per thread and pattern size; encode() may run on several threads.
  thread_local pcre2_match_data* md = nullptr;
  if (!md) md = pcre2_match_data_create(4, nullptr);
  size_t pos = 0, last = 0;
  auto subject = reinterpret_cast<PCRE2_SPTR>(s.data());
  while (pos <= s.size()) {
    int rc = pcre2_match(code, subject, s.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0 && rc != 0) {
      if (rc == PCRE2_ERROR_NOMEMORY) {  // match data too small for the pattern's groups
        pcre2_match_data_free(md);
        md = pcre2_match_data_create_from_pattern(code, nullptr);
        continue;
      }
      throw Error("pre-tokenizer regex failed with PCRE2 error " + std::to_string(rc));
    }
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    size_t b = ov[0], e = ov[1];
    if (b > last) out.push_back(s.substr(last, b - last));
    if (e > b) {
      out.push_back(s.substr(b, e - b));
      last = pos = e;
    } else {
      // Empty match: step one code point so the loop always advances.
      last = b;
      if (b >= s.size()) break;
      size_t n = 1;
      while (b + n < s.size() && (static_cast<unsigned char>(s[b + n]) & 0xC0) == 0x80) ++n;
      pos = b + n;
    }
  }
  if (last < s.size()) out.push_back(s.substr(last));
}

std::vector<std::string_view> split_pieces(std::string_view text, const std::vector<std::unique_ptr<Regex>>& regexes) {
  std::vector<std::string_view> cur{text}, next;
  if (text.empty()) return {};
  for (const auto& re : regexes) {
    next.clear();
    for (auto p : cur) re->split_isolated(p, next);
    cur.swap(next);
  }
  return cur;
}

// ---------------------------------------------------------------- byte level

const std::array<std::string, 256>& byte_to_unicode() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      uint32_t cp = printable ? static_cast<uint32_t>(b) : static_cast<uint32_t>(256 + n++);
      utf8::append(t[b], cp);
    }
    return t;
  }();
  return table;
}

void append_sp_piece(std::string_view p, std::string& out) {
  for (size_t i = 0; i < p.size();) {
    if (p.compare(i, 3, "\xE2\x96\x81") == 0) {
      out += ' ';
      i += 3;
    } else {
      out += p[i++];
    }
  }
}

bool unicode_to_bytes(std::string_view token, std::string& out) {
  static const std::unordered_map<uint32_t, uint8_t> rev = [] {
    std::unordered_map<uint32_t, uint8_t> m;
    const auto& t = byte_to_unicode();
    for (int b = 0; b < 256; ++b) {
      size_t i = 0;
      m[utf8::next(t[b], i)] = static_cast<uint8_t>(b);
    }
    return m;
  }();
  for (size_t i = 0; i < token.size();) {
    uint32_t cp = utf8::next(token, i);
    auto it = rev.find(cp);
    if (it == rev.end()) return false;
    out += static_cast<char>(it->second);
  }
  return true;
}

std::string utf8_lossy(std::string_view s) {
  if (utf8::is_valid(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 8);
  size_t i = 0;
  while (i < s.size()) {
    size_t bad = utf8::find_invalid(s.substr(i));
    if (bad == std::string_view::npos) {
      out.append(s.substr(i));
      break;
    }
    out.append(s.substr(i, bad));
    i += bad;
    // Length of the maximal prefix of a valid sequence starting here (at least one byte).
    auto c = static_cast<unsigned char>(s[i]);
    size_t need = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 1;
    size_t k = 1;
    while (k < need && i + k < s.size()) {
      auto d = static_cast<unsigned char>(s[i + k]);
      unsigned char lo = 0x80, hi = 0xBF;
      if (k == 1) {
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
      }
      if (d < lo || d > hi) break;
      ++k;
    }
    out += "\xEF\xBF\xBD";
    i += k;
  }
  return out;
}

std::string nfc(std::string_view text) {
  if (text.empty()) return {};
  // ASCII is already NFC; most text is, so skip the allocation utf8proc makes.
  bool ascii = std::all_of(text.begin(), text.end(), [](char c) { return (c & 0x80) == 0; });
  if (ascii) return std::string(text);
  utf8proc_uint8_t* out = nullptr;
  auto n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()), static_cast<utf8proc_ssize_t>(text.size()),
                   &out, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (n < 0) throw Error(std::string("NFC normalization failed: ") + utf8proc_errmsg(n));
  std::string r(reinterpret_cast<char*>(out), static_cast<size_t>(n));
  std::free(out);
  return r;
}

void require_utf8(std::string_view text, const char* what) {
  size_t bad = utf8::find_invalid(text);
  if (bad != std::string_view::npos)
    throw Error(std::string(what) + ": text is not valid UTF-8 (byte offset " + std::to_string(bad) + ")");
}

}  // namespace yak::tok
