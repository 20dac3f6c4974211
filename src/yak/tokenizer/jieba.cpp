#include "yak/tokenizer/jieba.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdlib>

#include "yak/base/error.h"
#include "yak/base/mmap.h"
#include "yak/base/utf8.h"

namespace yak::tok {
namespace fs = std::filesystem;
namespace {

constexpr double kMinFloat = -3.14e100;  // finalseg's MIN_FLOAT: a probability of "never"
enum State { B = 0, M = 1, E = 2, S = 3 };
// finalseg's PrevStatus: the states each state may follow.
constexpr std::array<std::array<int, 2>, 4> kPrev = {{{E, S}, {M, B}, {B, M}, {S, E}}};
// States compare as their letters when probabilities tie ('B' < 'E' < 'M' < 'S').
constexpr std::array<char, 4> kLetter = {'B', 'M', 'E', 'S'};

std::string enc(const std::u32string& s, size_t b, size_t e) {
  std::string out;
  for (size_t i = b; i < e; ++i) utf8::append(out, s[i]);
  return out;
}

bool is_han(char32_t c) {  // finalseg's re_han: [\u4E00-\u9FD5]
  return c >= 0x4E00 && c <= 0x9FD5;
}
bool is_ascii_alnum(char32_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
bool is_han_default(char32_t c) {  // re_han_default: [\u4E00-\u9FD5a-zA-Z0-9+#&\._%\-]
  return is_han(c) || is_ascii_alnum(c) || c == '+' || c == '#' || c == '&' || c == '.' || c == '_' || c == '%' ||
         c == '-';
}

// A Python dict literal of string keys and number or dict values, as finalseg's prob_*.py hold:
// P={'B': -0.26, ...} or P={'B': {'\u4e00': -3.65, ...}, ...}.
class PyDictReader {
 public:
  PyDictReader(std::string text, std::string where) : s_(std::move(text)), where_(std::move(where)) {
    const size_t p = s_.find("P=");
    if (p == std::string::npos) fail("no 'P=' assignment");
    i_ = p + 2;
  }
  template <typename OnEntry>
  void dict(OnEntry on_entry) {
    expect('{');
    for (;;) {
      skip();
      if (peek() == '}') {
        ++i_;
        return;
      }
      const std::u32string key = string();
      expect(':');
      skip();
      on_entry(key, *this);
      skip();
      if (peek() == ',') ++i_;
    }
  }
  double number() {
    skip();
    const char* b = s_.c_str() + i_;
    char* e = nullptr;
    const double v = std::strtod(b, &e);
    if (e == b) fail("expected a number");
    i_ += static_cast<size_t>(e - b);
    return v;
  }
  [[noreturn]] void fail(const std::string& what) const {
    size_t line = 1;
    for (size_t k = 0; k < i_ && k < s_.size(); ++k) line += s_[k] == '\n';
    throw Error(where_ + ":" + std::to_string(line) + ": " + what);
  }

 private:
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void skip() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) ++i_;
  }
  void expect(char c) {
    skip();
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++i_;
  }
  std::u32string string() {
    const char q = peek();
    if (q != '\'' && q != '"') fail("expected a quoted key");
    ++i_;
    std::u32string out;
    while (i_ < s_.size() && s_[i_] != q) {
      if (s_[i_] == '\\' && i_ + 1 < s_.size()) {
        const char k = s_[i_ + 1];
        if (k == 'u') {
          if (i_ + 6 > s_.size()) fail("truncated \\u escape");
          char32_t cp = 0;
          for (size_t h = i_ + 2; h < i_ + 6; ++h) {
            const char c = s_[h];
            const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (d < 0) fail("bad \\u escape");
            cp = cp * 16 + static_cast<char32_t>(d);
          }
          out.push_back(cp);
          i_ += 6;
        } else {
          out.push_back(static_cast<char32_t>(k == 'n' ? '\n' : k == 't' ? '\t' : k));
          i_ += 2;
        }
      } else {
        out.push_back(utf8::next(s_, i_));
      }
    }
    if (i_ >= s_.size()) fail("unterminated string");
    ++i_;
    return out;
  }
  std::string s_;
  std::string where_;
  size_t i_ = 0;
};

int state_of(const std::u32string& key, const PyDictReader& r) {
  if (key.size() == 1)
    for (int k = 0; k < 4; ++k)
      if (key[0] == static_cast<char32_t>(kLetter[k])) return k;
  r.fail("expected a state B, M, E or S");
}

}  // namespace

std::optional<fs::path> Jieba::find_installed() {
  std::vector<fs::path> dirs;
  if (const char* env = std::getenv("YAK_JIEBA_DIR"); env && *env) dirs.emplace_back(env);
  dirs.emplace_back("/usr/lib/python3/dist-packages/jieba");
  for (const auto& d : dirs)
    if (fs::exists(d / "dict.txt") && fs::exists(d / "finalseg" / "prob_emit.py")) return d;
  return std::nullopt;
}

