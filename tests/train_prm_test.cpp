// Process reward model: a causal LM learns to put "+" after good steps and "-" after bad ones at
// each placeholder (hard labels, held-out solutions), soft labels train too, and malformed
// records are refused with the record named.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "yak/base/error.h"
#include "yak/tokenizer/tokenizer.h"
#include "yak/train/prm_trainer.h"

using namespace yak;
namespace fs = std::filesystem;

namespace {

const fs::path kModel = fs::path(YAK_GOLDEN_DIR) / "models" / "qwen2_chat";

train::PrmOptions options() {
  train::PrmOptions o;
  o.placeholder_token = "#";  // a single token of the test tokenizer
  o.max_len = 128;
  return o;
}

// Solutions of 2-4 steps; a step is good ("we add the numbers") or bad ("we guess wildly").
std::vector<train::Record> solutions(int n, uint64_t seed, bool soft) {
  std::mt19937 rng(static_cast<uint32_t>(seed));
  const char* good[] = {"we add the numbers", "we check the sum", "we carry the ten"};
  const char* bad[] = {"we guess wildly", "we skip a digit", "we drop the sign"};
  std::vector<train::Record> out;
  for (int i = 0; i < n; ++i) {
    std::string text = "Question " + std::to_string(i) + ".";
    Json labels = Json::array();
    const int steps = 2 + static_cast<int>(rng() % 3);
    for (int s = 0; s < steps; ++s) {
      const bool ok = rng() % 2;
      text += std::string(" ") + (ok ? good[rng() % 3] : bad[rng() % 3]) + " #";
      if (soft)
        labels.push_back(ok ? 0.9 : 0.2);
      else
        labels.push_back(ok ? "+" : "-");
    }
    out.push_back({Json{{"input", text}, {"value", labels}}, "gen:" + std::to_string(i + 1)});
  }
  return out;
}

train::LmTrainOptions train_options() {
  train::LmTrainOptions o;
  o.pretrain = kModel;
  o.train_batch_size = 8;
  o.micro_train_batch_size = 4;
  o.max_epochs = 3;
  o.learning_rate = 2e-3;
  o.quiet = true;
  return o;
}

TEST(Prm, LearnsStepLabels) {
  auto tok = tok::load_tokenizer(kModel);
  auto o = options();
  auto v = train::prm_vocab(*tok, o);
  auto tr = train::build_prm_samples(solutions(64, 1, false), *tok, o);
  auto ev = train::build_prm_samples(solutions(24, 2, false), *tok, o);
  ASSERT_EQ(tr.size(), 64u);
  auto m = model::DecoderModel::load(kModel);
  auto r = train::train_prm(*m, tr, ev, v, train_options());
  std::printf("[prm] held-out step accuracy %.2f -> %.2f; loss %.3f -> %.3f\n", r.accuracy_before, r.eval_accuracy,
              r.losses.step_losses.front(), r.losses.step_losses.back());
  EXPECT_GE(r.eval_accuracy, 0.9);
  EXPECT_LT(r.losses.step_losses.back(), r.losses.step_losses.front());
}

TEST(Prm, SoftLabelsTrain) {
  auto tok = tok::load_tokenizer(kModel);
  auto o = options();
  auto v = train::prm_vocab(*tok, o);
  auto tr = train::build_prm_samples(solutions(64, 3, true), *tok, o);
  auto ev = train::build_prm_samples(solutions(24, 4, true), *tok, o);
  auto m = model::DecoderModel::load(kModel);
  auto r = train::train_prm(*m, tr, ev, v, train_options());
  // The likelier token follows the soft label's side of 0.5.
  EXPECT_GE(r.eval_accuracy, 0.9);
  EXPECT_LT(r.losses.step_losses.back(), r.losses.step_losses.front());
}

TEST(Prm, BadRecordsAreRefused) {
  auto tok = tok::load_tokenizer(kModel);
  auto o = options();
  std::vector<train::Record> recs = {{Json{{"input", "one # two #"}, {"value", {"+"}}}, "p.jsonl:7"}};
  try {
    train::build_prm_samples(recs, *tok, o);
    FAIL() << "a label count that differs from the step count must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("p.jsonl:7"), std::string::npos) << e.what();
  }
  recs[0].value["value"] = {"+", "?"};
  EXPECT_THROW(train::build_prm_samples(recs, *tok, o), Error);
  recs[0].value["value"] = {0.5, 1.5};
  EXPECT_THROW(train::build_prm_samples(recs, *tok, o), Error);
  o.placeholder_token = "ки";  // three tokens here
  EXPECT_THROW(train::prm_vocab(*tok, o), Error);
}

}  // namespace
