#include "yak/train/ppo_trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "yak/autograd/functions.h"
#include "yak/base/error.h"
#include "yak/base/json.h"
#include "yak/base/log.h"
#include "yak/base/png.h"
#include "yak/base/progress.h"
#include "yak/infer/engine.h"
#include "yak/train/checkpoint.h"
#include "yak/train/data_parallel.h"
#include "yak/train/metrics.h"
#include "yak/train/optimizer.h"

namespace yak::train {

std::vector<PromptItem> build_prompts(std::span<const Record> records, const tok::Tokenizer& tok,
                                      const tok::ChatTemplate* tmpl, const PromptOptions& o, SkipStats* skipped) {
  SkipStats local;
  SkipStats& sk = skipped ? *skipped : local;
  std::vector<PromptItem> out;
  for (const auto& r : records) {
    PromptItem p;
    p.where = r.where;
    check(r.value.contains(o.input_key), r.where + ": no key '" + o.input_key + "' (--input_key)");
    const Json& in = r.value[o.input_key];
    if (o.apply_chat_template) {
      check(tmpl != nullptr, "--apply_chat_template: no chat template for this tokenizer");
      std::vector<tok::ChatMessage> msgs;
      if (in.is_string()) {
        msgs.push_back({"user", in.get<std::string>()});
      } else {
        check(in.is_array(), r.where + ": key '" + o.input_key + "' must be a string or a list of messages");
        for (const auto& m : in) {
          check(m.is_object() && m.contains("role") && m.contains("content") && m["role"].is_string() &&
                    m["content"].is_string(),
                r.where + ": every message of '" + o.input_key + "' needs string 'role' and 'content'");
          msgs.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
        }
      }
      tok::ChatOptions co;
      co.add_generation_prompt = true;
      p.text = tmpl->render(msgs, co);
      p.ids = tok.encode(p.text, tmpl->add_special_tokens());
    } else {
      check(in.is_string(), r.where + ": key '" + o.input_key + "' must be a string (or use --apply_chat_template)");
      const std::string s = in.get<std::string>();
      p.text = o.input_template && !o.input_template->empty() ? format_template(*o.input_template, s) : s;
      p.ids = tok.encode(p.text, true);
    }
    if (!o.label_key.empty()) {
      check(r.value.contains(o.label_key), r.where + ": no key '" + o.label_key + "' (--label_key)");
      const Json& l = r.value[o.label_key];
      p.label = l.is_string() ? l.get<std::string>() : l.dump();
    }
    if (p.ids.empty() || (in.is_string() && in.get<std::string>().empty())) {
      ++sk.reasons["empty prompt"];
      continue;
    }
    if (static_cast<int>(p.ids.size()) > o.prompt_max_len) {
      ++sk.reasons["prompt longer than --prompt_max_len"];
      continue;
    }
    out.push_back(std::move(p));
  }
  return out;
}

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// The tokens of `rows` as one ragged batch; logits are asked at every position that predicts an
// action token. grid[b * T + t] is the logits row of row b's action t (0 for padding).
struct ActionLayout {
  model::Batch batch;
  std::vector<int32_t> targets, grid;
  int64_t longest = 0;
};

ActionLayout lay_out_actions(std::span<const Rollout* const> rows, int64_t T) {
  ActionLayout a;
  a.grid.assign(rows.size() * static_cast<size_t>(T), 0);
  for (size_t b = 0; b < rows.size(); ++b) {
    const Rollout& r = *rows[b];
    const int64_t n = static_cast<int64_t>(r.ids.size());
    for (int64_t t = 0; t < n; ++t) {
      a.batch.ids.push_back(r.ids[t]);
      a.batch.pos.push_back(static_cast<int32_t>(t));
      a.batch.slot.push_back(static_cast<int32_t>(b));
      if (t >= r.prompt_len - 1 && t + 1 < n) {
        a.grid[b * T + (t - (r.prompt_len - 1))] = static_cast<int32_t>(a.targets.size());
        a.batch.logits_for.push_back(static_cast<int32_t>(a.batch.ids.size() - 1));
        a.targets.push_back(r.ids[t + 1]);
      }
    }
    a.longest = std::max(a.longest, n);
  }
  return a;
}

struct ActorOut {
  ag::Var logp, entropy;  // [B*T] in grid layout
};

ActorOut actor_forward(model::DecoderModel& m, std::span<const Rollout* const> rows, int64_t T,
                       std::unique_ptr<model::KVCache>& cache, bool entropy) {
  ActionLayout a = lay_out_actions(rows, T);
  cache = std::make_unique<model::KVCache>(m.config(), static_cast<int64_t>(rows.size()), a.longest);
  ag::Var logits = m.forward_var(a.batch, *cache);
  ActorOut out;
  out.logp = ag::gather_rows(ag::token_logprobs(logits, a.targets), a.grid);
  if (entropy) out.entropy = ag::gather_rows(ag::token_entropy(logits), a.grid);
  return out;
}

ag::Var critic_forward(model::DecoderModel& m, std::span<const Rollout* const> rows, int64_t T,
                       std::unique_ptr<model::KVCache>& cache) {
  ActionLayout a = lay_out_actions(rows, T);
  cache = std::make_unique<model::KVCache>(m.config(), static_cast<int64_t>(rows.size()), a.longest);
  return ag::gather_rows(m.forward_scores(a.batch, *cache), a.grid);  // [B*T, 1]: one value per grid entry
}

TokenGrid empty_grid(std::span<const Rollout* const> rows, int64_t T) {
  TokenGrid g;
  g.B = static_cast<int64_t>(rows.size());
  g.T = T;
  g.v.assign(static_cast<size_t>(g.B * T), 0.0f);
  g.mask.assign(g.v.size(), 0);
  for (int64_t b = 0; b < g.B; ++b)
    for (int64_t t = 0; t < rows[b]->actions(); ++t) g.mask[b * T + t] = 1;
  return g;
}

// Rows `idx` of a [N, T] grid.
TokenGrid rows_of(const TokenGrid& g, std::span<const size_t> idx) {
  TokenGrid s;
  s.B = static_cast<int64_t>(idx.size());
  s.T = g.T;
  for (size_t i : idx) {
    s.v.insert(s.v.end(), g.v.begin() + static_cast<long>(i * g.T), g.v.begin() + static_cast<long>((i + 1) * g.T));
    s.mask.insert(s.mask.end(), g.mask.begin() + static_cast<long>(i * g.T),
                  g.mask.begin() + static_cast<long>((i + 1) * g.T));
  }
  return s;
}

// Experience-side forwards (no tape) over all rollouts in micro-batches, written into a grid.
// Across ranks, micro-batch c runs on rank c % size and the grids are summed: every other rank
// holds zeros there, so each rank ends with exactly one process's values.
template <class F>
void fill_grid(dist::Communicator& comm, std::span<const Rollout* const> rows, int64_t T, int64_t micro, TokenGrid& g,
               F&& forward) {
  if (comm.size() > 1) std::fill(g.v.begin(), g.v.end(), 0.0f);
  for (size_t i = 0, c = 0; i < rows.size(); i += static_cast<size_t>(micro), ++c) {
    if (!runs_micro_batch(comm, static_cast<int64_t>(c))) continue;
    auto part = rows.subspan(i, std::min<size_t>(static_cast<size_t>(micro), rows.size() - i));
    std::unique_ptr<model::KVCache> cache;
    ag::Var v = forward(part, cache);
    std::copy(v.f32(), v.f32() + v.numel(), g.v.begin() + static_cast<long>(i * T));
  }
  comm.all_reduce_sum(g.v.data(), g.v.size());
}

std::vector<infer::GenerateRequest> requests_for(std::span<const PromptItem> prompts, std::span<const size_t> which,
                                                 int64_t n, const PpoOptions& o, uint64_t seed_base) {
  std::vector<infer::GenerateRequest> reqs;
  for (size_t k = 0; k < which.size(); ++k)
    for (int64_t j = 0; j < n; ++j) {
      infer::GenerateRequest r;
      r.prompt = prompts[which[k]].ids;
      r.max_new_tokens = o.generate_max_len;
      if (o.max_len > 0)  // OpenRLHF's --max_len: prompt + response
        r.max_new_tokens = std::min<int64_t>(o.generate_max_len,
                                             std::max<int64_t>(1, o.max_len - static_cast<int64_t>(r.prompt.size())));
      r.sampling.do_sample = o.temperature > 0;
      r.sampling.temperature = o.temperature;
      r.sampling.top_p = o.top_p;
      r.sampling.top_k = o.top_k;
      r.sampling.seed = seed_base + k * static_cast<size_t>(n) + static_cast<size_t>(j);
      reqs.push_back(std::move(r));
    }
  return reqs;
}

// Generates in chunks of `micro` sequences with the actor's current weights.
std::vector<infer::GenerateResult> generate(model::DecoderModel& actor, const tok::Tokenizer& tok,
                                            const std::vector<infer::GenerateRequest>& reqs, int64_t micro) {
  infer::Engine engine(actor, &tok);
  return engine.generate_in_chunks(reqs, micro);
}

// One sample's generation and reward, as every rank needs it after the rollouts.
struct Scored {
  infer::GenerateResult gen;
  float reward = 0;
  bool bad = false;
};

// Generates and scores the groups of `reqs` (n requests a group): group g on rank g % size, so
// each rank samples and scores its share; then every rank gets every group's results, in order.
// The requests carry their own seeds, so a sample does not depend on which rank drew it.
std::vector<Scored> rollouts_across_ranks(dist::Communicator& comm, model::DecoderModel& actor,
                                          const tok::Tokenizer& tok, const std::vector<infer::GenerateRequest>& reqs,
                                          int64_t n, int64_t micro, RewardSet& reward,
                                          const std::function<RewardQuery(size_t)>& query, double* generate_s,
                                          double* reward_s) {
  const size_t groups = reqs.size() / static_cast<size_t>(n), N = static_cast<size_t>(n);
  std::vector<size_t> mine;  // sample indices this rank runs
  for (size_t g = 0; g < groups; ++g)
    if (runs_micro_batch(comm, static_cast<int64_t>(g)))
      for (size_t j = 0; j < N; ++j) mine.push_back(g * N + j);
  auto t0 = Clock::now();
  std::vector<infer::GenerateRequest> my_reqs;
  for (size_t i : mine) my_reqs.push_back(reqs[i]);
  auto gen = my_reqs.empty() ? std::vector<infer::GenerateResult>{} : generate(actor, tok, my_reqs, micro);
  *generate_s += since(t0);
  t0 = Clock::now();
  std::vector<RewardQuery> q;
  for (size_t k = 0; k < mine.size(); ++k) {
    RewardQuery one = query(mine[k]);
    one.response = gen[k].text;
    q.push_back(std::move(one));
  }
  std::vector<bool> bad;
  auto rw = q.empty() ? std::vector<float>{} : reward.score(q, &bad);
  *reward_s += since(t0);
  std::vector<Scored> out(reqs.size());
  if (comm.size() == 1) {
    for (size_t k = 0; k < mine.size(); ++k) out[mine[k]] = {std::move(gen[k]), rw[k], bad[k]};
    return out;
  }
  Json j = Json::array();
  for (size_t k = 0; k < mine.size(); ++k)
    j.push_back({mine[k], gen[k].tokens, gen[k].text, static_cast<int>(gen[k].finish_reason), gen[k].eos_token,
                 rw[k], static_cast<bool>(bad[k])});
  for (const std::string& part : comm.all_gather_bytes(j.dump())) {
    for (const Json& e : Json::parse(part)) {
      Scored& sc = out[e[0].get<size_t>()];
      sc.gen.tokens = e[1].get<std::vector<int32_t>>();
      sc.gen.text = e[2].get<std::string>();
      sc.gen.finish_reason = static_cast<infer::FinishReason>(e[3].get<int>());
      sc.gen.eos_token = e[4].get<int32_t>();
      sc.reward = e[5].get<float>();
      sc.bad = e[6].get<bool>();
    }
  }
  return out;
}

double masked_mean_of(const TokenGrid& g) {
  double s = 0, n = 0;
  for (size_t i = 0; i < g.v.size(); ++i)
    if (g.mask[i]) s += g.v[i], n += 1;
  return n ? s / n : 0.0;
}

}  // namespace