std::unique_ptr<Jieba> Jieba::load(const fs::path& dir) {
  const fs::path dict = dir / "dict.txt";
  if (!fs::exists(dict)) throw Error(dict.string() + ": cannot open (is jieba installed? apt-get install python3-jieba)");
  const auto fin = dir / "finalseg";
  return from_text(read_text_file(dict), read_text_file(fin / "prob_start.py"), read_text_file(fin / "prob_trans.py"),
                   read_text_file(fin / "prob_emit.py"), dir.string());
}

std::unique_ptr<Jieba> Jieba::from_text(std::string_view dict_text, std::string start, std::string trans,
                                        std::string emit, const std::string& where) {
  auto j = std::make_unique<Jieba>();
  // dict.txt: "word freq [tag]" per line; every prefix of a word is known with frequency 0.
  const std::string dict = (fs::path(where) / "dict.txt").string();
  j->freq_.reserve(std::min<size_t>(600000, dict_text.size() / 8 + 16));
  int64_t total = 0, lineno = 0;
  for (size_t at = 0; at < dict_text.size();) {
    const size_t nl = std::min(dict_text.find('\n', at), dict_text.size());
    const std::string_view line = dict_text.substr(at, nl - at);
    at = nl + 1;
    ++lineno;
    size_t b = 0, e = line.size();
    while (b < e && std::isspace(static_cast<unsigned char>(line[b]))) ++b;
    while (e > b && std::isspace(static_cast<unsigned char>(line[e - 1]))) --e;
    const std::string_view l = line.substr(b, e - b);
    const size_t sp = l.find(' ');
    if (sp == std::string_view::npos || sp == 0)
      throw Error(dict + ":" + std::to_string(lineno) + ": expected 'word frequency [tag]'");
    const size_t sp2 = l.find(' ', sp + 1);
    const std::string f(l.substr(sp + 1, sp2 == std::string_view::npos ? std::string_view::npos : sp2 - sp - 1));
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(f.c_str(), &end, 10);
    if (f.empty() || *end != '\0' || v < 0 || errno == ERANGE || total > INT64_MAX / 2 - v)
      throw Error(dict + ":" + std::to_string(lineno) + ": frequency '" + f + "' is not a non-negative integer");
    std::u32string w;
    const std::string_view word = l.substr(0, sp);
    for (size_t i = 0; i < word.size();) w.push_back(utf8::next(word, i));
    j->freq_[w] = v;
    total += v;
    for (size_t k = 1; k < w.size(); ++k) j->freq_.try_emplace(w.substr(0, k), 0);
  }
  if (total <= 0) throw Error(dict + ": no words with a positive frequency");
  j->log_total_ = std::log(static_cast<double>(total));

  const fs::path fin = fs::path(where) / "finalseg";
  {
    PyDictReader r(std::move(start), (fin / "prob_start.py").string());
    std::array<bool, 4> seen{};
    r.dict([&](const std::u32string& k, PyDictReader& rr) {
      const int s = state_of(k, rr);
      j->start_[s] = rr.number();
      seen[s] = true;
    });
    for (bool s : seen)
      if (!s) r.fail("a state's start probability is missing");
  }
  {
    PyDictReader r(std::move(trans), (fin / "prob_trans.py").string());
    for (auto& row : j->trans_) row.fill(kMinFloat);
    r.dict([&](const std::u32string& k, PyDictReader& rr) {
      const int from = state_of(k, rr);
      rr.dict([&](const std::u32string& k2, PyDictReader& r3) { j->trans_[from][state_of(k2, r3)] = r3.number(); });
    });
  }
  {
    PyDictReader r(std::move(emit), (fin / "prob_emit.py").string());
    r.dict([&](const std::u32string& k, PyDictReader& rr) {
      const int s = state_of(k, rr);
      rr.dict([&](const std::u32string& ch, PyDictReader& r3) {
        if (ch.size() != 1) r3.fail("emission key must be one character");
        j->emit_[s][ch[0]] = r3.number();
      });
    });
  }
  return j;
}

int64_t Jieba::freq(const std::u32string& w) const {
  auto it = freq_.find(w);
  return it == freq_.end() ? 0 : it->second;
}

std::vector<std::string> Jieba::cut(std::string_view text) const {
  std::u32string s;
  for (size_t i = 0; i < text.size();) s.push_back(utf8::next(text, i));
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    if (is_han_default(s[i])) {  // a block of re_han_default: the dictionary route
      size_t e = i;
      while (e < s.size() && is_han_default(s[e])) ++e;
      cut_dag(s.substr(i, e - i), out);
      i = e;
    } else if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') {  // re_skip_default: \r\n | \s
      out.push_back("\r\n");
      i += 2;
    } else {  // whitespace and every other character alone
      out.push_back(enc(s, i, i + 1));
      ++i;
    }
  }
  return out;
}

