// LongBench (THUDM/LongBench) as its scripts run it: JSONL records (`input`, `context`,
// `answers`, `all_classes`, `dataset`, `length`), the per-dataset prompt and answer length from
// LongBench's own config files (dataset2prompt.json / dataset2maxlen.json), prompts longer than
// `max_len` tokens cut out of the middle (the first and last max_len/2 tokens kept), greedy
// answers, and its scorers (metrics.py): QA F1 with its normalisation, ROUGE-L as the `rouge`
// package 1.0.1 computes it (summary level, sentences split at '.'), classification and
// retrieval accuracy, passage counting, and code edit similarity (fuzzywuzzy's ratio). The
// Chinese F1 and ROUGE segment into jieba's words as LongBench does when given a tok::Jieba
// (jieba's own dictionary, from the installed package); without one, into characters — then
// the Chinese scores are close to LongBench's, not equal.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "yak/model/decoder.h"
#include "yak/tokenizer/chat_template.h"
#include "yak/tokenizer/jieba.h"
#include "yak/tokenizer/tokenizer.h"

namespace yak::infer {

enum class LbMetric { QaF1, QaF1Zh, Rouge, RougeZh, Classification, Retrieval, RetrievalZh, Count, CodeSim };
// LongBench's dataset2metric; yak::Error for a dataset it does not name.
LbMetric longbench_metric(const std::string& dataset);
const char* longbench_metric_name(LbMetric m);

// One prediction against one answer, as metrics.py scores it (0..1).
// `zh`: jieba for the Chinese metrics (null: characters).
double longbench_score(LbMetric m, const std::string& prediction, const std::string& answer,
                       const std::vector<std::string>& all_classes = {}, const tok::Jieba* zh = nullptr);
// A dataset's score of one record: trec/triviaqa/samsum/lsht keep the first line of the
// prediction, then the best over the answers.
double longbench_record_score(const std::string& dataset, const std::string& prediction,
                              const std::vector<std::string>& answers, const std::vector<std::string>& all_classes,
                              const tok::Jieba* zh = nullptr);

// LongBench-E's length bucket of a record (its `length` field, words or characters as the data
// gives it): "0-4k" below 4000, "4-8k" below 8000, else "8k+" (eval.py's scorer_e).
const char* longbench_e_bucket(int64_t length);
inline constexpr const char* kLongBenchEBuckets[] = {"0-4k", "4-8k", "8k+"};

struct LbRecord {
  std::string dataset, where;
  nlohmann::ordered_json fields;  // the record as read (prompt templates name its keys)
  std::vector<std::string> answers, all_classes;
  int64_t length = 0;
  std::string prediction;  // read (scoring only) or generated
};
// Records of a LongBench JSONL file; `dataset` fills records without one. yak::Error names the
// line and field.
std::vector<LbRecord> read_longbench(const std::string& path, const std::string& dataset = "");

// str.format-style {key} substitution from the record's fields ({{ and }} are braces).
std::string longbench_prompt(const std::string& format, const LbRecord& r);
// The prompt's tokens cut to the first and last max_len/2 when longer, decoded back to text.
std::string truncate_middle(const std::string& prompt, const tok::Tokenizer& tok, int64_t max_len);

struct LbOptions {
  int64_t max_len = 3500;  // LongBench's default for 4k models
  std::function<std::string(const std::string& dataset)> prompt_format;  // dataset2prompt
  std::function<int(const std::string& dataset)> max_new_tokens;       // dataset2maxlen
  const tok::ChatTemplate* chat = nullptr;  // applied except on trec/triviaqa/samsum/lsht/lcc/repobench-p
};
// Greedy answers for every record (fills prediction).
void longbench_generate(model::DecoderModel& model, const tok::Tokenizer& tok, std::vector<LbRecord>& records,
                        const LbOptions& o, const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace yak::infer
