#include "yak/train/dpo_trainer.h"

#include <cmath>
#include <numeric>

#include "yak/autograd/functions.h"
#include "yak/base/error.h"
#include "yak/train/lm_loss.h"
#include "yak/train/pair_trainer.h"
#include "yak/train/rl_losses.h"

namespace yak::train {

ag::Var sequence_logps(model::DecoderModel& model, std::span<const Sample* const> samples,
                       std::unique_ptr<model::KVCache>& cache, std::vector<int64_t>* counts) {
  model::Batch b;
  std::vector<int32_t> targets, segment;
  int64_t longest = 0;
  if (counts) counts->assign(samples.size(), 0);
  for (size_t i = 0; i < samples.size(); ++i) {
    const Sample& s = *samples[i];
    for (size_t t = 0; t < s.ids.size(); ++t) {
      b.ids.push_back(s.ids[t]);
      b.pos.push_back(static_cast<int32_t>(t));
      b.slot.push_back(static_cast<int32_t>(i));
      b.logits_for.push_back(static_cast<int32_t>(b.ids.size() - 1));
      const bool target = t + 1 < s.ids.size() && s.loss_mask[t + 1];
      targets.push_back(target ? s.ids[t + 1] : kIgnoreIndex);
      segment.push_back(static_cast<int32_t>(i));
      if (counts && target) ++(*counts)[i];
    }
    longest = std::max<int64_t>(longest, static_cast<int64_t>(s.ids.size()));
  }
  cache = std::make_unique<model::KVCache>(model.config(), static_cast<int64_t>(samples.size()), longest);
  ag::Var lp = ag::token_logprobs(model.forward_var(b, *cache), targets, kIgnoreIndex);
  return ag::segment_sum(lp, segment, static_cast<int64_t>(samples.size()));
}

std::vector<float> sequence_logp_values(model::DecoderModel& m, std::span<const Sample* const> s) {
  std::vector<float> out;
  for (size_t i = 0; i < s.size(); i += 16) {
    std::unique_ptr<model::KVCache> cache;
    ag::Var v = sequence_logps(m, s.subspan(i, std::min<size_t>(16, s.size() - i)), cache);
    out.insert(out.end(), v.f32(), v.f32() + v.numel());
  }
  return out;
}

namespace {

std::pair<std::vector<float>, std::vector<float>> pair_logps(model::DecoderModel& m,
                                                             std::span<const PreferencePair> pairs) {
  std::vector<const Sample*> c, r;
  for (auto& p : pairs) c.push_back(&p.chosen), r.push_back(&p.rejected);
  return {sequence_logp_values(m, c), sequence_logp_values(m, r)};
}

}  // namespace

double policy_preference(model::DecoderModel& model, std::span<const PreferencePair> pairs) {
  if (pairs.empty()) return std::nan("");
  auto [c, r] = pair_logps(model, pairs);
  int right = 0;
  for (size_t i = 0; i < c.size(); ++i) right += c[i] > r[i];
  return static_cast<double>(right) / static_cast<double>(c.size());
}

DpoResult train_dpo(model::DecoderModel& policy, model::DecoderModel& reference, std::span<const PreferencePair> train,
                    std::span<const PreferencePair> eval, const LmTrainOptions& o, const DpoOptions& d) {
  check(d.beta > 0, "--beta must be positive");
  check(d.label_smoothing >= 0 && d.label_smoothing < 0.5, "--label_smoothing must be in [0, 0.5)");
  DpoResult res;
  res.policy_preference_before = policy_preference(policy, eval);
  // The LoRA trick: the policy itself, its adapter switched off, is the reference (no second copy).
  const bool self_ref = &reference == &policy;
  if (self_ref)
    check(policy.has_lora() && policy.lora_config()->modules_to_save.empty(),
          "the policy can be its own reference only as a LoRA adapter without modules_to_save (give --ref_pretrain)");
  auto ref_logps = [&](std::span<const PreferencePair> pairs) {
    if (self_ref) policy.set_lora_enabled(false);
    auto r = pair_logps(reference, pairs);
    policy.set_lora_enabled(true);
    return r;
  };
  // Reference log-probabilities never change: computed once, up front.
  auto [ref_c, ref_r] = ref_logps(train);
  auto micro = [&](std::span<const size_t> idx, float share) {
    const int64_t n = static_cast<int64_t>(idx.size());
    std::vector<const Sample*> seqs;
    std::vector<float> rc, rr;
    for (size_t k : idx) seqs.push_back(&train[k].chosen);
    for (size_t k : idx) seqs.push_back(&train[k].rejected), rc.push_back(ref_c[k]), rr.push_back(ref_r[k]);
    PairMicroResult r;
    ag::Tape tape;
    ag::Var l;
    std::unique_ptr<model::KVCache> cache;
    {
      ag::TapeScope scope(tape);
      std::vector<int64_t> counts;
      ag::Var lp = sequence_logps(policy, seqs, cache, &counts);
      std::vector<int32_t> ci(static_cast<size_t>(n)), ri(static_cast<size_t>(n));
      std::iota(ci.begin(), ci.end(), 0);
      std::iota(ri.begin(), ri.end(), static_cast<int32_t>(n));
      ag::Var pc = ag::gather_rows(lp, ci), pr = ag::gather_rows(lp, ri);
      auto out = dpo_loss(pc, pr, rc, rr, d.beta, d.label_smoothing, d.ipo);
      ag::Var total_loss = out.loss;
      if (d.nll_loss_coef > 0) {
        // OpenRLHF's NLL term: mean token negative log-likelihood of the chosen responses.
        int64_t tokens = 0;
        for (int64_t k = 0; k < n; ++k) tokens += counts[k];
        const std::vector<int32_t> one(static_cast<size_t>(n), 0);
        ag::Var nll = ag::scale(ag::segment_sum(pc, one, 1), -1.0f / static_cast<float>(std::max<int64_t>(1, tokens)));
        total_loss = ag::add(total_loss, ag::scale(nll, static_cast<float>(d.nll_loss_coef)));
      }
      l = ag::scale(total_loss, share);
      for (int64_t k = 0; k < n; ++k) {
        r.sums["acc"] += out.chosen_rewards[k] > out.rejected_rewards[k];
        r.sums["reward_margin"] += out.chosen_rewards[k] - out.rejected_rewards[k];
        r.sums["chosen_reward"] += out.chosen_rewards[k];
        r.sums["rejected_reward"] += out.rejected_rewards[k];
      }
    }
    r.loss = l.f32()[0];
    tape.backward(l);
    return r;
  };
  res.eval_accuracy = std::nan("");
  res.losses = train_on_pairs(policy, train.size(), o, micro, [&]() -> std::map<std::string, double> {
    if (eval.empty()) return {};
    auto [pc, pr] = pair_logps(policy, eval);
    auto [qc, qr] = ref_logps(eval);
    int right = 0;
    for (size_t i = 0; i < pc.size(); ++i) right += (pc[i] - qc[i]) > (pr[i] - qr[i]);
    res.eval_accuracy = static_cast<double>(right) / static_cast<double>(pc.size());
    return {{"acc", res.eval_accuracy}};
  });
  res.policy_preference_after = policy_preference(policy, eval);
  save_trained(policy, o);
  if (!o.plot_path.empty()) plot_losses(o.plot_path, o.label, {{"dpo", res.losses}});
  return res;
}

}  // namespace yak::train
