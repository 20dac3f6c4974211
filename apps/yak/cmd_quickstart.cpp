#include <cstdio>

#include "common.h"
#include "yak/ops/ops.h"
#include "yak/train/quickstart.h"

namespace yak::cli {

void register_quickstart(CLI::App& app) {
  auto o = std::make_shared<train::QuickstartOptions>();
  auto threads = std::make_shared<int>(0);
  auto dir = std::make_shared<std::string>("quickstart-out");
  auto* q = app.add_subcommand(
      "quickstart", "Tokenizer + tiny model from scratch on generated data, pretraining, SFT, accuracy, chat");
  q->add_option("--dir", *dir, "Working folder (data, tokenizer, checkpoints)");
  q->add_option("--pt-epochs", o->pt_epochs, "Pretraining epochs");
  q->add_option("--sft-epochs", o->sft_epochs, "SFT epochs");
  q->add_option("--grpo-episodes", o->grpo_episodes, "GRPO passes over the SFT questions (0: skip GRPO)");
  q->add_option("--max-operand", o->max_operand, "Facts a + b for a, b up to this");
  q->add_option("--seed", o->seed, "Seed");
  q->add_option("-t,--threads", *threads, "Threads (default: all cores)");
  q->callback([o, threads, dir] {
    ops::set_num_threads(*threads);
    o->dir = *dir;
    auto r = train::run_quickstart(*o);
    std::printf("pretraining loss: %.3f -> %.3f\n", r.pt_loss_first, r.pt_loss_last);
    std::printf("held-out accuracy (%d questions never seen in SFT): before SFT %.0f%%, after SFT %.0f%%\n",
                r.heldout_questions, 100 * r.heldout_before, 100 * r.heldout_after);
    std::printf("SFT-train accuracy after SFT: %.0f%%\n", 100 * r.train_after);
    if (o->grpo_episodes > 0) {
      std::printf("held-out accuracy after GRPO: %.0f%% (SFT-train: %.0f%%; GRPO took %.0f s)\n",
                  100 * r.heldout_after_grpo, 100 * r.train_after_grpo, r.grpo_seconds);
      std::printf("GRPO curve: %s\n", r.grpo_plot.c_str());
    }
    for (auto& [q, a] : r.chat) std::printf("  user: %s\n  yak:  %s\n", q.c_str(), a.c_str());
    std::printf("loss curves: %s\n", r.loss_plot.c_str());
    std::printf("model: %s (try: build/bin/yak chat -m %s)\n", r.model_dir.c_str(), r.model_dir.c_str());
  });
}

}  // namespace yak::cli
