#include "yak/train/data_source.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "yak/base/error.h"
#include "yak/base/log.h"

namespace yak::train {
namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// RNG

namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}
}  // namespace

DataRng::DataRng(uint64_t seed) {
  uint64_t x = seed;
  for (auto& s : s_) s = splitmix64(x);
}

uint64_t DataRng::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

void DataRng::set_state(const std::vector<uint64_t>& s) {
  check(s.size() == 4, "random generator state: four words expected");
  for (int i = 0; i < 4; ++i) s_[i] = s[static_cast<size_t>(i)];
}

double DataRng::uniform() {
  return static_cast<double>(next() >> 11) * 0x1.0p-53;
}

uint64_t DataRng::below(uint64_t bound) {
  if (bound <= 1) return 0;
  // Rejection on the top of the range keeps the draw unbiased.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
  uint64_t r;
  do r = next();
  while (r >= limit);
  return r % bound;
}

// ---------------------------------------------------------------------------------------------
// Files

namespace {

std::string read_all(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw Error(p.string() + ": cannot open dataset file");
  std::ostringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  if (s.size() >= 3 && s.compare(0, 3, "\xEF\xBB\xBF") == 0) s.erase(0, 3);  // UTF-8 BOM
  return s;
}

// nlohmann's message without its "[json.exception...] parse error at line 1, column 5: " prefix.
std::string short_parse_message(const std::string& what) {
  auto p = what.find(": ");
  if (p != std::string::npos && what.find("parse error") != std::string::npos) return what.substr(p + 2);
  return what;
}

std::string where_of(const fs::path& file, size_t line) {
  return file.string() + ":" + std::to_string(line);
}

void add_record(std::vector<Record>& out, Json value, const fs::path& file, size_t line) {
  out.push_back({std::move(value), where_of(file, line)});
}

// JSON lines: one object per line, blank lines ignored (as pyarrow's reader does).
void read_jsonl_text(const std::string& text, const fs::path& file, const ReadOptions& o, std::vector<Record>& out,
                     ReadStats* stats) {
  size_t line_no = 0, pos = 0;
  while (pos < text.size() && out.size() < o.max_samples) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    std::string problem;
    Json j;
    try {
      j = Json::parse(line);
      if (!j.is_object()) problem = std::string("expected a JSON object, got ") + j.type_name();
    } catch (const nlohmann::json::parse_error& e) {
      problem = "invalid JSON at column " + std::to_string(e.byte) + ": " + short_parse_message(e.what());
    } catch (const nlohmann::json::exception& e) {
      problem = std::string("invalid JSON: ") + e.what();
    }
    if (!problem.empty()) {
      if (!o.skip_bad_lines) throw Error(where_of(file, line_no) + ": " + problem);
      if (stats) ++stats->bad_lines;
      log::warn(where_of(file, line_no) + ": skipped: " + problem);
      continue;
    }
    add_record(out, std::move(j), file, line_no);
  }
}

