// Where the rewards of online RL come from: rule functions over the response text (exact match,
// math answer), reward models (a score head on the last token), a remote reward model over HTTP
// (OpenRLHF's --remote_rm_url protocol) and a subprocess speaking the same JSON. Several sources
// add up. Every source returns one finite number per query or throws yak::Error naming itself.
#pragma once
#include <algorithm>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "yak/model/decoder.h"
#include "yak/tokenizer/tokenizer.h"

namespace yak::train {

struct RewardQuery {
  std::string prompt;    // the prompt text as the actor saw it (chat template applied)
  std::string response;  // the generated text (EOS excluded)
  std::string label;     // the prompt's --label_key value ("" when none)
};

class RewardSource {
 public:
  virtual ~RewardSource() = default;
  virtual std::string name() const = 0;
  // One reward per query, in order. NaN is allowed here (RewardSet counts and reports it).
  virtual std::vector<float> score(std::span<const RewardQuery> queries) = 0;
};

// Built-in rule rewards:
//   "exact_match": 1 when the trimmed response equals the trimmed label, else 0;
//   "math": 1 when the response's final answer (the last \boxed{...}, else the last number) equals
//           the label as a number, else 0;
//   "format:REGEX": 1 when the whole response matches the ECMAScript regex, else 0.
std::unique_ptr<RewardSource> make_rule_reward(const std::string& spec);
// The final answer the "math" rule reads from a response ("" when there is none).
std::string extract_final_answer(const std::string& response);

// A reward model folder (*ForSequenceClassification, or a yak-trained RM): scores prompt +
// response + EOS, tokenized with the RM's own tokenizer, at the last token. With normalize, uses
// the mean/std stored in its config.json ("normalize_reward") as (r - mean) / std.
std::unique_ptr<RewardSource> make_model_reward(const std::filesystem::path& dir, bool normalize);
// A reward model with its tokenizer, scoring raw texts: tokenized without special tokens, BOS
// prepended and EOS appended when missing (the last token is what the score head reads), the
// start cut when longer than the context. With normalize, (r - mean) / std from config.json.
class RewardModelScorer {
 public:
  RewardModelScorer(const std::filesystem::path& dir, bool normalize);
  ~RewardModelScorer();
  std::vector<float> score_texts(std::span<const std::string> texts);
  // OpenRLHF serve_rm's --max_len (longest query in tokens, the end kept; 0: the model's
  // context) and --batch_size (queries scored per forward).
  void set_limits(int64_t max_len, size_t batch_size) {
    max_len_ = max_len;
    batch_ = std::max<size_t>(1, batch_size);
  }

 private:
  int64_t max_len_ = 0;
  size_t batch_ = 16;
  std::filesystem::path dir_;
  std::unique_ptr<model::DecoderModel> model_;
  std::unique_ptr<tok::Tokenizer> tok_;
  double mean_ = 0, std_ = 1;
};

// `yak serve-rm`'s POST /get_reward: {"query": [text...]} -> {"rewards": [...], "scores": [...]}
// (OpenRLHF's serve_rm.py protocol). Throws yak::Error for a malformed request.
std::string answer_reward_request(RewardModelScorer& scorer, const std::string& body);

// POST {"query": [prompt + response...], "prompts": [...], "labels": [...]} to url, expecting
// {"rewards": [...]}; retried `retries` times on connection errors.
std::unique_ptr<RewardSource> make_remote_reward(const std::string& url, double timeout_seconds, int retries = 3);
// Runs `sh -c command` per batch with the same JSON on stdin, reading the JSON answer on stdout.
std::unique_ptr<RewardSource> make_command_reward(const std::string& command, double timeout_seconds);

// The sum of several sources, with counts checked: a source that returns the wrong number of
// rewards throws; non-finite rewards are reported (their indices) for the caller to skip.
class RewardSet {
 public:
  void add(std::unique_ptr<RewardSource> s) { sources_.push_back(std::move(s)); }
  bool empty() const { return sources_.empty(); }
  std::string describe() const;
  // Rewards per query; bad[i] is true where any source gave a non-finite value.
  std::vector<float> score(std::span<const RewardQuery> queries, std::vector<bool>* bad);

 private:
  std::vector<std::unique_ptr<RewardSource>> sources_;
};

}  // namespace yak::train
