// Reward-model training on generated preferences: the pairwise loss teaches a tiny Qwen2 to rank
// the preferred response first on held-out pairs, and the saved folder is a sequence classifier.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "preference_data.h"
#include "yak/base/json.h"
#include "yak/tokenizer/tokenizer.h"
#include "yak/train/rm_trainer.h"

using namespace yak;
namespace fs = std::filesystem;

namespace {

const fs::path kModel = fs::path(YAK_GOLDEN_DIR) / "models" / "qwen2_chat";

using testdata::preferences;

TEST(RewardTraining, LearnsThePreferenceAndSaves) {
  auto tok = tok::load_tokenizer(kModel);
  train::PreferenceOptions po;
  po.max_len = 64;
  auto train_recs = preferences(96, 1), eval_recs = preferences(40, 2);
  auto train_pairs = train::build_preference_pairs(train_recs, *tok, nullptr, po);
  auto eval_pairs = train::build_preference_pairs(eval_recs, *tok, nullptr, po);
  ASSERT_EQ(train_pairs.size(), 96u);
  auto model = model::DecoderModel::load(kModel);
  train::LmTrainOptions o;
  o.pretrain = kModel;
  o.train_batch_size = 8;
  o.micro_train_batch_size = 4;
  o.max_epochs = 3;
  o.learning_rate = 3e-3;
  o.quiet = true;
  const auto dir = fs::temp_directory_path() / ("yak-rm-" + std::to_string(::getpid()));
  o.save_path = dir / "rm";
  auto r = train::train_rm(*model, train_pairs, eval_pairs, o, "sigmoid");
  std::printf("[rm] held-out pairwise accuracy %.2f -> %.2f; final train loss %.3f\n", r.accuracy_before,
              r.eval_accuracy, r.losses.step_losses.back());
  EXPECT_GE(r.eval_accuracy, 0.9);
  EXPECT_LT(r.losses.step_losses.back(), r.losses.step_losses.front());
  auto back = model::DecoderModel::load(dir / "rm");
  EXPECT_TRUE(back->config().sequence_classifier);
  EXPECT_NEAR(train::pair_accuracy(*back, eval_pairs), r.eval_accuracy, 1e-9);
  fs::remove_all(dir);
}

TEST(RewardTraining, BadRecordsAreNamed) {
  auto tok = tok::load_tokenizer(kModel);
  std::vector<train::Record> recs = {{Json{{"prompt", "hi"}, {"chosen", "ok"}}, "pref.jsonl:7"}};
  try {
    train::build_preference_pairs(recs, *tok, nullptr, {});
    FAIL() << "a record without 'rejected' was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("pref.jsonl:7"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("rejected"), std::string::npos) << e.what();
  }
}

}  // namespace
