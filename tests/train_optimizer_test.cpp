// AdamW + clipping + schedules against torch.optim.AdamW, clip_grad_norm_ and transformers'
// get_scheduler over five real training steps of tiny models (tests/golden/train), with and without
// gradient accumulation; cross-entropy edge cases against torch.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "yak/autograd/functions.h"
#include "yak/base/json.h"
#include "yak/io/safetensors.h"
#include "yak/train/lm_loss.h"
#include "yak/train/optimizer.h"

using namespace yak;
namespace fs = std::filesystem;

namespace {

const fs::path kTrain = fs::path(YAK_GOLDEN_DIR) / "train";

TEST(LrSchedule, MatchesTransformers) {
  Json g = read_json_file(kTrain / "schedules.json");
  const int64_t warmup = g["num_warmup_steps"], total = g["num_training_steps"];
  for (auto& [name, s] : g["schedules"].items()) {
    double min_ratio = s["kwargs"].value("min_lr_rate", 0.0);
    train::LrSchedule sched(name, warmup, total, min_ratio);
    for (size_t k = 0; k < s["multiplier"].size(); ++k)
      EXPECT_NEAR(sched.multiplier(static_cast<int64_t>(k)), s["multiplier"][k].get<double>(), 1e-12)
          << name << " step " << k;
  }
  EXPECT_THROW(train::LrSchedule("triangle", 1, 2), Error);
}

struct FiveSteps {
  std::vector<double> loss, grad_norm, lr;
  std::vector<model::NamedParam> params;
};

// Five optimizer steps as the golden describes; micro = sequences per forward/backward.
FiveSteps train_five(const Json& g, size_t micro) {
  auto model = model::DecoderModel::load(fs::path(YAK_GOLDEN_DIR) / "models" / g["model"].get<std::string>());
  model->make_trainable();
  const auto& o = g["optimizer"];
  train::AdamWConfig cfg{o["lr"], o["betas"][0], o["betas"][1], o["eps"], o["weight_decay"]};
  train::AdamW opt(model->parameters(), cfg);
  const auto& s = g["scheduler"];
  train::LrSchedule sched(s["name"], s["num_warmup_steps"], s["num_training_steps"],
                          s["scheduler_specific_kwargs"].value("min_lr_rate", 0.0));
  FiveSteps run;
  int64_t step = 0;
  for (const auto& b : g["batches"]) {
    std::vector<train::LmSequence> seqs;
    for (size_t i = 0; i < b["sequences"].size(); ++i)
      seqs.push_back({b["sequences"][i].get<std::vector<int32_t>>(), b["labels"][i].get<std::vector<int32_t>>()});
    const int64_t n_total = train::count_targets(seqs);
    double loss = 0;
    for (size_t m0 = 0; m0 < seqs.size(); m0 += micro) {
      std::vector<train::LmSequence> part(seqs.begin() + m0, seqs.begin() + std::min(seqs.size(), m0 + micro));
      size_t longest = 0;
      for (auto& p : part) longest = std::max(longest, p.ids.size());
      model::KVCache cache(model->config(), static_cast<int64_t>(part.size()), static_cast<int64_t>(longest));
      ag::Tape tape;
      ag::Var l;
      {
        ag::TapeScope scope(tape);
        l = ag::scale(train::lm_loss(*model, part, cache).sum, 1.0f / static_cast<float>(n_total));
      }
      loss += l.f32()[0];
      tape.backward(l);
    }
    run.loss.push_back(loss);
    run.grad_norm.push_back(train::clip_grad_norm(opt.params(), g["grad_clip"]["max_norm"].get<double>()));
    const double lr = cfg.lr * sched.multiplier(step++);
    run.lr.push_back(lr);
    opt.step(lr);
    opt.zero_grad();
  }
  run.params = model->parameters();
  return run;
}

class GoldenAdamW : public ::testing::TestWithParam<std::tuple<std::string, size_t>> {};

TEST_P(GoldenAdamW, FiveStepsMatchTorch) {
  const auto& [name, micro] = GetParam();
  Json g = read_json_file(kTrain / name / "adamw.json");
  auto want = io::SafetensorsFile::open(kTrain / name / "adamw_final.safetensors");
  FiveSteps run = train_five(g, micro);
  for (size_t k = 0; k < g["steps"].size(); ++k) {
    const auto& st = g["steps"][k];
    EXPECT_NEAR(run.loss[k], st["loss"].get<double>(), 2e-5 * std::fabs(st["loss"].get<double>())) << "step " << k + 1;
    EXPECT_NEAR(run.grad_norm[k], st["grad_norm"].get<double>(), 1e-4 * st["grad_norm"].get<double>())
        << "step " << k + 1;
    EXPECT_NEAR(run.lr[k], st["lr"].get<double>(), 1e-12) << "step " << k + 1;
  }
  double worst = 0;
  std::string worst_name;
  for (auto& p : run.params) {
    Tensor w = want->get(p.name);
    double d = 0;
    for (int64_t i = 0; i < w.numel(); ++i)
      d = std::max(d, std::fabs(static_cast<double>(w.data<float>()[i]) - p.var.f32()[i]));
    if (d > worst) worst = d, worst_name = p.name;
    // k_proj.bias has an exactly zero true gradient (softmax ignores a shift shared by all keys), so
    // its ~1e-8 gradients are rounding noise that Adam's 1/sqrt(v) scales up: measured 2.5e-5 there,
    // < 1e-6 everywhere else.
    EXPECT_LE(d, p.name.find("k_proj.bias") != std::string::npos ? 1e-4 : 2e-6) << p.name;
  }
  std::printf("[adamw parity] %-20s micro-batch %zu: max |weight diff| after 5 steps %.2e (%s)\n", name.c_str(), micro,
              worst, worst_name.c_str());
}

INSTANTIATE_TEST_SUITE_P(Goldens, GoldenAdamW,
                         ::testing::Combine(::testing::Values("llama_gqa_tied_f32", "qwen2_bias_tied"),
                                            ::testing::Values(size_t{3}, size_t{1})),
                         [](const auto& info) {
                           return std::get<0>(info.param) + "_micro" + std::to_string(std::get<1>(info.param));
                         });

TEST(CrossEntropy, EdgeCasesMatchTorch) {
  Json g = read_json_file(kTrain / "ce.json");
  const int64_t V = g["vocab"];
  for (const auto& c : g["cases"]) {
    auto flat = c["logits"];
    const int64_t n = static_cast<int64_t>(flat.size());
    Tensor t = Tensor::empty({n, V});
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < V; ++j) t.data<float>()[r * V + j] = flat[r][j].get<float>();
    ag::Var logits(t, true);
    auto targets = c["targets"].get<std::vector<int32_t>>();
    ag::Tape tape;
    ag::Var loss;
    {
      ag::TapeScope scope(tape);
      loss = ag::cross_entropy_sum(logits, targets, g["ignore_index"].get<int32_t>());
    }
    tape.backward(loss);
    EXPECT_NEAR(loss.f32()[0], c["loss_sum_f64"].get<double>(), 1e-4) << c["name"];
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < V; ++j)
        EXPECT_NEAR(logits.grad_f32()[r * V + j], c["grad_f64"][r][j].get<double>(), 1e-6) << c["name"];
  }
}

}  // namespace