double greedy_reward(model::DecoderModel& actor, const tok::Tokenizer& tok, std::span<const PromptItem> prompts,
                     RewardSet& reward, int max_new_tokens) {
  if (prompts.empty()) return std::nan("");
  std::vector<infer::GenerateRequest> reqs;
  for (const auto& p : prompts) {
    infer::GenerateRequest r;
    r.prompt = p.ids;
    r.max_new_tokens = max_new_tokens;
    r.sampling.temperature = 0;
    reqs.push_back(std::move(r));
  }
  auto res = generate(actor, tok, reqs, 64);
  std::vector<RewardQuery> q;
  for (size_t i = 0; i < prompts.size(); ++i) q.push_back({prompts[i].text, res[i].text, prompts[i].label});
  std::vector<bool> bad;
  auto r = reward.score(q, &bad);
  double s = 0;
  for (size_t i = 0; i < r.size(); ++i) s += bad[i] ? 0.0 : r[i];
  return s / static_cast<double>(r.size());
}

PpoLearner::PpoLearner(model::DecoderModel& actor, model::DecoderModel* reference, model::DecoderModel* critic,
                       const PpoOptions& o, int64_t total_rollout_steps)
    : actor_(actor), reference_(reference), critic_(critic), o_(o), kl_coef_(o.init_kl_coef) {
  const std::string& est = o.advantage_estimator;
  gae_ = est == "gae";
  group_ = est == "rloo" || est == "reinforce_baseline" || est == "group_norm" || est == "dr_grpo";
  check(
      gae_ || group_ || est == "reinforce",
      "--advantage_estimator '" + est + "': expected gae, reinforce, reinforce_baseline, rloo, group_norm or dr_grpo");
  check(!gae_ || critic != nullptr, "--advantage_estimator gae needs a critic");
  check(o.n_samples_per_prompt >= 1, "--n_samples_per_prompt must be at least 1");
  check(!group_ || o.n_samples_per_prompt > 1,
        "--advantage_estimator " + est + " compares samples of one prompt: --n_samples_per_prompt must be > 1");
  check(o.actor.micro_train_batch_size >= 1 && o.actor.train_batch_size % o.actor.micro_train_batch_size == 0,
        "--train_batch_size must be a multiple of --micro_train_batch_size");
  use_ref_ = reference != nullptr && (o.init_kl_coef > 0 || o.use_kl_loss);
  const int64_t samples_per_step = o.rollout_batch_size * o.n_samples_per_prompt;
  opt_steps_per_rollout_ = std::max<int64_t>(1, samples_per_step / o.actor.train_batch_size) * o.actor.max_epochs;
  total_opt_ = std::max<int64_t>(1, opt_steps_per_rollout_ * total_rollout_steps);
  actor_opt_.emplace(prepare_training(actor, o.actor));
  sched_.emplace(o.actor.lr_scheduler,
                 static_cast<int64_t>(std::ceil(o.actor.lr_warmup_ratio * static_cast<double>(total_opt_))), total_opt_,
                 o.actor.min_lr_ratio);
  if (gae_) {
    if (!critic->has_score_head()) critic->add_score_head(1, o.actor.seed + 7);
    critic->set_gradient_checkpointing(o.actor.gradient_checkpointing);
    if (critic->has_lora())
      critic->make_lora_trainable();
    else
      critic->make_trainable();
    critic_opt_.emplace(critic->trainable_parameters(), AdamWConfig{o.critic_learning_rate, o.actor.adam_beta1,
                                                                    o.actor.adam_beta2, 1e-8, o.actor.weight_decay});
    critic_opt_->set_communicator(&communicator_or_world(o.actor.comm), o.actor.zero_stage);
  }
  train_rng_.emplace(o.actor.seed ^ 0x9e3779b97f4a7c15ULL);
}

