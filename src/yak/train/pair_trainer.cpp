#include "yak/train/pair_trainer.h"

#include <cmath>
#include <cstdio>
#include <numeric>

#include "yak/base/error.h"
#include "yak/base/log.h"
#include "yak/base/progress.h"
#include "yak/train/checkpoint.h"
#include "yak/train/data_parallel.h"
#include "yak/train/data_source.h"
#include "yak/train/metrics.h"
#include "yak/train/optimizer.h"

namespace yak::train {

LmTrainResult train_on_pairs(model::DecoderModel& model, size_t n_pairs, const LmTrainOptions& o,
                             const PairMicroStep& micro, const std::function<std::map<std::string, double>()>& eval) {
  check(o.micro_train_batch_size > 0 && o.train_batch_size % o.micro_train_batch_size == 0,
        "--train_batch_size must be a multiple of --micro_train_batch_size");
  check(static_cast<int64_t>(n_pairs) >= o.train_batch_size, "the preference set has fewer pairs than one batch");
  dist::Communicator& comm = communicator_or_world(o.comm);
  const bool root = comm.is_root(), show = root && !o.quiet;
  check_micro_batches_cover_ranks(comm, o.train_batch_size / o.micro_train_batch_size);
  AdamW opt = prepare_training(model, o);
  const int64_t per_epoch = static_cast<int64_t>(n_pairs) / o.train_batch_size, total = per_epoch * o.max_epochs;
  LrSchedule sched(o.lr_scheduler, static_cast<int64_t>(std::ceil(o.lr_warmup_ratio * static_cast<double>(total))),
                   total, o.min_lr_ratio);
  DataRng rng(o.seed);
  std::vector<size_t> order(n_pairs);
  auto shuffle = [&] {  // a fresh permutation every epoch
    std::iota(order.begin(), order.end(), 0);
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
  };
  int64_t start = 0;
  if (o.load_checkpoint) {
    check(!o.ckpt_path.empty(), "--load_checkpoint needs --ckpt_path");
    if (auto st = load_train_state(o.ckpt_path, model, opt)) {
      start = st->step;
      check(start <= total, o.ckpt_path.string() + ": the checkpoint is past this run's last step");
      // Epoch orders derive from the seed alone: replay the shuffles of the epochs already begun.
      for (int64_t e = 0; e < (start + per_epoch - 1) / per_epoch; ++e) shuffle();
      if (root) log::warn("resumed from " + o.ckpt_path.string() + " at step " + std::to_string(start));
    }
  }
  MetricsLog metrics(root ? o.metrics_path : std::filesystem::path(), root ? o.tensorboard_dir : std::filesystem::path(),
                     start > 0);
  const int64_t stop = o.max_steps >= 0 ? std::min(total, o.max_steps) : total;  // the schedule spans total
  ProgressBar bar(o.label, stop, start);
  const float share = static_cast<float>(o.micro_train_batch_size) / static_cast<float>(o.train_batch_size);
  LmTrainResult res;
  res.first_step = start;
  for (int64_t step = start; step < stop; ++step) {
    if (step % per_epoch == 0) shuffle();
    const size_t base = static_cast<size_t>((step % per_epoch) * o.train_batch_size);
    double loss = 0;
    std::map<std::string, double> stats;
    for (int64_t m0 = 0; m0 < o.train_batch_size; m0 += o.micro_train_batch_size) {
      if (!runs_micro_batch(comm, m0 / o.micro_train_batch_size)) continue;
      auto r = micro(std::span<const size_t>(order).subspan(base + static_cast<size_t>(m0),
                                                            static_cast<size_t>(o.micro_train_batch_size)),
                     share);
      loss += r.loss;
      for (auto& [k, v] : r.sums) stats[k] += v;
    }
    const double gnorm = reduce_and_clip_gradients(comm, opt, o.max_norm);
    if (comm.size() > 1) {  // every rank ran a micro-batch, so each has the same statistics' names
      std::vector<double> v{loss};
      for (auto& [k, x] : stats) v.push_back(x);
      v = dist::sum_over_ranks(comm, std::move(v));
      loss = v[0];
      size_t i = 1;
      for (auto& [k, x] : stats) x = v[i++];
    }
    const double lr = o.learning_rate * sched.multiplier(step);
    opt.step(lr);
    opt.zero_grad();
    res.step_losses.push_back(loss);
    char head[32];
    std::snprintf(head, sizeof head, "loss %.4f", loss);
    std::string fields = head;
    for (auto& [k, v] : stats) {
      v /= static_cast<double>(o.train_batch_size);
      char buf[48];
      std::snprintf(buf, sizeof buf, " %s %.3f", k.c_str(), v);
      fields += buf;
    }
    stats["loss"] = loss;
    stats["lr"] = lr;
    stats["grad_norm"] = gnorm;
    metrics.log(step + 1, stats);
    if (show) {
      char buf[32];
      std::snprintf(buf, sizeof buf, " lr %.2e", lr);
      bar.update(step + 1, fields + buf);
    }
    if (o.save_steps > 0 && (step + 1) % o.save_steps == 0 && !o.ckpt_path.empty())  // rank 0 writes
      save_train_state(o.ckpt_path, model, opt, {step + 1, {}, o.seed, Json::object()}, o.max_ckpt_num);
  }
  if (show) bar.finish();
  res.steps = stop;
  if (eval) {
    auto m = eval();
    if (!m.empty()) metrics.log(stop, m, "eval");
  }
  return res;
}

}  // namespace yak::train