void Jieba::cut_dag(const std::u32string& s, std::vector<std::string>& out) const {
  const size_t n = s.size();
  // DAG: the ends of the dictionary words starting at each position (the character alone when none).
  std::vector<std::vector<size_t>> dag(n);
  for (size_t k = 0; k < n; ++k) {
    std::u32string frag(1, s[k]);
    for (size_t i = k; i < n;) {
      auto it = freq_.find(frag);
      if (it == freq_.end()) break;
      if (it->second) dag[k].push_back(i);
      ++i;
      if (i < n) frag.push_back(s[i]);
    }
    if (dag[k].empty()) dag[k].push_back(k);
  }
  // The most probable route from the end: log(freq or 1) - log(total) per word; ties take the
  // longer word (Python's max over (score, end) pairs).
  std::vector<std::pair<double, size_t>> route(n + 1, {0.0, 0});
  for (size_t idx = n; idx-- > 0;) {
    bool first = true;
    std::pair<double, size_t> best{0.0, 0};
    for (size_t x : dag[idx]) {
      const int64_t f = freq(s.substr(idx, x + 1 - idx));
      const std::pair<double, size_t> cand{std::log(static_cast<double>(f ? f : 1)) - log_total_ + route[x + 1].first, x};
      if (first || cand > best) best = cand;
      first = false;
    }
    route[idx] = best;
  }
  // Single characters in a row gather in a buffer; an unknown run of them goes to the HMM.
  std::u32string buf;
  auto flush = [&] {
    if (buf.empty()) return;
    if (buf.size() == 1) {
      out.push_back(enc(buf, 0, 1));
    } else if (!freq(buf)) {
      cut_hmm(buf, out);
    } else {
      for (size_t k = 0; k < buf.size(); ++k) out.push_back(enc(buf, k, k + 1));
    }
    buf.clear();
  };
  for (size_t x = 0; x < n;) {
    const size_t y = route[x].second + 1;
    if (y - x == 1) {
      buf.push_back(s[x]);
    } else {
      flush();
      out.push_back(enc(s, x, y));
    }
    x = y;
  }
  flush();
}

void Jieba::cut_hmm(const std::u32string& s, std::vector<std::string>& out) const {
  // finalseg.cut: Chinese runs through the Viterbi; other runs split into [a-zA-Z0-9]+(\.\d+)?%?
  // tokens and the pieces between them.
  size_t i = 0;
  while (i < s.size()) {
    if (is_han(s[i])) {
      size_t e = i;
      while (e < s.size() && is_han(s[e])) ++e;
      viterbi(s.substr(i, e - i), out);
      i = e;
      continue;
    }
    size_t e = i;
    while (e < s.size() && !is_han(s[e])) ++e;
    size_t p = i, piece = i;
    while (p < e) {
      if (!is_ascii_alnum(s[p])) {
        ++p;
        continue;
      }
      if (piece < p) out.push_back(enc(s, piece, p));
      size_t q = p;
      while (q < e && is_ascii_alnum(s[q])) ++q;
      if (q + 1 < e && s[q] == '.' && s[q + 1] >= '0' && s[q + 1] <= '9') {
        q += 2;
        while (q < e && s[q] >= '0' && s[q] <= '9') ++q;
      }
      if (q < e && s[q] == '%') ++q;
      out.push_back(enc(s, p, q));
      p = piece = q;
    }
    if (piece < e) out.push_back(enc(s, piece, e));
    i = e;
  }
}

void Jieba::viterbi(const std::u32string& obs, std::vector<std::string>& out) const {
  const size_t n = obs.size();
  auto em = [&](int st, char32_t c) {
    auto it = emit_[st].find(c);
    return it == emit_[st].end() ? kMinFloat : it->second;
  };
  std::vector<std::array<double, 4>> v(n);
  std::vector<std::array<int, 4>> back(n);
  for (int y = 0; y < 4; ++y) v[0][y] = start_[y] + em(y, obs[0]);
  for (size_t t = 1; t < n; ++t)
    for (int y = 0; y < 4; ++y) {
      const double e = em(y, obs[t]);
      int best = -1;
      double bp = 0;
      for (int y0 : kPrev[y]) {
        const double p = v[t - 1][y0] + trans_[y0][y] + e;
        if (best < 0 || p > bp || (p == bp && kLetter[y0] > kLetter[best])) {
          best = y0;
          bp = p;
        }
      }
      v[t][y] = bp;
      back[t][y] = best;
    }
  int state = v[n - 1][S] >= v[n - 1][E] ? S : E;  // max over (prob, state) for E, S: ties take 'S'
  std::vector<int> pos(n);
  for (size_t t = n; t-- > 0;) {
    pos[t] = state;
    if (t > 0) state = back[t][state];
  }
  size_t begin = 0, next = 0;
  for (size_t i = 0; i < n; ++i) {
    if (pos[i] == B) {
      begin = i;
    } else if (pos[i] == E) {
      out.push_back(enc(obs, begin, i + 1));
      next = i + 1;
    } else if (pos[i] == S) {
      out.push_back(enc(obs, i, i + 1));
      next = i + 1;
    }
  }
  if (next < n) out.push_back(enc(obs, next, n));
}

}  // namespace yak::tok
