#include "yak/train/best_of_n.h"

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "yak/base/error.h"
#include "yak/base/log.h"
#include "yak/infer/engine.h"
#include "yak/io/safetensors.h"
#include "yak/io/staging_dir.h"
#include "yak/train/checkpoint.h"
#include "yak/train/data_parallel.h"

namespace yak::train {
namespace fs = std::filesystem;

std::vector<std::vector<ScoredAnswer>> sample_and_score(model::DecoderModel& policy, const tok::Tokenizer& tok,
                                                        std::span<const PromptItem> prompts, RewardSet& reward,
                                                        const SampleOptions& o) {
  check(o.n_samples_per_prompt >= 1, "--n_samples_per_prompt must be at least 1");
  check(o.generate_max_len >= 1, "--generate_max_len must be positive");
  check(o.micro_batch_size >= 1, "--micro_batch_size must be positive");
  const size_t n = static_cast<size_t>(o.n_samples_per_prompt);
  std::vector<infer::GenerateRequest> reqs;
  for (size_t p = 0; p < prompts.size(); ++p)
    for (size_t j = 0; j < n; ++j) {
      infer::GenerateRequest r;
      r.prompt = prompts[p].ids;
      r.max_new_tokens = o.generate_max_len;
      r.sampling.do_sample = o.temperature > 0;
      r.sampling.temperature = o.temperature;
      r.sampling.top_p = o.top_p;
      r.sampling.seed = o.seed + p * n + j;
      reqs.push_back(std::move(r));
    }
  infer::Engine engine(policy, &tok);
  const auto gen = engine.generate_in_chunks(reqs, o.micro_batch_size);
  std::vector<std::vector<ScoredAnswer>> out(prompts.size());
  // Scored in the same micro-batches (reward models batch their forwards).
  for (size_t i = 0; i < gen.size(); i += static_cast<size_t>(o.micro_batch_size)) {
    const size_t e = std::min(gen.size(), i + static_cast<size_t>(o.micro_batch_size));
    std::vector<RewardQuery> q;
    for (size_t k = i; k < e; ++k) q.push_back({prompts[k / n].text, gen[k].text, prompts[k / n].label});
    std::vector<bool> bad;
    auto r = reward.score(q, &bad);
    for (size_t k = i; k < e; ++k) {
      ScoredAnswer a;
      a.tokens = gen[k].tokens;
      if (gen[k].eos_token >= 0) a.tokens.push_back(gen[k].eos_token);
      a.text = gen[k].text;
      a.reward = r[k - i];
      a.valid = !bad[k - i];
      out[k / n].push_back(std::move(a));
    }
  }
  return out;
}

namespace {

// Index of the best (or worst) valid answer; -1 when none is valid.
int pick(const std::vector<ScoredAnswer>& a, bool best) {
  int at = -1;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].valid && (at < 0 || (best ? a[i].reward > a[at].reward : a[i].reward < a[at].reward)))
      at = static_cast<int>(i);
  return at;
}

Sample answer_sample(const PromptItem& p, const ScoredAnswer& a) {
  Sample s;
  s.ids = p.ids;
  s.loss_mask.assign(p.ids.size(), 0);
  for (int32_t t : a.tokens) s.ids.push_back(t), s.loss_mask.push_back(1);
  s.where = p.where;
  return s;
}

}  // namespace

std::vector<Json> rejection_sample(model::DecoderModel& policy, const tok::Tokenizer& tok,
                                   std::span<const PromptItem> prompts, RewardSet& reward, const SampleOptions& o) {
  auto scored = sample_and_score(policy, tok, prompts, reward, o);
  std::vector<Json> out;
  size_t dropped = 0;
  for (size_t p = 0; p < prompts.size(); ++p) {
    const int b = pick(scored[p], true);
    if (b < 0) {
      ++dropped;
      continue;
    }
    Json rec = {{"input", prompts[p].text}, {"output", scored[p][b].text}, {"reward", scored[p][b].reward}};
    if (!prompts[p].label.empty()) rec["label"] = prompts[p].label;
    out.push_back(std::move(rec));
  }
  if (dropped) log::warn(std::to_string(dropped) + " prompts had no answer with a finite reward; skipped");
  return out;
}