// A JSON array of objects. The array is parsed whole (a syntax error anywhere names its line);
// a light scan finds the line each element starts on, for later errors about the element.
void read_json_array_text(const std::string& text, const fs::path& file, const ReadOptions& o,
                          std::vector<Record>& out) {
  Json arr;
  try {
    arr = Json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    size_t line = 1, col = 1;
    for (size_t i = 0; i + 1 < e.byte && i < text.size(); ++i) {
      if (text[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    throw Error(where_of(file, line) + ": invalid JSON at column " + std::to_string(col) + ": " +
                short_parse_message(e.what()));
  }
  if (!arr.is_array()) throw Error(file.string() + ": expected a JSON array of objects or JSON lines");
  std::vector<size_t> starts;
  {
    int depth = 0;
    bool want = false;
    JsonStringTracker str;
    size_t line = 1;
    for (char c : text) {
      if (c == '\n') ++line;
      if (str.feed(c)) continue;
      if (depth == 1 && want && !std::isspace(static_cast<unsigned char>(c)) && c != ',' && c != ']') {
        starts.push_back(line);
        want = false;
      }
      if (c == '[' || c == '{') {
        if (++depth == 1) want = true;
      } else if (c == ']' || c == '}') {
        --depth;
      } else if (c == ',' && depth == 1) {
        want = true;
      }
    }
  }
  for (size_t i = 0; i < arr.size() && out.size() < o.max_samples; ++i) {
    size_t line = starts.size() == arr.size() ? starts[i] : 1;
    if (!arr[i].is_object())
      throw Error(where_of(file, line) + ": expected a JSON object, got " + std::string(arr[i].type_name()));
    add_record(out, std::move(arr[i]), file, line);
  }
}

void read_text_lines(const std::string& text, const fs::path& file, const ReadOptions& o, std::vector<Record>& out) {
  size_t line_no = 0, pos = 0;
  while (pos < text.size() && out.size() < o.max_samples) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    add_record(out, Json{{"text", std::move(line)}}, file, line_no);
  }
}

std::string lower_ext(const fs::path& p) {
  std::string e = p.extension().string();
  for (auto& c : e) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return e;
}

bool is_data_ext(const std::string& e) {
  return e == ".json" || e == ".jsonl" || e == ".txt";
}

void read_file(const fs::path& file, const ReadOptions& o, std::vector<Record>& out, ReadStats* stats) {
  const std::string ext = lower_ext(file);
  if (!is_data_ext(ext))
    throw Error(file.string() + ": unknown dataset file type '" + ext +
                "' (expected .json, .jsonl, .txt, or a folder given as DIR or json@DIR)");
  if (!fs::exists(file)) throw Error(file.string() + ": dataset file not found");
  std::string text = read_all(file);
  if (ext == ".txt") return read_text_lines(text, file, o, out);
  // HF's json loader takes either shape whatever the extension: sniff the first character.
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '[') return read_json_array_text(text, file, o, out);
  read_jsonl_text(text, file, o, out, stats);
}

// HF's split names (datasets.data_files): a path component holding the keyword between
// non-word characters ("-._ 0-9") or the ends. train and test also match as a prefix (train_sft.jsonl).
const std::vector<std::pair<std::string, std::vector<std::string>>>& split_keywords() {
  static const std::vector<std::pair<std::string, std::vector<std::string>>> k = {
      {"train", {"train", "training"}},
      {"validation", {"validation", "valid", "dev", "val"}},
      {"test", {"test", "testing", "eval", "evaluation"}},
  };
  return k;
}

bool is_sep(char c) {
  return c == '-' || c == '.' || c == '_' || c == ' ' || (c >= '0' && c <= '9');
}

bool component_matches(std::string comp, const std::string& kw, bool prefix_ok) {
  for (auto& c : comp) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (prefix_ok && comp.rfind(kw, 0) == 0) return true;
  for (size_t p = comp.find(kw); p != std::string::npos; p = comp.find(kw, p + 1)) {
    bool left = p == 0 || is_sep(comp[p - 1]);
    size_t e = p + kw.size();
    bool right = e == comp.size() || is_sep(comp[e]);
    if (left && right) return true;
  }
  return false;
}

std::optional<std::string> split_of(const fs::path& rel) {
  for (const auto& [split, kws] : split_keywords()) {
    for (const auto& comp : rel) {
      for (const auto& kw : kws)
        if (component_matches(comp.string(), kw, split != "validation")) return split;
    }
  }
  return std::nullopt;
}

void read_folder(const fs::path& dir, const ReadOptions& o, std::vector<Record>& out, ReadStats* stats) {
  if (!fs::is_directory(dir)) throw Error(dir.string() + ": dataset folder not found");
  std::vector<fs::path> files;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator(); ++it) {
    const std::string name = it->path().filename().string();
    if (!name.empty() && (name[0] == '.' || name[0] == '_')) {  // HF ignores hidden and _private entries
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file() && is_data_ext(lower_ext(it->path()))) files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) throw Error(dir.string() + ": no .json, .jsonl or .txt files in the dataset folder");
  std::map<std::string, std::vector<fs::path>> by_split;
  bool any_named = false;
  for (const auto& f : files) {
    auto s = split_of(fs::relative(f, dir));
    any_named |= s.has_value();
    if (s) by_split[*s].push_back(f);
  }
  if (!any_named) by_split["train"] = files;
  auto it = by_split.find(o.split);
  if (it == by_split.end()) {
    std::string found;
    for (const auto& [k, v] : by_split) found += (found.empty() ? "" : ", ") + k;
    throw Error(dir.string() + ": no files for split '" + o.split + "' (found splits: " + found + ")");
  }
  for (const auto& f : it->second) {
    if (out.size() >= o.max_samples) break;
    read_file(f, o, out, stats);
  }
}

std::string trim(std::string s) {
  auto b = s.find_first_not_of(" \t");
  auto e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::vector<std::string> split_csv(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream ss(s);
  while (std::getline(ss, cur, ',')) out.push_back(trim(cur));
  return out;
}

}  // namespace

