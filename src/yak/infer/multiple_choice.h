// Multiple-choice benchmarks as their authors score them: CMMLU (haonan-li/CMMLU), C-Eval
// (hkust-nlp/ceval) and MMLU (hendrycks/test). Each subject's questions (A-D) are asked with the
// benchmark's own prompt — its header, `shots` solved examples from the dev split, then the
// question — and answered either by comparing the next-token logits of the tokens "A".."D"
// (the authors' default) or, with `generate`, by greedy decoding and reading the choice the
// model writes (CMMLU's extraction rules). Accuracy is reported per subject, per category (a
// category averages its subjects) and overall (the mean over subjects).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "yak/model/decoder.h"
#include "yak/tokenizer/tokenizer.h"

namespace yak::infer {

enum class McTask { Cmmlu, Ceval, Mmlu };
McTask parse_mc_task(const std::string& name);  // cmmlu, ceval, mmlu; yak::Error otherwise
const char* mc_task_name(McTask t);

struct McQuestion {
  std::string question;
  std::vector<std::string> choices;  // A, B, C, D
  std::string answer;                // "A".."D" (empty in C-Eval's test split)
};

struct McSubject {
  std::string name;                // file stem, e.g. "agronomy"
  std::string display;             // the name the prompt uses (CMMLU: 农学)
  std::vector<std::string> categories;
  std::vector<McQuestion> dev, eval;
};

// The subjects under `dir` (cmmlu: dev/ and test/; ceval: dev/ and val/ (or split); mmlu: dev/
// and test/ with _dev / _test suffixes, no header), optionally only `only`. Throws yak::Error
// naming the file for malformed CSVs.
std::vector<McSubject> load_mc_subjects(McTask task, const std::string& dir, const std::string& split,
                                        const std::vector<std::string>& only);

// The benchmark's prompt for eval question q: header, the first `shots` dev examples with their
// answers, the question without its answer. With a tokenizer and max_tokens > 0, shots are
// dropped (the longest first, as CMMLU's gen_prompt) until the prompt fits.
std::string mc_prompt(McTask task, const McSubject& s, const McQuestion& q, int shots,
                      const tok::Tokenizer* tok = nullptr, int64_t max_tokens = 0);

// Which letter a generated answer names (CMMLU's extract_choice rules without its random guess):
// empty when none can be read.
std::string extract_choice(const std::string& response);

struct McOptions {
  int shots = 5;
  int64_t max_tokens = 2048;  // prompt length bound (shots are dropped to fit)
  bool generate = false;      // read the answer from greedy decoding instead of the logits
  int max_new_tokens = 16;
  bool add_bos = true;        // the tokenizer's special prefix, as the authors' scripts tokenize
};

struct McSubjectResult {
  std::string name;
  int64_t correct = 0, total = 0, unanswered = 0;  // unanswered: generate mode, no letter read
  double accuracy() const { return total ? static_cast<double>(correct) / static_cast<double>(total) : 0.0; }
};

struct McResult {
  std::vector<McSubjectResult> subjects;
  std::vector<std::pair<std::string, double>> categories;  // mean subject accuracy per category
  double average = 0;                                       // mean subject accuracy
  int64_t questions = 0;
  std::vector<std::string> predictions;                     // per question, in order
};

McResult run_mc(model::DecoderModel& model, const tok::Tokenizer& tok, McTask task, const std::vector<McSubject>& subjects,
                const McOptions& o, const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace yak::infer