std::string reward_prompt(const std::string& reward_template, const std::string& input, double reward) {
  check(reward_template.find("{input}") != std::string::npos && reward_template.find("{reward}") != std::string::npos,
        "--reward_template must contain {input} and {reward}: " + reward_template);
  auto replace_all = [](std::string s, const std::string& from, const std::string& to) {
    for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
      s.replace(at, from.size(), to);
    return s;
  };
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", reward);
  // {reward} first, as OpenRLHF does, so an input containing "{reward}" is left alone.
  return replace_all(replace_all(reward_template, "{reward}", buf), "{input}", input);
}

std::vector<double> zscores(std::vector<double> r) {
  if (r.size() < 2) return r;
  double mean = 0, var = 0;
  for (double v : r) mean += v;
  mean /= static_cast<double>(r.size());
  for (double v : r) var += (v - mean) * (v - mean);
  const double sd = std::sqrt(var / static_cast<double>(r.size() - 1));
  check(sd > 0, "conditional SFT: every reward is the same; nothing to normalize");
  for (double& v : r) v = (v - mean) / sd;
  return r;
}

std::vector<Json> conditional_sft_data(const std::vector<std::vector<ScoredAnswer>>& scored,
                                       std::span<const PromptItem> prompts, const std::string& reward_template,
                                       bool normalize) {
  check(scored.size() == prompts.size(), "conditional SFT: one answer list per prompt expected");
  reward_prompt(reward_template, "", 0);  // the template is checked even when nothing is sampled
  std::vector<std::pair<size_t, const ScoredAnswer*>> all;
  for (size_t p = 0; p < scored.size(); ++p)
    for (const auto& a : scored[p])
      if (a.valid) all.emplace_back(p, &a);
  std::vector<double> r;
  for (auto& [p, a] : all) r.push_back(a->reward);
  if (normalize) r = zscores(std::move(r));
  std::vector<Json> out;
  for (size_t i = 0; i < all.size(); ++i)
    out.push_back({{"input", reward_prompt(reward_template, prompts[all[i].first].text, r[i])},
                   {"output", all[i].second->text},
                   {"reward", r[i]}});
  return out;
}

void condition_on_reward(std::vector<Record>& records, const std::string& input_key, const std::string& reward_key,
                         const std::string& reward_template, bool normalize) {
  std::vector<double> r;
  for (const auto& rec : records) r.push_back(json_get<double>(rec.value, reward_key, rec.where));
  if (normalize) r = zscores(std::move(r));
  for (size_t i = 0; i < records.size(); ++i) {
    const std::string in = json_get<std::string>(records[i].value, input_key, records[i].where);
    records[i].value[input_key] = reward_prompt(reward_template, in, r[i]);
  }
}

namespace {

// Round checkpoints: the policy's trained tensors (f32) after `rounds_done` rounds, in one folder
// replaced atomically. Each round starts a fresh optimizer, so a round boundary is exact.
void save_round(const fs::path& ckpt, const model::DecoderModel& m, int rounds_done) {
  io::StagingDir stage(ckpt / "last_round", io::StagingDir::Existing::Replace);
  std::vector<std::pair<std::string, Tensor>> t;
  for (auto& p : m.trainable_parameters())
    t.emplace_back(p.name, p.var.value().dtype() == DType::F32 ? p.var.value() : p.var.value().to_f32());
  io::write_safetensors(stage.path() / "policy.safetensors", t);
  io::write_file_atomic(stage.path() / "state.json", Json{{"rounds_done", rounds_done}}.dump());
  stage.commit();
}

int load_round(const fs::path& ckpt, model::DecoderModel& m, const LmTrainOptions& o) {
  const fs::path dir = ckpt / "last_round";
  if (!fs::exists(dir / "state.json")) return 0;
  prepare_training(m, o);  // f32 trainable tensors to copy into
  auto f = io::SafetensorsFile::open(dir / "policy.safetensors");
  for (auto& p : m.trainable_parameters()) {
    check(f->has(p.name), (dir / "policy.safetensors").string() + ": no tensor '" + p.name + "' (another model?)");
    Tensor t = f->get(p.name);
    check(t.dtype() == DType::F32 && t.numel() == p.var.numel(),
          (dir / "policy.safetensors").string() + ": tensor '" + p.name + "' does not fit the model");
    std::copy(t.data<float>(), t.data<float>() + t.numel(), p.var.f32());
  }
  const std::string where = (dir / "state.json").string();
  return json_get<int>(read_json_file(dir / "state.json"), "rounds_done", where);
}

}  // namespace

