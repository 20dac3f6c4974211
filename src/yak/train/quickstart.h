// `yak quickstart`: the whole adapt-and-align pipeline on data the project generates — a tokenizer
// trained from scratch, a tiny LLaMA-style model pretrained on arithmetic facts, a short SFT on
// questions about some of them, GRPO on the same questions with an exact-match reward, then
// held-out accuracy after each stage and a short chat.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace yak::train {

struct QuickstartOptions {
  std::filesystem::path dir = "quickstart-out";
  int max_operand = 14;        // facts a + b for a, b in [0, max_operand]
  double heldout_share = 0.2;  // pairs never seen in SFT, used for the accuracy
  int pt_epochs = 90, sft_epochs = 12;
  int grpo_episodes = 30;  // passes of GRPO over the SFT questions (0: no GRPO stage)
  uint64_t seed = 1;
  bool quiet = false;
};

struct QuickstartReport {
  double pt_loss_first = 0, pt_loss_last = 0;
  double heldout_before = 0, heldout_after = 0, train_after = 0;  // exact-match accuracy (after SFT)
  double heldout_after_grpo = 0, train_after_grpo = 0;            // after the GRPO stage
  double grpo_seconds = 0;
  int heldout_questions = 0;
  std::vector<std::pair<std::string, std::string>> chat;  // question, answer
  std::filesystem::path model_dir, loss_plot, grpo_plot;
};

QuickstartReport run_quickstart(const QuickstartOptions& options);

}  // namespace yak::train
