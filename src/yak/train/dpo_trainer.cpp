#include "yak/train/dpo_trainer.h"

#include <cmath>
#include <numeric>

#include "yak/autograd/functions.h"
#include "yak/base/error.h"
#include "yak/base/progress.h"
#include "yak/train/checkpoint.h"
#include "yak/train/lm_loss.h"
#include "yak/train/metrics.h"
#include "yak/train/optimizer.h"
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

namespace {

std::vector<float> logps_of(model::DecoderModel& m, std::span<const Sample* const> s) {
  std::vector<float> out;
  for (size_t i = 0; i < s.size(); i += 16) {
    std::unique_ptr<model::KVCache> cache;
    ag::Var v = sequence_logps(m, s.subspan(i, std::min<size_t>(16, s.size() - i)), cache);
    out.insert(out.end(), v.f32(), v.f32() + v.numel());
  }
  return out;
}

std::pair<std::vector<float>, std::vector<float>> pair_logps(model::DecoderModel& m,
                                                             std::span<const PreferencePair> pairs) {
  std::vector<const Sample*> c, r;
  for (auto& p : pairs) c.push_back(&p.chosen), r.push_back(&p.rejected);
  return {logps_of(m, c), logps_of(m, r)};
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
  check(o.micro_train_batch_size > 0 && o.train_batch_size % o.micro_train_batch_size == 0,
        "--train_batch_size must be a multiple of --micro_train_batch_size");
  check(static_cast<int64_t>(train.size()) >= o.train_batch_size, "the preference set has fewer pairs than one batch");
  DpoResult res;
  res.policy_preference_before = policy_preference(policy, eval);
  // Reference log-probabilities never change: computed once, up front.
  auto [ref_c, ref_r] = pair_logps(reference, train);
  policy.set_gradient_checkpointing(o.gradient_checkpointing);
  if (policy.has_lora())
    policy.make_lora_trainable();
  else
    policy.make_trainable();
  AdamW opt(policy.trainable_parameters(), {o.learning_rate, o.adam_beta1, o.adam_beta2, 1e-8, o.weight_decay});
  const int64_t per_epoch = static_cast<int64_t>(train.size()) / o.train_batch_size, total = per_epoch * o.max_epochs;
  LrSchedule sched(o.lr_scheduler, static_cast<int64_t>(std::ceil(o.lr_warmup_ratio * static_cast<double>(total))),
                   total, o.min_lr_ratio);
  MetricsLog metrics(o.metrics_path, o.tensorboard_dir, false);
  ProgressBar bar(o.label, total);
  bar.set_line_every(o.logging_steps);
  DataRng rng(o.seed);
  std::vector<size_t> order(train.size());
  const float share = static_cast<float>(o.micro_train_batch_size) / static_cast<float>(o.train_batch_size);
  for (int64_t step = 0; step < total; ++step) {
    if (step % per_epoch == 0) {
      std::iota(order.begin(), order.end(), 0);
      for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
    }
    const size_t base = static_cast<size_t>((step % per_epoch) * o.train_batch_size);
    double loss = 0, acc = 0, margin = 0;
    for (int64_t m0 = 0; m0 < o.train_batch_size; m0 += o.micro_train_batch_size) {
      const int64_t n = o.micro_train_batch_size;
      std::vector<const Sample*> seqs;
      std::vector<float> rc, rr;
      for (int64_t k = 0; k < n; ++k) seqs.push_back(&train[order[base + m0 + k]].chosen);
      for (int64_t k = 0; k < n; ++k) seqs.push_back(&train[order[base + m0 + k]].rejected);
      for (int64_t k = 0; k < n; ++k)
        rc.push_back(ref_c[order[base + m0 + k]]), rr.push_back(ref_r[order[base + m0 + k]]);
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
          ag::Var nll =
              ag::scale(ag::segment_sum(pc, one, 1), -1.0f / static_cast<float>(std::max<int64_t>(1, tokens)));
          total_loss = ag::add(total_loss, ag::scale(nll, static_cast<float>(d.nll_loss_coef)));
        }
        l = ag::scale(total_loss, share);
        for (int64_t k = 0; k < n; ++k) {
          acc += out.chosen_rewards[k] > out.rejected_rewards[k];
          margin += out.chosen_rewards[k] - out.rejected_rewards[k];
        }
      }
      loss += l.f32()[0];
      tape.backward(l);
    }
    const double gnorm = clip_grad_norm(opt.params(), o.max_norm);
    const double lr = o.learning_rate * sched.multiplier(step);
    opt.step(lr);
    opt.zero_grad();
    acc /= static_cast<double>(o.train_batch_size);
    margin /= static_cast<double>(o.train_batch_size);
    res.losses.step_losses.push_back(loss);
    metrics.log(step + 1, {{"loss", loss}, {"acc", acc}, {"reward_margin", margin}, {"lr", lr}, {"grad_norm", gnorm}});
    if (!o.quiet) {
      char buf[96];
      std::snprintf(buf, sizeof buf, "loss %.4f acc %.2f margin %.3f lr %.2e", loss, acc, margin, lr);
      bar.update(step + 1, buf);
    }
  }
  if (!o.quiet) bar.finish();
  res.losses.steps = total;
  if (!eval.empty()) {
    auto [pc, pr] = pair_logps(policy, eval);
    auto [qc, qr] = pair_logps(reference, eval);
    int right = 0;
    for (size_t i = 0; i < pc.size(); ++i) right += (pc[i] - qc[i]) > (pr[i] - qr[i]);
    res.eval_accuracy = static_cast<double>(right) / static_cast<double>(pc.size());
    metrics.log(total, {{"acc", res.eval_accuracy}}, "eval");
  } else {
    res.eval_accuracy = std::nan("");
  }
  res.policy_preference_after = policy_preference(policy, eval);
  if (!o.save_path.empty()) {
    if (policy.has_lora())
      save_lora_folder(policy, o.pretrain, o.save_path);
    else
      save_hf_folder(policy, o.pretrain, o.save_path);
  }
  if (!o.plot_path.empty()) plot_losses(o.plot_path, o.label, {{"dpo", res.losses}});
  return res;
}

}  // namespace yak::train