std::vector<IterativeDpoRound> iterative_dpo(model::DecoderModel& policy, const tok::Tokenizer& tok,
                                             std::span<const PromptItem> prompts, RewardSet& reward,
                                             const IterativeDpoOptions& o) {
  check(o.rounds >= 1, "--rounds must be at least 1");
  check(o.sampling.n_samples_per_prompt >= 2, "iterative DPO pairs answers: --n_samples_per_prompt must be >= 2");
  std::vector<IterativeDpoRound> stats;
  // The reference of each round is the policy at the round's start: a frozen copy written to a
  // staging folder next to save_path (or a temporary folder) and loaded back.
  const fs::path ref_dir = (o.train.save_path.empty() ? fs::temp_directory_path() / "yak-iterative-dpo"
                                                      : fs::path(o.train.save_path.string() + "-reference"));
  // Across ranks every rank samples and scores the prompts (the same seeds: the same pairs) and the
  // DPO rounds are data parallel; rank 0 alone writes the reference folder and the checkpoints.
  dist::Communicator& comm = communicator_or_world(o.train.comm);
  const bool root = comm.is_root();
  int first = 0;
  if (o.train.load_checkpoint && !o.train.ckpt_path.empty()) {
    first = load_round(o.train.ckpt_path, policy, o.train);
    if (first > 0) log::warn("resumed from " + o.train.ckpt_path.string() + " after round " + std::to_string(first));
  }
  for (int round = first; round < o.rounds; ++round) {
    SampleOptions so = o.sampling;
    so.seed = o.sampling.seed + static_cast<uint64_t>(round) * 1000003ULL;
    auto scored = sample_and_score(policy, tok, prompts, reward, so);
    IterativeDpoRound st;
    std::vector<PreferencePair> pairs;
    double sum = 0, best_sum = 0;
    size_t count = 0, best_count = 0;
    for (size_t p = 0; p < prompts.size(); ++p) {
      for (auto& a : scored[p])
        if (a.valid) sum += a.reward, ++count;
      const int b = pick(scored[p], true), w = pick(scored[p], false);
      if (b < 0) continue;
      best_sum += scored[p][b].reward, ++best_count;
      if (scored[p][b].reward <= scored[p][w].reward) continue;  // nothing to prefer
      if (scored[p][b].tokens.empty() || scored[p][w].tokens.empty()) continue;
      pairs.push_back({answer_sample(prompts[p], scored[p][b]), answer_sample(prompts[p], scored[p][w]), 0.0f});
    }
    st.pairs = pairs.size();
    st.mean_reward = count ? sum / static_cast<double>(count) : std::nan("");
    st.best_reward = best_count ? best_sum / static_cast<double>(best_count) : std::nan("");
    if (!o.train.quiet && root)
      std::fprintf(stderr, "round %d/%d: mean reward %.4f, best-of-%lld %.4f, %zu preference pairs\n", round + 1,
                   o.rounds, st.mean_reward, static_cast<long long>(so.n_samples_per_prompt), st.best_reward,
                   pairs.size());
    stats.push_back(st);
    if (static_cast<int64_t>(pairs.size()) < o.train.train_batch_size) {
      log::warn("round " + std::to_string(round + 1) + ": " + std::to_string(pairs.size()) +
                " pairs, fewer than one batch; no DPO this round");
      if (root && !o.train.ckpt_path.empty()) save_round(o.train.ckpt_path, policy, round + 1);
      continue;
    }
    if (root) save_hf_folder(policy, o.train.pretrain, ref_dir);
    comm.barrier();
    auto reference = model::DecoderModel::load(ref_dir);
    LmTrainOptions t = o.train;
    t.save_path.clear();  // the final policy is saved once, below
    t.plot_path.clear();
    t.label = "dpo round " + std::to_string(round + 1);
    t.seed = o.train.seed + static_cast<uint64_t>(round);
    t.load_checkpoint = false;  // rounds resume whole, from the round checkpoint
    t.save_steps = -1;
    train_dpo(policy, *reference, pairs, {}, t, o.dpo);
    if (root && !o.train.ckpt_path.empty()) save_round(o.train.ckpt_path, policy, round + 1);
  }
  comm.barrier();  // every rank has read the reference folder
  if (root) fs::remove_all(ref_dir);
  save_trained(policy, o.train);
  return stats;
}

}  // namespace yak::train