PpoLearner::~PpoLearner() = default;

void PpoLearner::save(const std::filesystem::path& ckpt, int64_t step, const Json& extra, int max_keep) const {
  Json learner = {{"kl_coef", kl_coef_}, {"done_opt_steps", done_opt_steps_}, {"train_rng", train_rng_->state()}};
  // The critic first: a crash between the two leaves the actor's previous step as "latest", which
  // load() reports instead of pairing mismatched states.
  if (gae_)
    save_train_state(ckpt / "critic", *critic_, *critic_opt_, {step, {}, o_.actor.seed, Json::object()}, max_keep);
  save_train_state(ckpt / "actor", actor_, *actor_opt_,
                   {step, {}, o_.actor.seed, Json{{"learner", learner}, {"loop", extra}}}, max_keep);
}

std::optional<std::pair<int64_t, Json>> PpoLearner::load(const std::filesystem::path& ckpt) {
  auto a = load_train_state(ckpt / "actor", actor_, *actor_opt_);
  if (!a) return std::nullopt;
  if (gae_) {
    auto c = load_train_state(ckpt / "critic", *critic_, *critic_opt_);
    check(c && c->step == a->step, ckpt.string() + ": the actor checkpoint is at step " + std::to_string(a->step) +
                                       " but the critic's is " +
                                       (c ? "at step " + std::to_string(c->step) : "missing"));
  }
  const Json& l = a->extra.at("learner");
  kl_coef_ = l.at("kl_coef").get<double>();
  done_opt_steps_ = l.at("done_opt_steps").get<int64_t>();
  train_rng_->set_state(l.at("train_rng").get<std::vector<uint64_t>>());
  return std::make_pair(a->step, a->extra.at("loop"));
}

