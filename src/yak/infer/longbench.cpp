#include "yak/infer/longbench.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <set>

#include "yak/base/error.h"
#include "yak/base/utf8.h"
#include "yak/infer/engine.h"

namespace yak::infer {

namespace {

std::vector<uint32_t> cps(const std::string& s) {
  std::vector<uint32_t> out;
  for (size_t i = 0; i < s.size();) out.push_back(utf8::next(s, i));
  return out;
}
std::string enc(uint32_t c) {
  std::string s;
  utf8::append(s, c);
  return s;
}
// str.split(): runs of whitespace.
std::vector<std::string> split_ws(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (uint32_t c : cps(s)) {
    if (utf8::is_python_space(c)) {
      if (!cur.empty()) out.push_back(cur), cur.clear();
    } else {
      cur += enc(c);
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}
std::string lower_ascii(std::string s) {
  for (auto& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}
bool ascii_punct(uint32_t c) { return c < 128 && std::ispunct(static_cast<int>(c)); }
bool word_char(uint32_t c) { return c >= 128 || std::isalnum(static_cast<int>(c)) || c == '_'; }

// metrics.py's normalize_answer: lower, drop ASCII punctuation, articles as whole words, and
// collapse whitespace.
std::string normalize_answer(const std::string& s) {
  std::vector<uint32_t> t;
  for (uint32_t c : cps(lower_ascii(s)))
    if (!ascii_punct(c)) t.push_back(c);
  std::string out;
  for (size_t i = 0; i < t.size();) {
    bool article = false;
    for (const std::string a : {"the", "an", "a"}) {
      if (i + a.size() > t.size()) continue;
      bool eq = true;
      for (size_t k = 0; k < a.size(); ++k) eq = eq && t[i + k] == static_cast<uint32_t>(a[k]);
      const bool before = i == 0 || !word_char(t[i - 1]), after = i + a.size() == t.size() || !word_char(t[i + a.size()]);
      if (eq && before && after) {
        out += ' ';
        i += a.size();
        article = true;
        break;
      }
    }
    if (!article) out += enc(t[i++]);
  }
  std::string joined;
  for (const auto& w : split_ws(out)) joined += (joined.empty() ? "" : " ") + w;
  return joined;
}

// normalize_zh_answer: lower, drop ASCII and Chinese punctuation, drop whitespace.
std::string normalize_zh(const std::string& s) {
  static const std::set<uint32_t> cn = [] {
    std::set<uint32_t> v;
    for (uint32_t c : cps("！？｡。＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～｟｠｢｣､、〃》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟〰〾〿–—‘’‛“”„‟…‧﹏."))
      v.insert(c);
    return v;
  }();
  std::string out;
  for (uint32_t c : cps(lower_ascii(s)))
    if (!ascii_punct(c) && !cn.count(c) && !utf8::is_python_space(c)) out += enc(c);
  return out;
}

double f1(const std::vector<std::string>& p, const std::vector<std::string>& g) {
  std::map<std::string, int> cp, cg;
  for (const auto& x : p) ++cp[x];
  for (const auto& x : g) ++cg[x];
  int same = 0;
  for (const auto& [k, n] : cp)
    if (cg.count(k)) same += std::min(n, cg[k]);
  if (same == 0) return 0;
  const double prec = static_cast<double>(same) / static_cast<double>(p.size());
  const double rec = static_cast<double>(same) / static_cast<double>(g.size());
  return 2 * prec * rec / (prec + rec);
}

// The words LongBench's Chinese scorers see: jieba's, or single characters without it.
std::vector<std::string> zh_words(const std::string& s, const tok::Jieba* zh) {
  if (zh) return zh->cut(s);
  std::vector<std::string> out;
  for (uint32_t c : cps(s)) out.push_back(enc(c));
  return out;
}

// qa_f1_zh_score's tokens: the words normalised, the empty ones dropped.
std::vector<std::string> zh_tokens(const std::string& s, const tok::Jieba* zh) {
  std::vector<std::string> out;
  for (const auto& w : zh_words(s, zh)) {
    std::string t = normalize_zh(w);
    if (!t.empty()) out.push_back(t);
  }
  return out;
}

// The `rouge` package 1.0.1: sentences are the pieces between '.', words their " "-split
// whitespace-collapsed text; ROUGE-L summary level over word sets (exclusive mode).
std::vector<std::vector<std::string>> rouge_sentences(const std::string& s) {
  std::vector<std::vector<std::string>> out;
  size_t p = 0;
  while (p <= s.size()) {
    const size_t q = std::min(s.find('.', p), s.size());
    const std::string piece = s.substr(p, q - p);
    if (!piece.empty()) {
      std::string joined;
      for (const auto& w : split_ws(piece)) joined += (joined.empty() ? "" : " ") + w;
      std::vector<std::string> words;  // joined.split(" "): "" gives [""]
      size_t a = 0;
      while (true) {
        const size_t b = joined.find(' ', a);
        words.push_back(joined.substr(a, b == std::string::npos ? std::string::npos : b - a));
        if (b == std::string::npos) break;
        a = b + 1;
      }
      out.push_back(std::move(words));
    }
    if (q == s.size()) break;
    p = q + 1;
  }
  return out;
}

// The words of one LCS of x and y, reconstructed with the package's tie-breaking.
std::vector<std::string> recon_lcs(const std::vector<std::string>& x, const std::vector<std::string>& y) {
  const size_t n = x.size(), m = y.size();
  std::vector<std::vector<int>> t(n + 1, std::vector<int>(m + 1, 0));
  for (size_t i = 1; i <= n; ++i)
    for (size_t j = 1; j <= m; ++j) t[i][j] = x[i - 1] == y[j - 1] ? t[i - 1][j - 1] + 1 : std::max(t[i - 1][j], t[i][j - 1]);
  std::vector<std::string> out;
  size_t i = n, j = m;
  while (i > 0 && j > 0) {
    if (x[i - 1] == y[j - 1]) {
      out.push_back(x[i - 1]);
      --i, --j;
    } else if (t[i - 1][j] > t[i][j - 1]) {
      --i;
    } else {
      --j;
    }
  }
  std::reverse(out.begin(), out.end());
  return out;
}

double rouge_l(const std::string& hyp, const std::string& ref) {
  const auto h = rouge_sentences(hyp), r = rouge_sentences(ref);
  if (h.empty() || r.empty()) return 0.0;  // the package raises; LongBench scores 0
  std::set<std::string> hw, rw;
  for (const auto& s : h) hw.insert(s.begin(), s.end());
  for (const auto& s : r) rw.insert(s.begin(), s.end());
  std::set<std::string> uni;
  for (const auto& rs : r)
    for (const auto& hs : h)
      for (const auto& w : recon_lcs(rs, hs)) uni.insert(w);
  const double llcs = static_cast<double>(uni.size());
  const double rr = llcs / static_cast<double>(rw.size()), pp = llcs / static_cast<double>(hw.size());
  return 2.0 * (pp * rr / (pp + rr + 1e-8));
}

std::vector<std::string> numbers(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c >= '0' && c <= '9') cur += c;
    else if (!cur.empty()) out.push_back(cur), cur.clear();
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

double retrieval(const std::string& pred, const std::string& gt, const std::string& marker) {
  // The first "<marker><digits>" of the answer names the paragraph.
  std::string id;
  for (size_t at = gt.find(marker); at != std::string::npos && id.empty(); at = gt.find(marker, at + 1))
    for (size_t k = at + marker.size(); k < gt.size() && gt[k] >= '0' && gt[k] <= '9'; ++k) id += gt[k];
  if (id.empty()) return 0.0;
  const auto ns = numbers(pred);
  if (ns.empty()) return 0.0;
  return static_cast<double>(std::count(ns.begin(), ns.end(), id)) / static_cast<double>(ns.size());
}

// python-Levenshtein's ratio: 1 - indel distance / total length, in code points; fuzz.ratio
// rounds it to a whole percent.
double code_sim(const std::string& prediction, const std::string& gt) {
  std::string pred;
  std::string text = prediction;
  text.erase(0, text.find_first_not_of('\n') == std::string::npos ? text.size() : text.find_first_not_of('\n'));
  size_t p = 0;
  while (p <= text.size()) {
    const size_t q = std::min(text.find('\n', p), text.size());
    const std::string line = text.substr(p, q - p);
    if (line.find('`') == std::string::npos && line.find('#') == std::string::npos && line.find("//") == std::string::npos) {
      pred = line;
      break;
    }
    if (q == text.size()) break;
    p = q + 1;
  }
  const auto a = cps(pred), b = cps(gt);
  if (a.empty() || b.empty()) return 0.0;
  std::vector<int> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = static_cast<int>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = static_cast<int>(i);
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = a[i - 1] == b[j - 1] ? prev[j - 1] : 1 + std::min(prev[j], cur[j - 1]);
    std::swap(prev, cur);
  }
  const double total = static_cast<double>(a.size() + b.size());
  const double ratio = (total - prev[b.size()]) / total;
  return std::round(100.0 * ratio) / 100.0;  // Python's round: halves to even (rare at 1e-2 grid)
}

double classification(const std::string& pred, const std::string& gt, const std::vector<std::string>& classes) {
  std::vector<std::string> m;
  for (const auto& c : classes)
    if (pred.find(c) != std::string::npos) m.push_back(c);
  // metrics.py removes from the list while iterating over it: an element right after a removed
  // one is skipped.
  for (size_t i = 0; i < m.size(); ++i) {
    if (gt.find(m[i]) != std::string::npos && m[i] != gt) m.erase(m.begin() + static_cast<long>(i));
  }
  if (std::find(m.begin(), m.end(), gt) == m.end()) return 0.0;
  return 1.0 / static_cast<double>(m.size());
}

std::vector<std::string> strings_of(const nlohmann::ordered_json& j, const std::string& key, const std::string& where,
                                    bool required) {
  std::vector<std::string> out;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) throw Error(where + ": missing field '" + key + "'");
    return out;
  }
  if (it->is_string()) return {it->get<std::string>()};
  if (!it->is_array()) throw Error(where + ": field '" + key + "' must be a list of strings");
  for (const auto& x : *it) {
    if (!x.is_string()) throw Error(where + ": field '" + key + "' must be a list of strings");
    out.push_back(x.get<std::string>());
  }
  return out;
}

bool first_line_only(const std::string& d) { return d == "trec" || d == "triviaqa" || d == "samsum" || d == "lsht"; }

}  // namespace

LbMetric longbench_metric(const std::string& d) {
  static const std::map<std::string, LbMetric> m = {
      {"narrativeqa", LbMetric::QaF1},      {"qasper", LbMetric::QaF1},         {"multifieldqa_en", LbMetric::QaF1},
      {"multifieldqa_zh", LbMetric::QaF1Zh}, {"hotpotqa", LbMetric::QaF1},      {"2wikimqa", LbMetric::QaF1},
      {"musique", LbMetric::QaF1},          {"dureader", LbMetric::RougeZh},    {"gov_report", LbMetric::Rouge},
      {"qmsum", LbMetric::Rouge},           {"multi_news", LbMetric::Rouge},    {"vcsum", LbMetric::RougeZh},
      {"trec", LbMetric::Classification},   {"triviaqa", LbMetric::QaF1},       {"samsum", LbMetric::Rouge},
      {"lsht", LbMetric::Classification},   {"passage_retrieval_en", LbMetric::Retrieval},
      {"passage_count", LbMetric::Count},   {"passage_retrieval_zh", LbMetric::RetrievalZh},
      {"lcc", LbMetric::CodeSim},           {"repobench-p", LbMetric::CodeSim}};
  std::string base = d;
  if (base.size() > 2 && base.compare(base.size() - 2, 2, "_e") == 0) base.resize(base.size() - 2);  // LongBench-E
  auto it = m.find(base);
  if (it == m.end()) throw Error("dataset '" + d + "' is not one of LongBench's (narrativeqa, qasper, ..., repobench-p)");
  return it->second;
}

const char* longbench_metric_name(LbMetric m) {
  switch (m) {
    case LbMetric::QaF1: return "qa_f1";
    case LbMetric::QaF1Zh: return "qa_f1_zh";
    case LbMetric::Rouge: return "rouge-l";
    case LbMetric::RougeZh: return "rouge-l_zh";
    case LbMetric::Classification: return "classification";
    case LbMetric::Retrieval: return "retrieval";
    case LbMetric::RetrievalZh: return "retrieval_zh";
    case LbMetric::Count: return "count";
    case LbMetric::CodeSim: return "code_sim";
  }
  return "?";
}

double longbench_score(LbMetric m, const std::string& pred, const std::string& gt, const std::vector<std::string>& cls,
                       const tok::Jieba* zh) {
  switch (m) {
    case LbMetric::QaF1: return f1(split_ws(normalize_answer(pred)), split_ws(normalize_answer(gt)));
    case LbMetric::QaF1Zh: return f1(zh_tokens(pred, zh), zh_tokens(gt, zh));
    case LbMetric::Rouge: return rouge_l(pred, gt);
    case LbMetric::RougeZh: {
      auto spaced = [&](const std::string& s) {  // " ".join(jieba.cut(s))
        std::string out;
        bool first = true;
        for (const auto& w : zh_words(s, zh)) {
          out += (first ? "" : " ") + w;
          first = false;
        }
        return out;
      };
      return rouge_l(spaced(pred), spaced(gt));
    }
    case LbMetric::Classification: return classification(pred, gt, cls);
    case LbMetric::Retrieval: return retrieval(pred, gt, "Paragraph ");
    case LbMetric::RetrievalZh: return retrieval(pred, gt, "段落");
    case LbMetric::Count: {
      const auto ns = numbers(pred);
      if (ns.empty()) return 0.0;
      return static_cast<double>(std::count(ns.begin(), ns.end(), gt)) / static_cast<double>(ns.size());
    }
    case LbMetric::CodeSim: return code_sim(pred, gt);
  }
  return 0.0;
}

const char* longbench_e_bucket(int64_t length) {
  return length < 4000 ? "0-4k" : length < 8000 ? "4-8k" : "8k+";
}

double longbench_record_score(const std::string& dataset, const std::string& prediction,
                              const std::vector<std::string>& answers, const std::vector<std::string>& classes,
                              const tok::Jieba* zh) {
  const LbMetric m = longbench_metric(dataset);
  std::string p = prediction;
  if (first_line_only(dataset)) {
    p.erase(0, std::min(p.find_first_not_of('\n'), p.size()));
    p = p.substr(0, p.find('\n'));
  }
  double best = 0;
  for (const auto& a : answers) best = std::max(best, longbench_score(m, p, a, classes, zh));
  return best;
}

std::vector<LbRecord> read_longbench(const std::string& path, const std::string& dataset) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(path + ": cannot open");
  std::vector<LbRecord> out;
  std::string line;
  int n = 0;
  while (std::getline(f, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    LbRecord r;
    r.where = path + ":" + std::to_string(n);
    try {
      r.fields = nlohmann::ordered_json::parse(line);
    } catch (const std::exception& e) {
      throw Error(r.where + ": not JSON (" + std::string(e.what()) + ")");
    }
    if (!r.fields.is_object()) throw Error(r.where + ": expected a JSON object");
    r.dataset = r.fields.contains("dataset") && r.fields["dataset"].is_string() ? r.fields["dataset"].get<std::string>() : dataset;
    if (r.dataset.empty()) throw Error(r.where + ": no 'dataset' field (give --dataset)");
    try {
      longbench_metric(r.dataset);  // a known dataset
    } catch (const Error& e) {
      throw Error(r.where + ": " + e.what());
    }
    r.answers = strings_of(r.fields, "answers", r.where, true);
    r.all_classes = strings_of(r.fields, "all_classes", r.where, false);
    if (r.fields.contains("length") && r.fields["length"].is_number_integer()) r.length = r.fields["length"].get<int64_t>();
    if (r.fields.contains("pred") && r.fields["pred"].is_string()) r.prediction = r.fields["pred"].get<std::string>();
    out.push_back(std::move(r));
  }
  return out;
}

std::string longbench_prompt(const std::string& fmt, const LbRecord& r) {
  std::string out;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] == '{' && i + 1 < fmt.size() && fmt[i + 1] == '{') { out += '{'; ++i; continue; }
    if (fmt[i] == '}' && i + 1 < fmt.size() && fmt[i + 1] == '}') { out += '}'; ++i; continue; }
    if (fmt[i] != '{') { out += fmt[i]; continue; }
    const size_t e = fmt.find('}', i);
    if (e == std::string::npos) throw Error("prompt format: unclosed '{'");
    const std::string key = fmt.substr(i + 1, e - i - 1);
    auto it = r.fields.find(key);
    if (it == r.fields.end()) throw Error(r.where + ": the prompt names '{" + key + "}', which the record lacks");
    out += it->is_string() ? it->get<std::string>() : it->dump();
    i = e;
  }
  return out;
}

