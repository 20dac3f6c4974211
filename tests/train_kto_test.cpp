// KTO on unpaired feedback made from the generated preferences (polite = desirable, rude =
// undesirable, never shown side by side): the policy comes to prefer polite answers on held-out
// pairs, and bad labels are refused with the record named.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "preference_data.h"
#include "yak/base/error.h"
#include "yak/tokenizer/tokenizer.h"
#include "yak/train/dpo_trainer.h"
#include "yak/train/kto_trainer.h"

using namespace yak;
namespace fs = std::filesystem;

namespace {

const fs::path kModel = fs::path(YAK_GOLDEN_DIR) / "models" / "qwen2_chat";

std::vector<train::Record> unpaired(const std::vector<train::Record>& pairs) {
  std::vector<train::Record> out;
  for (size_t i = 0; i < pairs.size(); ++i) {
    const Json& p = pairs[i].value;
    // alternate which side comes first so batches mix labels
    Json a = {{"input", p["prompt"]}, {"output", p["chosen"]}, {"label", true}};
    Json b = {{"input", p["prompt"]}, {"output", p["rejected"]}, {"label", i % 3 == 0 ? Json(0) : Json(false)}};
    if (i % 2) std::swap(a, b);
    out.push_back({a, pairs[i].where});
    out.push_back({b, pairs[i].where});
  }
  return out;
}

TEST(Kto, PolicyLearnsFromUnpairedFeedback) {
  auto tok = tok::load_tokenizer(kModel);
  train::SftOptions so;
  so.max_len = 64;
  auto train_s = train::build_kto_samples(unpaired(testdata::preferences(64, 1)), *tok, nullptr, so, "label");
  auto eval_s = train::build_kto_samples(unpaired(testdata::preferences(32, 2)), *tok, nullptr, so, "label");
  ASSERT_EQ(train_s.size(), 128u);
  size_t good = 0;
  for (auto& s : train_s) good += s.desirable;
  EXPECT_EQ(good, 64u);
  train::PreferenceOptions po;
  po.max_len = 64;
  auto eval_pairs = train::build_preference_pairs(testdata::preferences(32, 2), *tok, nullptr, po);
  auto policy = model::DecoderModel::load(kModel), ref = model::DecoderModel::load(kModel);
  const double before = train::policy_preference(*policy, eval_pairs);
  train::LmTrainOptions o;
  o.pretrain = kModel;
  o.train_batch_size = 8;
  o.micro_train_batch_size = 4;
  o.max_epochs = 3;
  o.learning_rate = 2e-3;
  o.quiet = true;
  train::KtoOptions k;
  auto r = train::train_kto(*policy, *ref, train_s, eval_s, o, k);
  const double after = train::policy_preference(*policy, eval_pairs);
  std::printf("[kto] held-out: reward margin %.3f; policy prefers polite %.2f -> %.2f\n", r.eval_margin, before, after);
  EXPECT_GT(r.eval_margin, 0.0);
  EXPECT_GE(after, before + 0.3);
  o.micro_train_batch_size = 1;  // no mismatched pairs possible
  EXPECT_THROW(train::train_kto(*policy, *ref, train_s, eval_s, o, k), Error);
}

TEST(Kto, BadLabelsAreRefused) {
  auto tok = tok::load_tokenizer(kModel);
  std::vector<train::Record> recs = {{Json{{"input", "hi"}, {"output", "yo"}, {"label", "yes"}}, "f.jsonl:3"}};
  try {
    train::build_kto_samples(recs, *tok, nullptr, {}, "label");
    FAIL() << "a string label must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("f.jsonl:3"), std::string::npos) << e.what();
  }
  recs[0].value.erase("label");
  EXPECT_THROW(train::build_kto_samples(recs, *tok, nullptr, {}, "label"), Error);
}

}  // namespace