PpoStepStats PpoLearner::update(std::vector<Rollout>& rolls, PpoTrace* trace) {
  PpoStepStats st;
  const PpoOptions& o = o_;
  const std::string& est = o.advantage_estimator;
  const double gamma = group_ ? 1.0 : o.gamma;  // OpenRLHF forces gamma 1 for the group estimators
  const int64_t n = o.n_samples_per_prompt;
  model::DecoderModel& actor = actor_;
  check(!rolls.empty() && rolls.size() % static_cast<size_t>(n) == 0,
        "PPO update: the rollouts must be whole groups of --n_samples_per_prompt");
  for (auto& r : rolls)
    check(r.prompt_len >= 1 && r.actions() >= 1, "PPO update: every rollout needs a prompt and an action token");
  const size_t N = rolls.size();
  std::vector<const Rollout*> rows;
  int64_t T = 1;
  for (auto& r : rolls) rows.push_back(&r), T = std::max(T, r.actions());
  st.samples = static_cast<int64_t>(N);

  dist::Communicator& comm = communicator_or_world(o.actor.comm);
  // ---- 2. experience: old log-probs, reference log-probs, values
  auto t0 = Clock::now();
  TokenGrid old_lp = empty_grid(rows, T), ref_lp = old_lp, values = old_lp;
  {
    ag::NoTapeScope no_tape;
    fill_grid(comm, rows, T, o.micro_rollout_batch_size, old_lp,
              [&](auto part, auto& cache) { return actor_forward(actor, part, T, cache, false).logp; });
    if (use_ref_)
      fill_grid(comm, rows, T, o.micro_rollout_batch_size, ref_lp,
                [&](auto part, auto& cache) { return actor_forward(*reference_, part, T, cache, false).logp; });
    if (gae_)
      fill_grid(comm, rows, T, o.micro_rollout_batch_size, values,
                [&](auto part, auto& cache) { return critic_forward(*critic_, part, T, cache); });
  }
  st.forward_s = since(t0);

  // ---- 3. rewards -> advantages and returns
  TokenGrid kl = old_lp;
  {
    ag::NoTapeScope no_tape;
    if (use_ref_) {
      Tensor lpt = Tensor::empty({static_cast<int64_t>(old_lp.v.size())});
      std::copy(old_lp.v.begin(), old_lp.v.end(), lpt.data<float>());
      ag::Var k = approx_kl(ag::Var(lpt, false), ref_lp, o.kl_estimator);
      std::copy(k.f32(), k.f32() + k.numel(), kl.v.begin());
    } else {
      std::fill(kl.v.begin(), kl.v.end(), 0.0f);
    }
  }
  st.kl = masked_mean_of(kl);
  std::vector<float> r(N);
  double rsum = 0, lsum = 0;
  for (size_t i = 0; i < N; ++i) r[i] = rolls[i].reward, rsum += r[i], lsum += static_cast<double>(rolls[i].actions());
  st.reward = rsum / static_cast<double>(N);
  st.response_len = lsum / static_cast<double>(N);
  if (group_) r = group_shaped_rewards(r, n, est);
  TokenGrid kl_for_reward = kl;
  if (o.use_kl_loss) std::fill(kl_for_reward.v.begin(), kl_for_reward.v.end(), 0.0f);  // KL goes to the loss
  TokenGrid shaped = kl_shaped_rewards(r, o.use_kl_loss ? 0.0 : kl_coef_, kl_for_reward, o.reward_clip_range);
  TokenGrid adv, ret;
  if (gae_) {
    std::tie(adv, ret) = gae(values, shaped, gamma, o.lambd);
  } else {
    ret = cumulative_returns(shaped, gamma);
    adv = ret;
  }
  if (est == "gae" || est == "reinforce" || est == "reinforce_baseline")
    adv = normalize_advantages(adv, o.no_advantage_std_norm);
  if (trace) *trace = {old_lp, ref_lp, values, kl, adv, ret};

  // ---- 4. training: max_epochs passes over the rollouts, train_batch_size samples a step
  t0 = Clock::now();
  const size_t tb = std::min<size_t>(static_cast<size_t>(o.actor.train_batch_size), N);
  const size_t mb = std::min<size_t>(static_cast<size_t>(o.actor.micro_train_batch_size), tb);
  std::vector<size_t> idx(N);
  double pl_sum = 0, vl_sum = 0, ent_sum = 0, clip_sum = 0, gn_sum = 0;
  int64_t opt_steps = 0;
  for (int64_t epoch = 0; epoch < o.actor.max_epochs; ++epoch) {
    std::iota(idx.begin(), idx.end(), 0);
    for (size_t i = N; i > 1; --i) std::swap(idx[i - 1], idx[train_rng_->below(i)]);
    for (size_t s0 = 0; s0 + tb <= N; s0 += tb) {
      // The step's normalizer: its action tokens (token-level loss) or its samples.
      double step_tokens = 0;
      for (size_t k = s0; k < s0 + tb; ++k) step_tokens += static_cast<double>(rolls[idx[k]].actions());
      double pl = 0, vl = 0, ent = 0, clip = 0;
      for (size_t m0 = s0; m0 < s0 + tb; m0 += mb) {
        if (!runs_micro_batch(comm, static_cast<int64_t>((m0 - s0) / mb))) continue;
        std::span<const size_t> part(idx.data() + m0, std::min(mb, s0 + tb - m0));
        std::vector<const Rollout*> mrows;
        double m_tokens = 0;
        for (size_t k : part) mrows.push_back(&rolls[k]), m_tokens += static_cast<double>(rolls[k].actions());
        const float share =
            static_cast<float>(o.policy.token_level_loss ? m_tokens / step_tokens
                                                         : static_cast<double>(part.size()) / static_cast<double>(tb));
        const TokenGrid m_old = rows_of(old_lp, part), m_adv = rows_of(adv, part);
        {
          ag::Tape tape;
          std::unique_ptr<model::KVCache> cache;
          ag::Var loss;
          {
            ag::TapeScope scope(tape);
            actor.set_dropout_seed(o.actor.seed * 7919 + static_cast<uint64_t>(done_opt_steps_) * 65537 + m0);
            ActorOut a = actor_forward(actor, mrows, T, cache, o.entropy_coef != 0);
            auto p = policy_loss(a.logp, m_old, m_adv, o.policy);
            loss = p.loss;
            pl += p.loss.f32()[0] * share;
            clip += p.clip_ratio * share;
            if (o.use_kl_loss && use_ref_) {
              ag::Var k = approx_kl(a.logp, rows_of(ref_lp, part), o.kl_estimator);
              ag::Var km = masked_mean(k, m_old.mask, m_old.B, m_old.T, o.policy.token_level_loss);
              loss = ag::add(loss, ag::scale(km, static_cast<float>(kl_coef_)));
            }
            if (o.entropy_coef != 0) {
              ag::Var e = masked_mean(a.entropy, m_old.mask, m_old.B, m_old.T, o.policy.token_level_loss);
              ent += e.f32()[0] * share;
              loss = ag::add(loss, ag::scale(e, static_cast<float>(-o.entropy_coef)));
            }
            loss = ag::scale(loss, share);
          }
          tape.backward(loss);
        }
        if (gae_) {
          ag::Tape tape;
          std::unique_ptr<model::KVCache> cache;
          ag::Var loss;
          {
            ag::TapeScope scope(tape);
            ag::Var v = critic_forward(*critic_, mrows, T, cache);
            loss = value_loss(v, rows_of(values, part), rows_of(ret, part), o.value_clip, o.policy.token_level_loss);
            vl += loss.f32()[0] * share;
            loss = ag::scale(loss, share);
          }
          tape.backward(loss);
        }
      }
      if (comm.size() > 1) {
        const auto sums = dist::sum_over_ranks(comm, {pl, vl, ent, clip});
        pl = sums[0], vl = sums[1], ent = sums[2], clip = sums[3];
      }
      const double lr_mult = sched_->multiplier(std::min(total_opt_ - 1, done_opt_steps_));
      gn_sum += reduce_and_clip_gradients(comm, *actor_opt_, o.actor.max_norm);
      actor_opt_->step(o.actor.learning_rate * lr_mult);
      actor_opt_->zero_grad();
      if (gae_) {
        reduce_and_clip_gradients(comm, *critic_opt_, o.actor.max_norm);
        critic_opt_->step(o.critic_learning_rate * lr_mult);
        critic_opt_->zero_grad();
      }
      pl_sum += pl, vl_sum += vl, ent_sum += ent, clip_sum += clip;
      ++opt_steps;
      ++done_opt_steps_;
    }
  }
  st.train_s = since(t0);
  if (opt_steps) {
    st.policy_loss = pl_sum / static_cast<double>(opt_steps);
    st.value_loss = vl_sum / static_cast<double>(opt_steps);
    st.entropy = ent_sum / static_cast<double>(opt_steps);
    st.clip_ratio = clip_sum / static_cast<double>(opt_steps);
    st.grad_norm = gn_sum / static_cast<double>(opt_steps);
  }
  if (o.kl_target) {  // adaptive KL controller (Ziegler et al.)
    const double err = std::clamp(st.kl / *o.kl_target - 1.0, -0.2, 0.2);
    kl_coef_ *= 1.0 + err * static_cast<double>(rolls.size()) / o.kl_horizon;
  }
  return st;
}