std::string truncate_middle(const std::string& prompt, const tok::Tokenizer& tok, int64_t max_len) {
  const auto ids = tok.encode(prompt, true);
  if (static_cast<int64_t>(ids.size()) <= max_len) return prompt;
  const auto half = static_cast<size_t>(max_len / 2);
  const std::vector<int32_t> a(ids.begin(), ids.begin() + static_cast<long>(half)), b(ids.end() - static_cast<long>(half), ids.end());
  return tok.decode(a, true) + tok.decode(b, true);
}

void longbench_generate(model::DecoderModel& model, const tok::Tokenizer& tok, std::vector<LbRecord>& records,
                        const LbOptions& o, const std::function<void(int64_t, int64_t)>& progress) {
  Engine engine(model, &tok);
  int64_t done = 0;
  for (auto& r : records) {
    const std::string fmt = o.prompt_format ? o.prompt_format(r.dataset) : "{context}\n\n{input}";
    std::string prompt = truncate_middle(longbench_prompt(fmt, r), tok, o.max_len);
    const bool chat = o.chat && !first_line_only(r.dataset) && r.dataset != "lcc" && r.dataset != "repobench-p";
    GenerateRequest g;
    if (chat) {
      std::vector<tok::ChatMessage> m{{"user", prompt}};
      g.prompt = tok.encode(o.chat->render(m), o.chat->add_special_tokens());
    } else {
      g.prompt = tok.encode(prompt, true);
    }
    g.max_new_tokens = o.max_new_tokens ? o.max_new_tokens(r.dataset) : 128;
    if (r.dataset == "samsum" || r.dataset == "samsum_e") g.stop = {"\n"};  // LongBench adds "\n" to the EOS ids
    const auto res = engine.generate(std::vector<GenerateRequest>{g}).front();
    r.prediction = res.text;
    if (progress) progress(++done, static_cast<int64_t>(records.size()));
  }
}

}  // namespace yak::infer
