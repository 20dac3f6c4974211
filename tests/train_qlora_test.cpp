// QLoRA's loss curve: eight AdamW steps of an adapter over the Q4_K-kept base track the same steps
// over the dequantized f32 base (model_qlora_test holds the single step's logits and gradients).
// Run on the golden tiny LLaMA (rows of 64/160: Q4_0 fallback) and on a random one with rows of
// 256/512, so that Q4_K itself is the base.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "model_batches.h"
#include "yak/autograd/functions.h"
#include "yak/model/decoder.h"
#include "yak/model/init.h"
#include "yak/train/optimizer.h"

using namespace yak;
namespace fs = std::filesystem;

namespace {

std::vector<double> curve(model::DecoderModel& m, int steps) {
  const fs::path golden = fs::path(YAK_GOLDEN_DIR);
  const auto tb = testing_util::golden_train_batch(golden / "train" / "llama_mha_f32" / "batch.json");
  model::LoraConfig lc;
  lc.r = 4;
  lc.alpha = 8;
  lc.target_modules = {"all-linear"};
  m.add_lora(lc, 7);
  m.make_lora_trainable();
  train::AdamWConfig cfg;
  cfg.lr = 5e-3;
  train::AdamW opt(m.trainable_parameters(), cfg);
  std::vector<double> losses;
  for (int s = 0; s < steps; ++s) {
    opt.zero_grad();
    model::KVCache cache(m.config(), tb.slots, tb.longest);
    ag::Tape tape;
    ag::Var loss;
    {
      ag::TapeScope scope(tape);
      loss = ag::scale(ag::cross_entropy_sum(m.forward_var(tb.batch, cache), tb.targets),
                       1.0f / static_cast<float>(tb.n_targets));
    }
    losses.push_back(loss.f32()[0]);
    tape.backward(loss);
    opt.step(cfg.lr);
  }
  return losses;
}

}  // namespace

TEST(QLora, LossCurveTracksLoraOnTheDequantizedBase) {
  const fs::path golden = fs::path(YAK_GOLDEN_DIR) / "models" / "llama_mha_f32";
  // The same architecture with hidden 256 / intermediate 512 and random weights.
  const fs::path wide = fs::temp_directory_path() / ("yak-qlora-" + std::to_string(::getpid()));
  Json cfg = read_json_file(golden / "config.json");
  cfg["hidden_size"] = 256;
  cfg["intermediate_size"] = 512;
  cfg["head_dim"] = 64;
  model::init_random_checkpoint(cfg, wide, 3);
  for (const fs::path& base : {golden, wide}) {
    auto q = model::DecoderModel::load(base);
    q->convert_projections(DType::Q4_K);
    auto f = model::DecoderModel::load(base);
    f->convert_projections(DType::Q4_K);
    f->convert_projections(DType::F32);
    int q4k = 0;
    for (const auto& p : q->parameters()) q4k += p.var.value().dtype() == DType::Q4_K;
    EXPECT_EQ(q4k, base == wide ? 2 * 7 : 0) << base;  // every projection of both layers where rows allow
    const auto lq = curve(*q, 8), lf = curve(*f, 8);
    double worst = 0;
    for (size_t i = 0; i < lq.size(); ++i) worst = std::max(worst, std::fabs(lq[i] - lf[i]) / lf[i]);
    std::printf("[qlora] %s: losses %.5f -> %.5f (QLoRA) vs %.5f -> %.5f (LoRA, dequantized); worst relative gap %.2e\n",
                base.filename().c_str(), lq.front(), lq.back(), lf.front(), lf.back(), worst);
    EXPECT_LE(worst, 1e-6) << base;  // rounding only (measured 2.5e-7 and 8.8e-8)
    EXPECT_LT(lq.back(), lq.front() * 0.95) << base;  // and it learns
  }
  fs::remove_all(wide);
}
