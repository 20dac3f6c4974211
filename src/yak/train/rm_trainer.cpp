#include "yak/train/rm_trainer.h"

#include <cmath>
#include <numeric>

#include "yak/autograd/functions.h"
#include "yak/base/error.h"
#include "yak/train/pair_trainer.h"
#include "yak/train/rl_losses.h"

namespace yak::train {

namespace {

// One ragged forward over the samples; returns the Var of their last-token scores [n, 1].
ag::Var scores_var(model::DecoderModel& model, std::span<const Sample* const> samples, model::KVCache*& cache_out,
                   std::unique_ptr<model::KVCache>& keep) {
  model::Batch b;
  int64_t longest = 0;
  for (size_t i = 0; i < samples.size(); ++i) {
    const auto& ids = samples[i]->ids;
    check(!ids.empty(), "reward model: empty sequence");
    for (size_t t = 0; t < ids.size(); ++t) {
      b.ids.push_back(ids[t]);
      b.pos.push_back(static_cast<int32_t>(t));
      b.slot.push_back(static_cast<int32_t>(i));
    }
    b.logits_for.push_back(static_cast<int32_t>(b.ids.size() - 1));
    longest = std::max<int64_t>(longest, static_cast<int64_t>(ids.size()));
  }
  keep = std::make_unique<model::KVCache>(model.config(), static_cast<int64_t>(samples.size()), longest);
  cache_out = keep.get();
  return model.forward_scores(b, *keep);
}

std::vector<int32_t> range(int32_t a, int32_t b) {
  std::vector<int32_t> r(static_cast<size_t>(b - a));
  std::iota(r.begin(), r.end(), a);
  return r;
}

}  // namespace

std::vector<PreferencePair> build_preference_pairs(std::span<const Record> records, const tok::Tokenizer& tok,
                                                   const tok::ChatTemplate* tmpl, const PreferenceOptions& o,
                                                   SkipStats* skipped) {
  std::vector<PreferencePair> out;
  SkipStats local;
  SkipStats& sk = skipped ? *skipped : local;
  SftOptions so;
  so.input_key = o.prompt_key;
  so.input_template = o.input_template;
  so.apply_chat_template = o.apply_chat_template;
  so.max_len = o.max_len;
  for (const auto& r : records) {
    PreferencePair p;
    bool ok = true;
    for (auto [key, dst] : {std::pair{o.chosen_key, &p.chosen}, std::pair{o.rejected_key, &p.rejected}}) {
      std::string why;
      if (o.prompt_key.empty() || (o.prompt_key_optional && !r.value.contains(o.prompt_key))) {
        // Whole dialogues (hh-rlhf style): the text itself, or the messages through the chat
        // template, EOS appended.
        auto v = r.value.find(key);
        const bool messages = v != r.value.end() && v->is_array();
        if (messages && !(o.apply_chat_template && tmpl))
          throw Error(r.where + ": key '" + key + "' is a list of messages; give --apply_chat_template");
        const std::string text = messages ? render_dialogue(r, key, *tmpl) : json_get<std::string>(r.value, key, r.where);
        if (text.empty()) {
          why = "empty " + key;
        } else {
          dst->ids = tok.encode(text, messages ? tmpl->add_special_tokens() : true);
          if (tok.eos_id()) dst->ids.push_back(*tok.eos_id());
          if (static_cast<int>(dst->ids.size()) > o.max_len) dst->ids.resize(static_cast<size_t>(o.max_len));
          dst->loss_mask.assign(dst->ids.size(), 1);
          dst->where = r.where;
        }
      } else {
        so.output_key = key;
        auto s = make_sft_sample(r, tok, tmpl, so, &why);
        if (s) *dst = std::move(*s);
      }
      if (!why.empty()) {
        ++sk.reasons[why];
        ok = false;
        break;
      }
    }
    if (!ok) continue;
    if (!o.margin_key.empty()) p.margin = static_cast<float>(json_get<double>(r.value, o.margin_key, r.where));
    out.push_back(std::move(p));
  }
  return out;
}

std::vector<float> score_samples(model::DecoderModel& model, std::span<const Sample* const> samples) {
  std::vector<float> out;
  for (size_t i = 0; i < samples.size(); i += 16) {
    auto part = samples.subspan(i, std::min<size_t>(16, samples.size() - i));
    model::KVCache* c = nullptr;
    std::unique_ptr<model::KVCache> keep;
    ag::Var s = scores_var(model, part, c, keep);
    for (int64_t k = 0; k < s.dim(0); ++k) out.push_back(s.f32()[k * s.dim(1)]);
  }
  return out;
}

double pair_accuracy(model::DecoderModel& model, std::span<const PreferencePair> pairs) {
  if (pairs.empty()) return std::nan("");
  std::vector<const Sample*> c, r;
  for (auto& p : pairs) c.push_back(&p.chosen), r.push_back(&p.rejected);
  auto sc = score_samples(model, c), sr = score_samples(model, r);
  int right = 0;
  for (size_t i = 0; i < pairs.size(); ++i) right += sc[i] > sr[i];
  return static_cast<double>(right) / static_cast<double>(pairs.size());
}

RmTrainResult train_rm(model::DecoderModel& model, std::span<const PreferencePair> train,
                       std::span<const PreferencePair> eval, const LmTrainOptions& o, const std::string& loss_name) {
  check(loss_name == "sigmoid" || loss_name == "logexp", "--loss: expected sigmoid or logexp, got '" + loss_name + "'");
  if (!model.has_score_head()) model.add_score_head(1, o.seed);
  RmTrainResult res;
  res.accuracy_before = pair_accuracy(model, eval);
  auto micro = [&](std::span<const size_t> idx, float share) {
    const int32_t n = static_cast<int32_t>(idx.size());
    std::vector<const Sample*> seqs;
    std::vector<float> margin;
    for (size_t k : idx) seqs.push_back(&train[k].chosen);
    for (size_t k : idx) seqs.push_back(&train[k].rejected), margin.push_back(train[k].margin);
    PairMicroResult r;
    ag::Tape tape;
    ag::Var l;
    model::KVCache* c = nullptr;
    std::unique_ptr<model::KVCache> keep;
    {
      ag::TapeScope scope(tape);
      ag::Var s = scores_var(model, seqs, c, keep);
      ag::Var chosen = ag::gather_rows(s, range(0, n)), rejected = ag::gather_rows(s, range(n, 2 * n));
      ag::Var pl = loss_name == "sigmoid" ? pairwise_loss(chosen, rejected, margin) : logexp_loss(chosen, rejected);
      l = ag::scale(pl, share);
      for (int32_t k = 0; k < n; ++k) r.sums["acc"] += s.f32()[k] > s.f32()[n + k];
    }
    r.loss = l.f32()[0];
    tape.backward(l);
    return r;
  };
  res.losses = train_on_pairs(model, train.size(), o, micro, [&]() -> std::map<std::string, double> {
    res.eval_accuracy = pair_accuracy(model, eval);
    if (eval.empty()) return {};
    return {{"acc", res.eval_accuracy}};
  });
  // Reward statistics over the training responses (for --normalize_reward downstream).
  std::vector<const Sample*> all;
  for (auto& p : train) all.push_back(&p.chosen), all.push_back(&p.rejected);
  auto sc = score_samples(model, all);
  double s = 0, s2 = 0;
  for (float v : sc) s += v, s2 += static_cast<double>(v) * v;
  res.reward_mean = s / static_cast<double>(sc.size());
  res.reward_std = std::sqrt(std::max(0.0, s2 / static_cast<double>(sc.size()) - res.reward_mean * res.reward_mean));
  // OpenRLHF keeps them in config.json as "mean" and "std" (read back by --normalize_reward).
  save_trained(model, o, Json{{"mean", res.reward_mean}, {"std", res.reward_std}});
  if (!o.plot_path.empty()) plot_losses(o.plot_path, o.label, {{"rm", res.losses}});
  return res;
}

}  // namespace yak::train
