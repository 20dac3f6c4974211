#include "yak/train/kto_trainer.h"

#include <cmath>

#include "yak/autograd/functions.h"
#include "yak/base/error.h"
#include "yak/train/dpo_trainer.h"
#include "yak/train/pair_trainer.h"
#include "yak/train/rl_losses.h"

namespace yak::train {

std::vector<KtoSample> build_kto_samples(std::span<const Record> records, const tok::Tokenizer& tok,
                                         const tok::ChatTemplate* tmpl, const SftOptions& o,
                                         const std::string& label_key, SkipStats* skipped) {
  SkipStats local;
  SkipStats& sk = skipped ? *skipped : local;
  std::vector<KtoSample> out;
  for (const auto& r : records) {
    check(r.value.contains(label_key), r.where + ": no key '" + label_key + "' (--label_key)");
    const Json& l = r.value[label_key];
    bool desirable;
    if (l.is_boolean())
      desirable = l.get<bool>();
    else if (l.is_number_integer() && (l.get<int64_t>() == 0 || l.get<int64_t>() == 1))
      desirable = l.get<int64_t>() == 1;
    else
      throw Error(r.where + ": key '" + label_key + "' must be true/false or 1/0 (got " + l.dump() + ")");
    std::string why;
    auto s = make_sft_sample(r, tok, tmpl, o, &why);
    if (!s) {
      ++sk.reasons[why];
      continue;
    }
    KtoSample k;
    k.prompt_len = 0;
    while (k.prompt_len < s->loss_mask.size() && !s->loss_mask[k.prompt_len]) ++k.prompt_len;
    if (k.prompt_len == 0 || k.prompt_len >= s->ids.size()) {
      ++sk.reasons["empty prompt or completion"];
      continue;
    }
    k.sample = std::move(*s);
    k.desirable = desirable;
    out.push_back(std::move(k));
  }
  return out;
}

namespace {

// Prompt of a + completion of b (the mismatched pairs of the KL estimate).
Sample mismatched(const KtoSample& a, const KtoSample& b) {
  Sample s;
  s.ids.assign(a.sample.ids.begin(), a.sample.ids.begin() + static_cast<long>(a.prompt_len));
  s.loss_mask.assign(a.prompt_len, 0);
  for (size_t t = b.prompt_len; t < b.sample.ids.size(); ++t)
    s.ids.push_back(b.sample.ids[t]), s.loss_mask.push_back(1);
  return s;
}

}  // namespace

KtoResult train_kto(model::DecoderModel& policy, model::DecoderModel& reference, std::span<const KtoSample> train,
                    std::span<const KtoSample> eval, const LmTrainOptions& o, const KtoOptions& k) {
  check(k.beta > 0, "--beta must be positive");
  check(o.micro_train_batch_size >= 2,
        "KTO's KL estimate pairs samples within a micro-batch: "
        "--micro_train_batch_size must be at least 2");
  KtoResult res;
  std::vector<const Sample*> all;
  for (const auto& s : train) all.push_back(&s.sample);
  const std::vector<float> ref = sequence_logp_values(reference, all);  // frozen: computed once
  auto micro = [&](std::span<const size_t> idx, float share) {
    const size_t m = idx.size();
    std::vector<Sample> kl(m);
    std::vector<const Sample*> seqs;
    for (size_t i = 0; i < m; ++i) seqs.push_back(&train[idx[i]].sample);
    for (size_t i = 0; i < m; ++i) kl[i] = mismatched(train[idx[i]], train[idx[(i + 1) % m]]);
    std::vector<const Sample*> klp;
    for (auto& s : kl) klp.push_back(&s), seqs.push_back(&s);
    std::vector<float> ref_kl;
    {
      ag::NoTapeScope no_tape;
      ref_kl = sequence_logp_values(reference, klp);
    }
    std::vector<int32_t> ci, ri, ki;
    std::vector<float> rc, rr;
    for (size_t i = 0; i < m; ++i) {
      if (train[idx[i]].desirable)
        ci.push_back(static_cast<int32_t>(i)), rc.push_back(ref[idx[i]]);
      else
        ri.push_back(static_cast<int32_t>(i)), rr.push_back(ref[idx[i]]);
      ki.push_back(static_cast<int32_t>(m + i));
    }
    PairMicroResult r;
    ag::Tape tape;
    ag::Var l;
    std::unique_ptr<model::KVCache> cache;
    {
      ag::TapeScope scope(tape);
      ag::Var lp = sequence_logps(policy, seqs, cache);
      auto out = kto_loss(ag::gather_rows(lp, ci), ag::gather_rows(lp, ri), ag::gather_rows(lp, ki), rc, rr, ref_kl,
                          k.beta, k.desirable_weight, k.undesirable_weight);
      l = ag::scale(out.loss, share);
      r.sums["kl"] += out.kl * static_cast<double>(m);
      for (float v : out.chosen_rewards) r.sums["desirable_reward"] += v;
      for (float v : out.rejected_rewards) r.sums["undesirable_reward"] += v;
    }
    r.loss = l.f32()[0];
    tape.backward(l);
    return r;
  };
  res.eval_margin = std::nan("");
  res.losses = train_on_pairs(policy, train.size(), o, micro, [&]() -> std::map<std::string, double> {
    if (eval.empty()) return {};
    std::vector<const Sample*> es;
    for (const auto& s : eval) es.push_back(&s.sample);
    auto p = sequence_logp_values(policy, es), q = sequence_logp_values(reference, es);
    double d = 0, u = 0, nd = 0, nu = 0;
    for (size_t i = 0; i < eval.size(); ++i) {
      const double rw = k.beta * (p[i] - q[i]);
      if (eval[i].desirable)
        d += rw, nd += 1;
      else
        u += rw, nu += 1;
    }
    res.eval_margin = (nd ? d / nd : 0.0) - (nu ? u / nu : 0.0);
    return {{"reward_margin", res.eval_margin}};
  });
  save_trained(policy, o);
  if (!o.plot_path.empty()) plot_losses(o.plot_path, o.label, {{"kto", res.losses}});
  return res;
}

}  // namespace yak::train
