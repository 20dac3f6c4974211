#include "yak/train/reward.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <regex>
#include <thread>

#include "yak/base/error.h"
#include "yak/base/http.h"
#include "yak/base/json.h"
#include "yak/base/subprocess.h"
#include "yak/io/hf_config.h"
#include "yak/train/dataset.h"
#include "yak/train/rm_trainer.h"

namespace yak::train {
namespace fs = std::filesystem;

namespace {

std::string trim(const std::string& s) {
  const char* ws = " \t\r\n";
  const size_t a = s.find_first_not_of(ws);
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(ws) - a + 1);
}

// "1,234.50" -> 1234.5; nullopt when the text is not a number.
std::optional<double> as_number(std::string s) {
  s = trim(s);
  std::string clean;
  for (char c : s)
    if (c != ',') clean += c;
  if (clean.empty()) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(clean.c_str(), &end);
  if (end != clean.c_str() + clean.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

class RuleReward : public RewardSource {
 public:
  explicit RuleReward(std::string spec) : spec_(std::move(spec)) {
    if (spec_.rfind("format:", 0) == 0) {
      try {
        re_ = std::regex(spec_.substr(7), std::regex::ECMAScript);
      } catch (const std::regex_error& e) {
        throw Error("--reward_fn " + spec_ + ": not a valid regular expression (" + e.what() + ")");
      }
    } else {
      check(spec_ == "exact_match" || spec_ == "math",
            "--reward_fn '" + spec_ + "': expected exact_match, math or format:REGEX");
    }
  }
  std::string name() const override { return "rule:" + spec_; }
  std::vector<float> score(std::span<const RewardQuery> q) override {
    std::vector<float> out;
    for (const auto& x : q) {
      if (spec_ == "exact_match") {
        out.push_back(trim(x.response) == trim(x.label) ? 1.0f : 0.0f);
      } else if (spec_ == "math") {
        auto got = as_number(extract_final_answer(x.response)), want = as_number(x.label);
        check(want.has_value(), "reward 'math': the label '" + x.label + "' is not a number");
        out.push_back(got && std::fabs(*got - *want) <= 1e-6 * std::max(1.0, std::fabs(*want)) ? 1.0f : 0.0f);
      } else {
        out.push_back(std::regex_match(x.response, re_) ? 1.0f : 0.0f);
      }
    }
    return out;
  }

 private:
  std::string spec_;
  std::regex re_;
};

class ModelReward : public RewardSource {
 public:
  ModelReward(const fs::path& dir, bool normalize) : dir_(dir), scorer_(dir, normalize) {}
  std::string name() const override { return "rm:" + dir_.string(); }
  std::vector<float> score(std::span<const RewardQuery> q) override {
    std::vector<std::string> texts;
    for (const auto& x : q) texts.push_back(x.prompt + x.response);
    return scorer_.score_texts(texts);
  }

 private:
  fs::path dir_;
  RewardModelScorer scorer_;
};

std::string request_json(std::span<const RewardQuery> q) {
  Json query = Json::array(), prompts = Json::array(), labels = Json::array();
  for (const auto& x : q) {
    query.push_back(x.prompt + x.response);
    prompts.push_back(x.prompt);
    labels.push_back(x.label);
  }
  return Json{{"query", query}, {"prompts", prompts}, {"labels", labels}}.dump();
}

std::vector<float> parse_rewards(const std::string& body, size_t expected, const std::string& who) {
  Json j;
  try {
    j = Json::parse(body);
  } catch (const std::exception&) {
    throw Error(who + ": the answer is not JSON: " + body.substr(0, 200));
  }
  check(j.is_object() && j.contains("rewards") && j["rewards"].is_array(),
        who + ": expected a JSON object with a \"rewards\" array, got: " + body.substr(0, 200));
  const Json& r = j["rewards"];
  check(r.size() == expected,
        who + ": returned " + std::to_string(r.size()) + " rewards for " + std::to_string(expected) + " queries");
  std::vector<float> out;
  for (const auto& v : r) {
    if (v.is_null()) {
      out.push_back(NAN);
      continue;
    }
    check(v.is_number(), who + ": rewards must be numbers, got " + v.dump());
    out.push_back(v.get<float>());
  }
  return out;
}

class RemoteReward : public RewardSource {
 public:
  RemoteReward(std::string url, double timeout, int retries)
      : url_(std::move(url)), timeout_(timeout), retries_(retries) {
    http::parse_url(url_);  // refuse a malformed URL up front
  }
  std::string name() const override { return "remote:" + url_; }
  std::vector<float> score(std::span<const RewardQuery> q) override {
    const std::string body = request_json(q);
    for (int attempt = 0;; ++attempt) {
      try {
        auto res = http::post(url_, body, "application/json", timeout_);
        check(res.status / 100 == 2, "remote reward model " + url_ + " answered HTTP " + std::to_string(res.status) +
                                         ": " + res.body.substr(0, 200));
        return parse_rewards(res.body, q.size(), "remote reward model " + url_);
      } catch (const Error&) {
        if (attempt + 1 >= retries_) throw;
        std::this_thread::sleep_for(std::chrono::milliseconds(200 << attempt));
      }
    }
  }

 private:
  std::string url_;
  double timeout_;
  int retries_;
};

class CommandReward : public RewardSource {
 public:
  CommandReward(std::string cmd, double timeout) : cmd_(std::move(cmd)), timeout_(timeout) {}
  std::string name() const override { return "command:" + cmd_; }
  std::vector<float> score(std::span<const RewardQuery> q) override {
    const std::string who = "reward command '" + cmd_ + "'";
    const std::string got = run_command(cmd_, request_json(q), timeout_, who);
    return parse_rewards(got, q.size(), who);
  }

 private:
  std::string cmd_;
  double timeout_;
};

}  // namespace

RewardModelScorer::RewardModelScorer(const fs::path& dir, bool normalize) : dir_(dir) {
  if (normalize) {
    const Json cfg = read_json_file(dir / "config.json");
    check(cfg.contains("mean") && cfg.contains("std") && cfg["mean"].is_number() && cfg["std"].is_number(),
          "reward model " + dir.string() +
              "/config.json: --normalize_reward needs numbers \"mean\" and \"std\" (yak train rm writes them)");
    mean_ = cfg["mean"].get<double>();
    std_ = cfg["std"].get<double>();
    check(std_ > 0, "reward model " + dir.string() + "/config.json: \"std\" must be positive");
  }
  model_ = model::DecoderModel::load(dir);
  check(model_->has_score_head(),
        "reward model " + dir.string() + ": no score head (expected a *ForSequenceClassification checkpoint)");
  tok_ = tok::load_tokenizer(dir);
}

RewardModelScorer::~RewardModelScorer() = default;

std::vector<float> RewardModelScorer::score_texts(std::span<const std::string> texts) {
  std::vector<Sample> s(texts.size());
  int64_t ctx = model_->config().max_position_embeddings;
  if (max_len_ > 0) ctx = ctx > 0 ? std::min(ctx, max_len_) : max_len_;
  for (size_t i = 0; i < texts.size(); ++i) {
    auto& ids = s[i].ids;
    ids = tok_->encode(texts[i], false);
    if (tok_->bos_id() && (ids.empty() || ids[0] != *tok_->bos_id())) ids.insert(ids.begin(), *tok_->bos_id());
    if (tok_->eos_id() && (ids.empty() || ids.back() != *tok_->eos_id())) ids.push_back(*tok_->eos_id());
    check(!ids.empty(), "reward model " + dir_.string() + ": query " + std::to_string(i) + " has no tokens");
    if (ctx > 0 && static_cast<int64_t>(ids.size()) > ctx) ids.erase(ids.begin(), ids.end() - ctx);  // keep the end
    s[i].loss_mask.assign(ids.size(), 1);
  }
  std::vector<const Sample*> ptr;
  for (auto& x : s) ptr.push_back(&x);
  std::vector<float> r;
  for (size_t i = 0; i < ptr.size(); i += batch_) {  // bounded batches
    auto part = score_samples(*model_, std::span(ptr).subspan(i, std::min(batch_, ptr.size() - i)));
    r.insert(r.end(), part.begin(), part.end());
  }
  for (auto& v : r) v = static_cast<float>((v - mean_) / std_);
  return r;
}

std::string answer_reward_request(RewardModelScorer& scorer, const std::string& body) {
  Json j;
  try {
    j = Json::parse(body);
  } catch (const std::exception&) {
    throw Error("the request body is not JSON");
  }
  check(j.is_object() && j.contains("query") && j["query"].is_array(),
        "expected a JSON object with a \"query\" list of strings");
  std::vector<std::string> texts;
  for (const auto& q : j["query"]) {
    check(q.is_string(), "every entry of \"query\" must be a string");
    texts.push_back(q.get<std::string>());
  }
  auto r = scorer.score_texts(texts);
  Json out = Json::array();
  for (float v : r) out.push_back(v);
  return Json{{"rewards", out}, {"scores", out}}.dump();
}

std::string extract_final_answer(const std::string& response) {
  const size_t boxed = response.rfind("\\boxed{");
  if (boxed != std::string::npos) {
    int depth = 1;
    size_t i = boxed + 7;
    std::string inner;
    for (; i < response.size(); ++i) {
      if (response[i] == '{') ++depth;
      if (response[i] == '}' && --depth == 0) break;
      inner += response[i];
    }
    if (depth == 0) return trim(inner);
  }
  // The last number: an optional sign, digits with optional thousands commas and one decimal point.
  static const std::regex num(R"([-+]?\d[\d,]*(?:\.\d+)?)");
  std::string last;
  for (auto it = std::sregex_iterator(response.begin(), response.end(), num); it != std::sregex_iterator(); ++it)
    last = it->str();
  while (!last.empty() && last.back() == ',') last.pop_back();
  return last;
}

std::unique_ptr<RewardSource> make_rule_reward(const std::string& spec) {
  return std::make_unique<RuleReward>(spec);
}
std::unique_ptr<RewardSource> make_model_reward(const fs::path& dir, bool normalize) {
  return std::make_unique<ModelReward>(dir, normalize);
}
std::unique_ptr<RewardSource> make_remote_reward(const std::string& url, double timeout_seconds, int retries) {
  return std::make_unique<RemoteReward>(url, timeout_seconds, retries);
}
std::unique_ptr<RewardSource> make_command_reward(const std::string& command, double timeout_seconds) {
  return std::make_unique<CommandReward>(command, timeout_seconds);
}

std::string RewardSet::describe() const {
  std::string s;
  for (const auto& x : sources_) s += (s.empty() ? "" : " + ") + x->name();
  return s;
}

std::vector<float> RewardSet::score(std::span<const RewardQuery> queries, std::vector<bool>* bad) {
  check(!sources_.empty(), "no reward source: give --reward_pretrain, --reward_fn, --remote_rm_url or --reward_cmd");
  std::vector<float> total(queries.size(), 0.0f);
  if (bad) bad->assign(queries.size(), false);
  for (const auto& s : sources_) {
    auto r = s->score(queries);
    check(r.size() == queries.size(), s->name() + ": returned " + std::to_string(r.size()) + " rewards for " +
                                          std::to_string(queries.size()) + " queries");
    for (size_t i = 0; i < r.size(); ++i) {
      if (!std::isfinite(r[i]) && bad) (*bad)[i] = true;
      total[i] += r[i];
    }
  }
  return total;
}

}  // namespace yak::train
