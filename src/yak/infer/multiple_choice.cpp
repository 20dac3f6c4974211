#include "yak/infer/multiple_choice.h"

#include <algorithm>
#include <array>
#include <filesystem>
#include <map>
#include <regex>

#include "yak/base/error.h"
#include "yak/base/json.h"
#include "yak/infer/sampler.h"
#include "yak/io/csv.h"
#include "yak/model/kv_cache.h"

namespace yak::infer {

namespace fs = std::filesystem;

namespace {

constexpr std::array<const char*, 4> kLetters = {"A", "B", "C", "D"};

// CMMLU's subjects: the Chinese name its prompt uses and its subcategories (haonan-li/CMMLU,
// src/categories.py), and which subcategories make each category.
struct CmmluSubject {
  const char* name;
  const char* zh;
  std::vector<const char*> sub;
};
const std::vector<CmmluSubject>& cmmlu_subjects() {
  static const std::vector<CmmluSubject> s = {
      {"agronomy", "农学", {"other"}},
      {"anatomy", "解剖学", {"biology"}},
      {"ancient_chinese", "古汉语", {"linguistics", "china specific"}},
      {"arts", "艺术学", {"arts"}},
      {"astronomy", "天文学", {"physics"}},
      {"business_ethics", "商业伦理", {"business"}},
      {"chinese_civil_service_exam", "中国公务员考试", {"politics", "china specific"}},
      {"chinese_driving_rule", "中国驾驶规则", {"other", "china specific"}},
      {"chinese_food_culture", "中国饮食文化", {"culture", "china specific"}},
      {"chinese_foreign_policy", "中国外交政策", {"politics", "china specific"}},
      {"chinese_history", "中国历史", {"history", "china specific"}},
      {"chinese_literature", "中国文学", {"literature", "china specific"}},
      {"chinese_teacher_qualification", "中国教师资格", {"education", "china specific"}},
      {"clinical_knowledge", "临床知识", {"other"}},
      {"college_actuarial_science", "大学精算学", {"math"}},
      {"college_education", "大学教育学", {"education"}},
      {"college_engineering_hydrology", "大学工程水文学", {"engineering"}},
      {"college_law", "大学法律", {"law"}},
      {"college_mathematics", "大学数学", {"math"}},
      {"college_medical_statistics", "大学医学统计", {"statistics"}},
      {"college_medicine", "大学医学", {"other"}},
      {"computer_science", "计算机科学", {"computer science"}},
      {"computer_security", "计算机安全", {"other"}},
      {"conceptual_physics", "概念物理学", {"physics"}},
      {"construction_project_management", "建设工程管理", {"other", "china specific"}},
      {"economics", "经济学", {"economics"}},
      {"education", "教育学", {"education"}},
      {"electrical_engineering", "电气工程", {"engineering"}},
      {"elementary_chinese", "小学语文", {"linguistics", "china specific"}},
      {"elementary_commonsense", "小学常识", {"other", "china specific"}},
      {"elementary_information_and_technology", "小学信息技术", {"other"}},
      {"elementary_mathematics", "初等数学", {"math"}},
      {"ethnology", "民族学", {"culture", "china specific"}},
      {"food_science", "食品科学", {"other"}},
      {"genetics", "遗传学", {"biology"}},
      {"global_facts", "全球事实", {"global"}},
      {"high_school_biology", "高中生物", {"biology"}},
      {"high_school_chemistry", "高中化学", {"chemistry"}},
      {"high_school_geography", "高中地理", {"geography"}},
      {"high_school_mathematics", "高中数学", {"math"}},
      {"high_school_physics", "高中物理学", {"physics"}},
      {"high_school_politics", "高中政治", {"politics", "china specific"}},
      {"human_sexuality", "人类性行为", {"other"}},
      {"international_law", "国际法学", {"law"}},
      {"journalism", "新闻学", {"sociology"}},
      {"jurisprudence", "法理学", {"law"}},
      {"legal_and_moral_basis", "法律与道德基础", {"other"}},
      {"logical", "逻辑学", {"philosophy"}},
      {"machine_learning", "机器学习", {"computer science"}},
      {"management", "管理学", {"business"}},
      {"marketing", "市场营销", {"business"}},
      {"marxist_theory", "马克思主义理论", {"philosophy"}},
      {"modern_chinese", "现代汉语", {"linguistics", "china specific"}},
      {"nutrition", "营养学", {"other"}},
      {"philosophy", "哲学", {"philosophy"}},
      {"professional_accounting", "专业会计", {"business"}},
      {"professional_law", "专业法学", {"law"}},
      {"professional_medicine", "专业医学", {"other"}},
      {"professional_psychology", "专业心理学", {"psychology"}},
      {"public_relations", "公共关系", {"politics"}},
      {"security_study", "安全研究", {"politics"}},
      {"sociology", "社会学", {"culture"}},
      {"sports_science", "体育学", {"other"}},
      {"traditional_chinese_medicine", "中医中药", {"other", "china specific"}},
      {"virology", "病毒学", {"biology"}},
      {"world_history", "世界历史", {"history"}},
      {"world_religions", "世界宗教", {"global"}},
  };
  return s;
}

std::vector<std::string> cmmlu_categories(const std::vector<const char*>& sub) {
  static const std::vector<std::pair<const char*, std::vector<std::string>>> cats = {
      {"STEM", {"physics", "chemistry", "biology", "computer science", "math", "engineering", "statistics"}},
      {"Humanities", {"history", "philosophy", "law", "arts", "literature", "global"}},
      {"Social Science",
       {"linguistics", "business", "politics", "culture", "economics", "geography", "psychology", "education",
        "sociology"}},
      {"Other", {"other"}},
      {"China specific", {"china specific"}},
  };
  std::vector<std::string> out;
  for (const auto& [cat, members] : cats)
    for (const char* s : sub)
      if (std::find(members.begin(), members.end(), s) != members.end()) {
        out.emplace_back(cat);
        break;
      }
  return out;
}

// Question rows of one CSV: `first` is the column of the question (after an index column);
// answers may be absent (C-Eval's test split).
std::vector<McQuestion> read_questions(const fs::path& file, bool header, size_t first) {
  const auto rows = io::read_csv_file(file.string());
  std::vector<McQuestion> out;
  for (size_t r = header ? 1 : 0; r < rows.size(); ++r) {
    const auto& row = rows[r];
    const std::string where = file.string() + ": row " + std::to_string(r + 1);
    if (row.size() < first + 5) throw Error(where + ": expected a question and four choices, got " + std::to_string(row.size()) + " fields");
    McQuestion q;
    q.question = row[first];
    for (size_t j = 0; j < 4; ++j) q.choices.push_back(row[first + 1 + j]);
    if (row.size() > first + 5) q.answer = row[first + 5];
    if (!q.answer.empty() && (q.answer.size() != 1 || q.answer[0] < 'A' || q.answer[0] > 'D'))
      throw Error(where + ": answer '" + q.answer + "' is not one of A, B, C, D");
    out.push_back(std::move(q));
  }
  return out;
}

std::vector<std::string> stems(const fs::path& dir, const std::string& suffix) {
  if (!fs::is_directory(dir)) throw Error(dir.string() + ": no such folder");
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    const std::string tail = suffix + ".csv";
    if (n.size() > tail.size() && n.compare(n.size() - tail.size(), tail.size(), tail) == 0)
      out.push_back(n.substr(0, n.size() - tail.size()));
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string example(McTask t, const McQuestion& q, bool with_answer) {
  std::string s = t == McTask::Cmmlu ? "题目：" + q.question : q.question;
  for (size_t j = 0; j < 4; ++j) s += std::string("\n") + kLetters[j] + ". " + q.choices[j];
  if (t == McTask::Cmmlu) s += "\n答案是：";
  else if (t == McTask::Ceval) s += "\n答案：";
  else s += "\nAnswer:";
  if (with_answer) s += (t == McTask::Mmlu ? " " : "") + q.answer + "\n\n";
  return s;
}

std::string header(McTask t, const McSubject& s) {
  if (t == McTask::Cmmlu) return "以下是关于" + s.display + "的单项选择题，请直接给出正确答案的选项。\n\n";
  if (t == McTask::Ceval) return "以下是中国关于" + s.display + "考试的单项选择题，请选出其中的正确答案。\n\n";
  return "The following are multiple choice questions (with answers) about " + s.display + ".\n\n";
}

// The token a model writes for letter L right after the prompt: the vocabulary's piece "L" when
// it has one (CMMLU's convert_tokens_to_ids), else the last token of encoding "L".
int32_t letter_token(const tok::Tokenizer& t, const char* l) {
  if (auto id = t.token_to_id(l)) return *id;
  const auto ids = t.encode(l, false);
  if (ids.empty()) throw Error(std::string("the tokenizer has no token for '") + l + "'");
  return ids.back();
}

}  // namespace

McTask parse_mc_task(const std::string& n) {
  if (n == "cmmlu") return McTask::Cmmlu;
  if (n == "ceval") return McTask::Ceval;
  if (n == "mmlu") return McTask::Mmlu;
  throw Error("--task " + n + ": expected cmmlu, ceval or mmlu");
}

const char* mc_task_name(McTask t) { return t == McTask::Cmmlu ? "cmmlu" : t == McTask::Ceval ? "ceval" : "mmlu"; }

std::vector<McSubject> load_mc_subjects(McTask task, const std::string& dir_s, const std::string& split_in,
                                        const std::vector<std::string>& only) {
  const fs::path dir(dir_s);
  const std::string split = !split_in.empty() ? split_in : task == McTask::Ceval ? "val" : "test";
  const std::string eval_suffix = task == McTask::Mmlu ? "_" + split : task == McTask::Ceval ? "_" + split : "";
  const std::string dev_suffix = task == McTask::Cmmlu ? "" : "_dev";
  Json mapping;  // C-Eval's subject_mapping.json: {"name": [english, chinese, category]}
  if (task == McTask::Ceval && fs::exists(dir / "subject_mapping.json")) mapping = read_json_file(dir / "subject_mapping.json");
  std::vector<McSubject> out;
  for (const auto& name : stems(dir / split, eval_suffix)) {
    if (!only.empty() && std::find(only.begin(), only.end(), name) == only.end()) continue;
    McSubject s;
    s.name = name;
    s.display = name;
    if (task == McTask::Cmmlu) {
      for (const auto& c : cmmlu_subjects())
        if (name == c.name) {
          s.display = c.zh;
          s.categories = cmmlu_categories(c.sub);
        }
      if (s.categories.empty()) s.categories = {"Other"};
    } else if (task == McTask::Ceval) {
      if (mapping.contains(name) && mapping[name].is_array() && mapping[name].size() >= 3) {
        s.display = mapping[name][1].get<std::string>();
        s.categories = {mapping[name][2].get<std::string>()};
      } else {
        s.categories = {"Other"};
      }
    } else {
      std::string words;
      for (char c : name) words += c == '_' ? ' ' : c;
      s.display = words;
      s.categories = {"All"};
    }
    const bool hdr = task != McTask::Mmlu;
    const size_t first = task == McTask::Mmlu ? 0 : 1;  // CMMLU and C-Eval lead with an index/id column
    const fs::path dev = dir / "dev" / (name + dev_suffix + ".csv");
    if (fs::exists(dev)) s.dev = read_questions(dev, hdr, first);
    s.eval = read_questions(dir / split / (name + eval_suffix + ".csv"), hdr, first);
    out.push_back(std::move(s));
  }
  if (out.empty())
    throw Error(dir_s + ": no " + std::string(mc_task_name(task)) + " subjects under " + (dir / split).string() +
                (only.empty() ? "" : " matching --subjects"));
  return out;
}

std::string mc_prompt(McTask task, const McSubject& s, const McQuestion& q, int shots, const tok::Tokenizer* tok,
                      int64_t max_tokens) {
  const std::string head = header(task, s), end = example(task, q, false);
  std::vector<std::string> ex;
  for (int i = 0; i < shots && i < static_cast<int>(s.dev.size()); ++i) ex.push_back(example(task, s.dev[static_cast<size_t>(i)], true));
  if (tok && max_tokens > 0) {
    auto len = [&](const std::string& t) { return static_cast<int64_t>(tok->encode(t, false).size()); };
    const int64_t fixed = len(head) + len(end);
    if (fixed > max_tokens) return end;  // CMMLU: even the header does not fit
    std::vector<int64_t> lens;
    for (const auto& e : ex) lens.push_back(len(e));
    auto total = [&] {
      int64_t t = 0;
      for (auto l : lens) t += l;
      return t;
    };
    while (!ex.empty() && total() >= max_tokens - fixed) {
      // Drop every example of the longest length, as CMMLU's gen_prompt does.
      const int64_t longest = *std::max_element(lens.begin(), lens.end());
      for (size_t i = ex.size(); i-- > 0;)
        if (lens[i] == longest) ex.erase(ex.begin() + static_cast<long>(i)), lens.erase(lens.begin() + static_cast<long>(i));
    }
  }
  std::string p = head;
  for (const auto& e : ex) p += e;
  return p + end;
}

std::string extract_choice(const std::string& r) {
  if (r.empty()) return "";
  if (r[0] >= 'A' && r[0] <= 'D') return std::string(1, r[0]);
  static const std::vector<std::pair<std::regex, int>> single = [] {
    std::vector<std::pair<std::regex, int>> v;
    for (auto [p, g] : std::vector<std::pair<const char*, int>>{
             // CMMLU's patterns, with each optional CJK character grouped: std::regex matches bytes.
             {"答案(选项)?(是|为)(?:：)? ?([ABCD])", 3}, {"答案(是|为)选项 ?([ABCD])", 2},
             {"(?:故)?选(?:择)?(?:：)? ?([ABCD])", 1}, {"([ABCD]) ?(?:选)?项(是|为)?正确", 1},
             {"正确(?:的)?选项(是|为) ?([ABCD])", 2}, {"答案(应该)?(是|为)([ABCD])", 3},
             {"选项 ?([ABCD]) ?(是|为)?正确", 1}, {"选择答案 ?([ABCD])", 1}, {"答(?:案)?(?:：)?([ABCD])", 1},
             {"([ABCD])((?:选)?项)?(?:是)?符合题意", 1}, {"答案选项(?:：)? ?([ABCD])", 1}})
      v.emplace_back(std::regex(p), g);
    return v;
  }();
  std::smatch m;
  for (const auto& [re, g] : single)
    if (std::regex_search(r, m, re)) return m[g].str();
  // Only one letter mentioned in the whole answer.
  std::string found;
  for (char c : r)
    if (c >= 'A' && c <= 'D') {
      if (!found.empty() && found[0] != c) return "";
      found = std::string(1, c);
    }
  return found;
}

McResult run_mc(model::DecoderModel& model, const tok::Tokenizer& tok, McTask task, const std::vector<McSubject>& subjects,
                const McOptions& o, const std::function<void(int64_t, int64_t)>& progress) {
  McResult res;
  std::array<int32_t, 4> letter{};
  for (size_t j = 0; j < 4; ++j) letter[j] = letter_token(tok, kLetters[j]);
  int64_t total = 0, done = 0;
  for (const auto& s : subjects) total += static_cast<int64_t>(s.eval.size());
  const int64_t V = model.config().vocab_size;
  for (int32_t id : letter)
    if (id < 0 || id >= V) throw Error("the letter tokens fall outside the model's vocabulary");
  // One cache, reused across questions: prompts of a subject share their header and shots, so
  // only the tokens after the common prefix with the previous prompt are computed.
  const int64_t cap = std::max<int64_t>(o.max_tokens, 64) + o.max_new_tokens + 64;
  model::KVCache cache(model.config(), 1, cap);
  std::vector<int32_t> cached;
  auto feed = [&](const std::vector<int32_t>& ids) {
    size_t lcp = 0;
    while (lcp < cached.size() && lcp + 1 < ids.size() && cached[lcp] == ids[lcp]) ++lcp;
    model::Batch b;
    for (size_t p = lcp; p < ids.size(); ++p) {
      b.ids.push_back(ids[p]);
      b.pos.push_back(static_cast<int32_t>(p));
      b.slot.push_back(0);
    }
    b.logits_for.push_back(static_cast<int32_t>(b.ids.size() - 1));
    cached = ids;
    return model.forward(b, cache).to(cpu_device());
  };
  std::map<std::string, std::vector<double>> by_cat;
  for (const auto& s : subjects) {
    McSubjectResult sr;
    sr.name = s.name;
    for (const auto& q : s.eval) {
      std::vector<int32_t> ids = tok.encode(mc_prompt(task, s, q, o.shots, &tok, o.max_tokens), o.add_bos);
      if (static_cast<int64_t>(ids.size()) + o.max_new_tokens + 1 > cap)
        ids.erase(ids.begin(), ids.end() - (cap - o.max_new_tokens - 1));  // keep the question's end
      std::string pred;
      if (!o.generate) {
        Tensor lg = feed(ids);
        const float* row = lg.data<float>();
        size_t best = 0;
        for (size_t j = 1; j < 4; ++j)
          if (row[letter[j]] > row[letter[best]]) best = j;
        pred = kLetters[best];
      } else {
        std::vector<int32_t> out;
        Tensor lg = feed(ids);
        for (int k = 0; k < o.max_new_tokens; ++k) {
          const int32_t next = argmax(std::span<const float>(lg.data<float>(), static_cast<size_t>(V)));
          if (tok.is_special(next)) break;
          out.push_back(next);
          ids.push_back(next);
          lg = feed(ids);
        }
        pred = extract_choice(tok.decode(out, true));
        if (pred.empty()) ++sr.unanswered;
      }
      sr.correct += !q.answer.empty() && pred == q.answer;
      sr.total += !q.answer.empty();
      res.predictions.push_back(pred);
      ++res.questions;
      if (progress) progress(++done, total);
    }
    for (const auto& c : s.categories) by_cat[c].push_back(sr.accuracy());
    res.subjects.push_back(sr);
  }
  double sum = 0;
  for (const auto& sr : res.subjects) sum += sr.accuracy();
  res.average = res.subjects.empty() ? 0 : sum / static_cast<double>(res.subjects.size());
  for (const auto& [c, accs] : by_cat) {
    double a = 0;
    for (double x : accs) a += x;
    res.categories.emplace_back(c, a / static_cast<double>(accs.size()));
  }
  return res;
}

}  // namespace yak::infer
