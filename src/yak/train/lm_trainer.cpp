#include "yak/train/lm_trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>

#include "yak/autograd/functions.h"
#include "yak/base/error.h"
#include "yak/base/log.h"
#include "yak/base/png.h"
#include "yak/base/progress.h"
#include "yak/train/checkpoint.h"
#include "yak/train/data_parallel.h"
#include "yak/train/lm_loss.h"
#include "yak/train/metrics.h"
#include "yak/train/optimizer.h"
#include "yak/train/rl_losses.h"

namespace yak::train {

namespace {

struct Engineered {
  model::Batch batch;
  std::vector<int32_t> targets;
  int64_t slots = 0, longest = 0;
};

Engineered lay_out(const MicroBatch& mb) {
  FlatBatch f = flatten(mb);
  Engineered e;
  e.batch.ids = std::move(f.tokens);
  e.batch.pos = std::move(f.positions);
  e.batch.slot = std::move(f.slots);
  e.targets = std::move(f.targets);
  e.slots = f.num_slots;
  for (auto p : e.batch.pos) e.longest = std::max<int64_t>(e.longest, p + 1);
  return e;
}

int64_t count(const std::vector<int32_t>& targets) {
  int64_t n = 0;
  for (auto t : targets) n += t != kIgnoreIndex;
  return n;
}

std::string fmt(const char* f, double v) {
  char buf[48];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

}  // namespace

void plot_losses(const std::filesystem::path& path, const std::string& title,
                 const std::vector<std::pair<std::string, LmTrainResult>>& runs) {
  static const uint32_t colors[] = {0x1f77b4, 0xd62728, 0x2ca02c, 0xff7f0e};
  std::vector<Series> series;
  int64_t offset = 0;
  size_t c = 0;
  for (auto& [name, r] : runs) {
    Series s{name + " loss", {}, {}, colors[c++ % 4]};
    for (size_t k = 0; k < r.step_losses.size(); ++k) {
      s.x.push_back(static_cast<double>(offset + r.first_step + static_cast<int64_t>(k) + 1));
      s.y.push_back(r.step_losses[k]);
    }
    series.push_back(std::move(s));
    if (!r.eval_history.empty()) {
      Series e{name + " eval", {}, {}, colors[c++ % 4]};
      for (auto& [step, loss] : r.eval_history) {
        e.x.push_back(static_cast<double>(offset + step));
        e.y.push_back(loss);
      }
      series.push_back(std::move(e));
    }
    offset += r.steps;
  }
  plot_lines(path, title, "optimizer step", "loss", series);
}

AdamW prepare_training(model::DecoderModel& model, const LmTrainOptions& o) {
  model.set_gradient_checkpointing(o.gradient_checkpointing);
  if (model.has_lora())
    model.make_lora_trainable();
  else
    model.make_trainable();
  AdamW opt(model.trainable_parameters(), {o.learning_rate, o.adam_beta1, o.adam_beta2, 1e-8, o.weight_decay});
  opt.set_communicator(&communicator_or_world(o.comm), o.zero_stage);
  return opt;
}

void save_trained(const model::DecoderModel& model, const LmTrainOptions& o, const Json& config_extra) {
  if (o.save_path.empty() || !communicator_or_world(o.comm).is_root()) return;  // rank 0 writes the folder
  if (model.has_lora())
    save_lora_folder(model, o.pretrain, o.save_path, config_extra);
  else
    save_hf_folder(model, o.pretrain, o.save_path, config_extra);
}

double evaluate_loss(model::DecoderModel& model, std::span<const Sample> samples, int64_t micro_batch_size,
                     int max_len) {
  LoaderOptions lo;
  lo.micro_batch_size = static_cast<size_t>(micro_batch_size);
  lo.shuffle = false;
  lo.drop_last = false;
  lo.max_len = max_len;
  BatchIterator it(samples, lo);
  double sum = 0;
  int64_t n = 0;
  while (auto mb = it.next()) {
    Engineered e = lay_out(*mb);
    if (e.batch.ids.empty()) continue;
    model::KVCache cache(model.config(), e.slots, e.longest);
    auto l = lm_loss(model, e.batch, e.targets, cache);
    sum += l.sum.f32()[0];
    n += l.n_targets;
  }
  return n ? sum / static_cast<double>(n) : std::nan("");
}

LmTrainResult train_lm(model::DecoderModel& model, std::span<const Sample> train, std::span<const Sample> eval,
                       const LmTrainOptions& o) {
  check(o.micro_train_batch_size > 0 && o.train_batch_size > 0,
        "--train_batch_size and --micro_train_batch_size must be positive");
  check(o.train_batch_size % o.micro_train_batch_size == 0,
        "--train_batch_size (" + std::to_string(o.train_batch_size) +
            ") must be a multiple of --micro_train_batch_size (" + std::to_string(o.micro_train_batch_size) + ")");
  check(!train.empty(), "the training set has no samples");
  check(o.learning_rate >= 0, "--learning_rate must be non-negative");
  const int64_t accum = o.train_batch_size / o.micro_train_batch_size;
  dist::Communicator& comm = communicator_or_world(o.comm);
  check_micro_batches_cover_ranks(comm, accum);

  LoaderOptions lo;
  lo.micro_batch_size = static_cast<size_t>(o.micro_train_batch_size);
  lo.seed = o.seed;
  lo.packing = o.packing_samples;
  lo.max_len = o.max_len;
  BatchIterator probe(train, lo);
  const int64_t per_epoch = static_cast<int64_t>(probe.batches_per_epoch()) / accum;
  check(per_epoch > 0, "the training set (" + std::to_string(train.size()) + " samples) is smaller than one batch of " +
                           std::to_string(o.train_batch_size));
  int64_t total = per_epoch * o.max_epochs;
  const int64_t warmup = static_cast<int64_t>(std::ceil(o.lr_warmup_ratio * static_cast<double>(total)));
  LrSchedule sched(o.lr_scheduler, warmup, total, o.min_lr_ratio);

  if (o.teacher)
    check(o.teacher->config().vocab_size == model.config().vocab_size,
          "--teacher_model: its vocabulary (" + std::to_string(o.teacher->config().vocab_size) +
              ") differs from the student's (" + std::to_string(model.config().vocab_size) + ")");
  check(o.kd_coef >= 0 && o.kd_coef <= 1, "--kd_coef must be in [0, 1]");
  AdamW opt = prepare_training(model, o);

  const bool root = comm.is_root(), show = root && !o.quiet;
  int64_t step = 0;
  LoaderPosition pos;
  if (o.load_checkpoint) {
    check(!o.ckpt_path.empty(), "--load_checkpoint needs --ckpt_path");
    if (auto st = load_train_state(o.ckpt_path, model, opt)) {
      step = st->step;
      pos = st->data;
      if (root) log::warn("resumed from " + o.ckpt_path.string() + " at step " + std::to_string(step));
    }
  }
  const int64_t stop = o.max_steps >= 0 ? std::min(total, o.max_steps) : total;
  BatchIterator it(train, lo, pos);
  MetricsLog metrics(root ? o.metrics_path : std::filesystem::path(), root ? o.tensorboard_dir : std::filesystem::path(),
                     step > 0);
  ProgressBar bar(o.label, stop, step);  // --max_steps ends the run early; the schedule spans total
  LmTrainResult result;
  result.first_step = step;
  result.eval_loss = std::nan("");
  // tokens/s over the last few steps (the recent rate, not the run's average)
  constexpr size_t kRateWindow = 8;
  std::vector<std::pair<double, int64_t>> recent;  // (seconds since start, tokens seen) per step
  const auto t_start = std::chrono::steady_clock::now();
  int64_t tokens_seen = 0;

  auto run_eval = [&](int64_t at) {
    if (eval.empty()) return;
    result.eval_loss = evaluate_loss(model, eval, o.micro_train_batch_size, o.max_len);
    result.eval_history.emplace_back(at, result.eval_loss);
    metrics.log(at, {{"loss", result.eval_loss}, {"perplexity", std::exp(result.eval_loss)}}, "eval");
  };

  for (; step < stop; ++step) {
    reset_host_memory_peak();
    std::vector<MicroBatch> micro;
    while (static_cast<int64_t>(micro.size()) < accum) {
      auto mb = it.next();
      if (mb) micro.push_back(std::move(*mb));
    }
    std::vector<Engineered> laid;
    int64_t n_targets = 0;
    for (auto& mb : micro) {
      laid.push_back(lay_out(mb));
      n_targets += count(laid.back().targets);
    }
    double loss = 0;
    int64_t step_tokens = 0;
    for (size_t mi = 0; mi < laid.size(); ++mi) {
      const Engineered& e = laid[mi];
      if (!runs_micro_batch(comm, static_cast<int64_t>(mi))) continue;
      model.set_dropout_seed(o.seed * 1000003ull + static_cast<uint64_t>(step * accum + static_cast<int64_t>(mi)));
      if (e.batch.ids.empty()) continue;
      model::KVCache cache(model.config(), e.slots, e.longest);
      ag::Tape tape;
      ag::Var l;
      {
        ag::TapeScope scope(tape);
        const float inv = 1.0f / static_cast<float>(std::max<int64_t>(1, n_targets));
        LmLoss ll = lm_loss(model, e.batch, e.targets, cache);
        if (!o.teacher) {
          l = ag::scale(ll.sum, inv);
        } else {
          Tensor tl;
          {
            ag::NoTapeScope no_tape;
            model::KVCache tc(o.teacher->config(), e.slots, e.longest);
            tl = o.teacher->forward(all_positions(e.batch), tc);
          }
          std::vector<float> tv(tl.data<float>(), tl.data<float>() + tl.numel());
          // KD loss is a mean over this micro-batch's targets: weight it by their share of the step.
          ag::Var kd = kd_loss(ll.logits, tv, e.targets, kIgnoreIndex);
          l = ag::add(ag::scale(ll.sum, static_cast<float>(1.0 - o.kd_coef) * inv),
                      ag::scale(kd, static_cast<float>(o.kd_coef) * static_cast<float>(ll.n_targets) * inv));
        }
      }
      loss += l.f32()[0];
      tape.backward(l);
      step_tokens += static_cast<int64_t>(e.batch.ids.size());
    }
    const double gnorm = reduce_and_clip_gradients(comm, opt, o.max_norm);
    if (comm.size() > 1) {
      const auto sums = dist::sum_over_ranks(comm, {loss, static_cast<double>(step_tokens)});
      loss = sums[0];
      step_tokens = static_cast<int64_t>(sums[1]);
    }
    tokens_seen += step_tokens;
    const double lr = o.learning_rate * sched.multiplier(step);
    opt.step(lr);
    opt.zero_grad();
    result.step_losses.push_back(loss);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    recent.emplace_back(secs, tokens_seen);
    if (recent.size() > kRateWindow + 1) recent.erase(recent.begin());
    const double span = recent.size() > 1 ? recent.back().first - recent.front().first : secs;
    const double tps =
        span > 0 ? static_cast<double>(recent.size() > 1 ? tokens_seen - recent.front().second : tokens_seen) / span
                 : 0;
    const double peak_mb = static_cast<double>(host_memory_stats().peak) / 1e6;
    result.peak_memory_mb = std::max(result.peak_memory_mb, peak_mb);
    if ((step + 1) % std::max<int64_t>(1, o.logging_steps) == 0 || step + 1 == stop)
      metrics.log(step + 1, {{"loss", loss},
                             {"lr", lr},
                             {"grad_norm", gnorm},
                             {"tokens_per_second", tps},
                             {"peak_memory_mb", peak_mb},
                             {"epoch", static_cast<double>(it.position().epoch)}});
    if (show)
      bar.update(step + 1, "loss " + fmt("%.4f", loss) + " lr " + fmt("%.2e", lr) + " gn " + fmt("%.3f", gnorm) + " " +
                               fmt("%.0f", tps) + " tok/s " + fmt("%.0f", peak_mb) + " MB");
    if (o.eval_steps > 0 && (step + 1) % o.eval_steps == 0) run_eval(step + 1);
    if (o.save_steps > 0 && (step + 1) % o.save_steps == 0 && !o.ckpt_path.empty())  // rank 0 writes
      save_train_state(o.ckpt_path, model, opt, {step + 1, it.position(), o.seed, Json::object()}, o.max_ckpt_num);
  }
  if (show) bar.finish(result.step_losses.empty() ? "" : "loss " + fmt("%.4f", result.step_losses.back()));
  if (o.eval_steps <= 0 || stop % o.eval_steps != 0) run_eval(stop);
  save_trained(model, o);
  comm.barrier();  // the saved folder is complete before any rank returns
  result.steps = stop;
  if (root && !o.plot_path.empty()) plot_losses(o.plot_path, o.label, {{"train", result}});
  return result;
}

}  // namespace yak::train