PpoResult train_ppo(model::DecoderModel& actor, model::DecoderModel* reference, model::DecoderModel* critic,
                    const tok::Tokenizer& tok, std::span<const PromptItem> prompts, RewardSet& reward,
                    const PpoOptions& o, const PolicyEval& eval) {
  check(o.rollout_batch_size >= 1 && o.micro_rollout_batch_size >= 1, "rollout batch sizes must be positive");
  check(o.generate_max_len >= 1, "--generate_max_len must be positive");
  check(static_cast<int64_t>(prompts.size()) >= o.rollout_batch_size,
        "the prompt set has " + std::to_string(prompts.size()) + " prompts, fewer than --rollout_batch_size " +
            std::to_string(o.rollout_batch_size));
  if (o.dynamic_filtering)
    check(o.dynamic_filtering_range.first < o.dynamic_filtering_range.second,
          "--dynamic_filtering_reward_range: low must be below high");
  const int64_t n = o.n_samples_per_prompt;
  const int64_t steps_per_episode = static_cast<int64_t>(prompts.size()) / o.rollout_batch_size;
  int64_t total_steps = steps_per_episode * o.num_episodes;
  if (o.max_steps >= 0) total_steps = std::min(total_steps, o.max_steps);
  const int64_t samples_per_step = o.rollout_batch_size * n;
  PpoLearner learner(actor, reference, critic, o, total_steps);
  dist::Communicator& comm = communicator_or_world(o.actor.comm);
  const bool root = comm.is_root(), show = root && !o.actor.quiet;

  MetricsLog metrics(root ? o.actor.metrics_path : std::filesystem::path(),
                     root ? o.actor.tensorboard_dir : std::filesystem::path(), o.actor.load_checkpoint);
  PpoResult res;
  auto run_eval = [&](int64_t step) {  // rank 0 alone: evaluation changes nothing the ranks share
    if (!eval || !root) return;
    const double v = eval(actor);
    res.eval_history.emplace_back(step, v);
    metrics.log(step, {{"score", v}}, "eval");
    if (!o.actor.quiet) std::fprintf(stderr, "eval after %lld steps: %.4f\n", static_cast<long long>(step), v);
  };
  DataRng order_rng(o.actor.seed);
  std::vector<size_t> order(prompts.size());
  size_t cursor = prompts.size();  // forces a shuffle on first use
  auto next_prompt = [&]() {
    if (cursor >= order.size()) {
      std::iota(order.begin(), order.end(), 0);
      for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[order_rng.below(i)]);
      cursor = 0;
    }
    return order[cursor++];
  };
  uint64_t sample_seed = o.actor.seed * 1000003ULL;
  int64_t start = 0;
  if (o.actor.load_checkpoint) {
    check(!o.actor.ckpt_path.empty(), "--load_checkpoint needs --ckpt_path");
    if (auto st = learner.load(o.actor.ckpt_path)) {
      start = st->first;
      const Json& loop = st->second;
      order = loop.at("order").get<std::vector<size_t>>();
      check(order.size() == prompts.size(), o.actor.ckpt_path.string() +
                                                ": the checkpoint was made with another prompt set (" +
                                                std::to_string(order.size()) + " prompts)");
      cursor = loop.at("cursor").get<size_t>();
      order_rng.set_state(loop.at("order_rng").get<std::vector<uint64_t>>());
      sample_seed = loop.at("sample_seed").get<uint64_t>();
      if (root) log::warn("resumed from " + o.actor.ckpt_path.string() + " at rollout step " + std::to_string(start));
    }
  }
  auto checkpoint = [&](int64_t done) {
    learner.save(
        o.actor.ckpt_path, done,
        Json{{"order", order}, {"cursor", cursor}, {"order_rng", order_rng.state()}, {"sample_seed", sample_seed}},
        o.actor.max_ckpt_num);
  };

  run_eval(start);
  ProgressBar bar(o.actor.label, total_steps, start);

  for (int64_t step = start; step < total_steps; ++step) {
    PpoStepStats st;
    // ---- 1. rollouts and rewards (with dynamic-filtering refills)
    std::vector<Rollout> rolls;
    size_t consumed = 0;
    const size_t max_consumed = static_cast<size_t>(o.rollout_batch_size) * (o.dynamic_filtering ? 4 : 1);
    while (static_cast<int64_t>(rolls.size()) < samples_per_step && consumed < max_consumed) {
      const size_t want = static_cast<size_t>((samples_per_step - static_cast<int64_t>(rolls.size())) / n);
      std::vector<size_t> which;
      for (size_t k = 0; k < want && consumed < max_consumed; ++k, ++consumed) which.push_back(next_prompt());
      auto reqs = requests_for(prompts, which, n, o, sample_seed);
      sample_seed += reqs.size();
      auto scored = rollouts_across_ranks(
          comm, actor, tok, reqs, n, o.micro_rollout_batch_size, reward,
          [&](size_t i) {
            const PromptItem& p = prompts[which[i / static_cast<size_t>(n)]];
            return RewardQuery{p.text, "", p.label};
          },
          &st.generate_s, &st.reward_s);
      std::vector<Rollout> batch(scored.size());
      std::vector<float> rw(scored.size());
      std::vector<bool> bad(scored.size());
      for (size_t i = 0; i < scored.size(); ++i) {
        const infer::GenerateResult& gen = scored[i].gen;
        Rollout& r = batch[i];
        r.prompt = which[i / static_cast<size_t>(n)];
        r.ids = prompts[r.prompt].ids;
        r.prompt_len = static_cast<int64_t>(r.ids.size());
        r.ids.insert(r.ids.end(), gen.tokens.begin(), gen.tokens.end());
        if (gen.eos_token >= 0) r.ids.push_back(gen.eos_token);
        r.truncated = gen.finish_reason == infer::FinishReason::Length;
        r.response = gen.text;
        rw[i] = scored[i].reward;
        bad[i] = scored[i].bad;
      }
      for (size_t g = 0; g < which.size(); ++g) {
        bool drop = false;
        double mean = 0;
        for (int64_t j = 0; j < n; ++j) {
          const size_t i = g * static_cast<size_t>(n) + static_cast<size_t>(j);
          Rollout& r = batch[i];
          if (bad[i] || r.actions() == 0) drop = true;
          r.reward = rw[i];
          mean += r.reward;
          if (o.overlong_buffer_len > 0) {  // DAPO: linear penalty over the last buffer_len tokens
            const double expected = o.generate_max_len - o.overlong_buffer_len;
            const double exceed = std::min<double>(static_cast<double>(r.actions()) - expected, o.overlong_buffer_len);
            if (exceed > 0) r.reward -= static_cast<float>(exceed / o.overlong_buffer_len * o.overlong_penalty_factor);
          }
        }
        mean /= static_cast<double>(n);
        if (drop) {
          st.skipped += n;  // non-finite reward or an empty sequence: the whole group goes
          continue;
        }
        if (o.dynamic_filtering &&
            !(o.dynamic_filtering_range.first < mean && mean < o.dynamic_filtering_range.second)) {
          st.skipped += n;
          continue;
        }
        for (int64_t j = 0; j < n; ++j) rolls.push_back(std::move(batch[g * static_cast<size_t>(n) + j]));
      }
    }
    if (rolls.empty()) {
      log::warn("step " + std::to_string(step + 1) + ": every group was filtered out; no update");
      res.steps.push_back(st);
      continue;
    }
    {
      const double gen_s = st.generate_s, rw_s = st.reward_s;
      const int64_t skipped = st.skipped;
      st = learner.update(rolls);
      st.generate_s = gen_s, st.reward_s = rw_s, st.skipped = skipped;
    }
    res.steps.push_back(st);
    metrics.log(step + 1, {{"reward", st.reward},
                           {"response_length", st.response_len},
                           {"kl", st.kl},
                           {"kl_coef", learner.kl_coef()},
                           {"policy_loss", st.policy_loss},
                           {"value_loss", st.value_loss},
                           {"entropy", st.entropy},
                           {"clip_ratio", st.clip_ratio},
                           {"grad_norm", st.grad_norm},
                           {"samples", static_cast<double>(st.samples)},
                           {"skipped", static_cast<double>(st.skipped)},
                           {"timing/generate", st.generate_s},
                           {"timing/reward", st.reward_s},
                           {"timing/forward", st.forward_s},
                           {"timing/train", st.train_s}});
    if (show) {
      char buf[256];
      std::snprintf(buf, sizeof buf,
                    "reward %.3f len %.1f kl %.4f pg %.4f gn %.3f%s | gen %.1fs rm %.1fs fwd %.1fs train %.1fs",
                    st.reward, st.response_len, st.kl, st.policy_loss, st.grad_norm,
                    st.skipped ? (" skipped " + std::to_string(st.skipped)).c_str() : "", st.generate_s, st.reward_s,
                    st.forward_s, st.train_s);
      bar.update(step + 1, buf);
    }
    if (o.eval_steps > 0 && (step + 1) % o.eval_steps == 0 && step + 1 < total_steps) run_eval(step + 1);
    if (o.actor.save_steps > 0 && (step + 1) % o.actor.save_steps == 0 && !o.actor.ckpt_path.empty())
      checkpoint(step + 1);  // every rank: sharded moments come together, rank 0 writes
  }
  if (show) bar.finish();
  run_eval(total_steps);
  save_trained(actor, o.actor);
  if (root && o.save_value_network && critic && critic->has_score_head() && !o.actor.save_path.empty()) {
    check(!o.critic_pretrain.empty(), "--save_value_network: the critic's source folder is unknown");
    save_hf_folder(*critic, o.critic_pretrain, o.actor.save_path.string() + "_critic");
  }
  if (root && !o.actor.plot_path.empty()) plot_ppo(o.actor.plot_path, o.actor.label, res);
  comm.barrier();
  return res;
}

void plot_ppo(const std::filesystem::path& path, const std::string& title, const PpoResult& r) {
  Series reward{"mean rollout reward", {}, {}, 0x1f77b4}, score{"held-out score", {}, {}, 0xd62728};
  for (size_t i = 0; i < r.steps.size(); ++i) {
    reward.x.push_back(static_cast<double>(i + 1));
    reward.y.push_back(r.steps[i].samples ? r.steps[i].reward : NAN);
  }
  for (auto& [s, v] : r.eval_history) score.x.push_back(static_cast<double>(s)), score.y.push_back(v);
  plot_lines(path, title, "rollout step", "reward / score", {reward, score});
}

}  // namespace yak::train