std::vector<Record> read_dataset(const std::string& spec_in, const ReadOptions& o, ReadStats* stats) {
  const std::string spec = trim(spec_in);
  if (spec.empty()) throw Error("--dataset: empty dataset name");
  std::vector<Record> out;
  // OpenRLHF's NAME@DATA_DIR: json@DIR / text@DIR name a loader and a folder; a local folder may
  // also be narrowed to a subfolder (DIR@sub).
  auto at = spec.find('@');
  if (at != std::string::npos) {
    std::string head = spec.substr(0, at), tail = trim(spec.substr(at + 1));
    if (head == "json" || head == "text")
      read_folder(tail, o, out, stats);
    else if (fs::is_directory(head))
      read_folder(fs::path(head) / tail, o, out, stats);
    else
      throw Error(spec + ": dataset not found (yak reads local files: FILE.jsonl, FILE.json, FILE.txt, DIR, json@DIR)");
  } else if (fs::is_directory(spec)) {
    read_folder(spec, o, out, stats);
  } else {
    const std::string ext = lower_ext(spec);
    if (!is_data_ext(ext) && !fs::exists(spec))
      throw Error(spec + ": dataset not found (yak reads local files: FILE.jsonl, FILE.json, FILE.txt, DIR, json@DIR)");
    read_file(spec, o, out, stats);
  }
  return out;
}

std::vector<size_t> interleave_indices(std::span<const size_t> lengths, std::span<const double> probs, uint64_t seed,
                                       StoppingStrategy stopping) {
  const size_t n = lengths.size();
  check(probs.size() == n,
        "--dataset_probs: " + std::to_string(probs.size()) + " probabilities for " + std::to_string(n) + " datasets");
  double sum = 0;
  for (double p : probs) {
    check(std::isfinite(p) && p > 0, "--dataset_probs: every probability must be > 0");
    sum += p;
  }
  check(std::fabs(sum - 1.0) < 1e-6, "--dataset_probs: probabilities sum to " + std::to_string(sum) + ", expected 1");
  for (size_t i = 0; i < n; ++i) check(lengths[i] > 0, "--dataset: dataset " + std::to_string(i + 1) + " is empty");
  // numpy's choice(): cdf normalized by its last entry, searchsorted(side='right') of a uniform draw.
  std::vector<double> cdf(n);
  double acc = 0;
  for (size_t i = 0; i < n; ++i) cdf[i] = (acc += probs[i]);
  for (auto& c : cdf) c /= acc;
  std::vector<size_t> offsets(n, 0);
  for (size_t i = 1; i < n; ++i) offsets[i] = offsets[i - 1] + lengths[i - 1];
  std::vector<size_t> current(n, 0);
  std::vector<bool> exhausted(n, false);
  DataRng rng(seed);
  std::vector<size_t> out;
  for (;;) {
    bool stop = stopping == StoppingStrategy::AllExhausted
                    ? std::all_of(exhausted.begin(), exhausted.end(), [](bool b) { return b; })
                    : std::any_of(exhausted.begin(), exhausted.end(), [](bool b) { return b; });
    if (stop) break;
    double u = rng.uniform();
    size_t src = std::upper_bound(cdf.begin(), cdf.end(), u) - cdf.begin();
    if (src >= n) src = n - 1;
    out.push_back(offsets[src] + current[src]);
    if (++current[src] >= lengths[src]) {
      exhausted[src] = true;
      current[src] = 0;
    }
  }
  return out;
}

std::vector<Record> blend_datasets(const std::string& datasets, const std::string& probs, const ReadOptions& o,
                                   ReadStats* stats) {
  auto names = split_csv(datasets);
  check(!names.empty(), "--dataset: no dataset given");
  std::vector<std::vector<Record>> parts;
  std::vector<size_t> lengths;
  for (const auto& name : names) {
    parts.push_back(read_dataset(name, o, stats));
    lengths.push_back(parts.back().size());
    if (stats) stats->records.push_back(parts.back().size());
  }
  std::vector<Record> out;
  if (trim(probs).empty()) {
    for (size_t i = 0; i < parts.size(); ++i) {
      if (stats) stats->blended_counts.push_back(parts[i].size());
      for (auto& r : parts[i]) out.push_back(std::move(r));
    }
  } else {
    std::vector<double> p;
    for (const auto& s : split_csv(probs)) {
      try {
        size_t used = 0;
        p.push_back(std::stod(s, &used));
        if (used != s.size()) throw std::invalid_argument(s);
      } catch (const std::exception&) {
        throw Error("--dataset_probs: '" + s + "' is not a number");
      }
    }
    auto idx = interleave_indices(lengths, p, o.seed, o.stopping);
    std::vector<size_t> offsets(parts.size(), 0);
    for (size_t i = 1; i < parts.size(); ++i) offsets[i] = offsets[i - 1] + lengths[i - 1];
    if (stats) stats->blended_counts.assign(parts.size(), 0);
    for (size_t k = 0; k < idx.size() && out.size() < o.max_samples; ++k) {
      size_t src = std::upper_bound(offsets.begin(), offsets.end(), idx[k]) - offsets.begin() - 1;
      if (stats) ++stats->blended_counts[src];
      out.push_back(parts[src][idx[k] - offsets[src]]);  // a copy: all_exhausted repeats records
    }
    return out;
  }
  if (out.size() > o.max_samples) out.resize(o.max_samples);
  return out;
}

}  // namespace yak::train
