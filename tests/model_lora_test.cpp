// LoRA against PEFT (tests/golden/lora): logits with the adapter, gradients of every adapter
// tensor (and modules_to_save copies), merged weights; save/load round trip; adapters that do not
// fit their base are refused.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "yak/autograd/functions.h"
#include "yak/base/json.h"
#include "yak/io/safetensors.h"
#include "yak/model/decoder.h"
#include "model_batches.h"

using namespace yak;
using testing_util::logits_of;
namespace fs = std::filesystem;

namespace {

const fs::path kGolden = fs::path(YAK_GOLDEN_DIR);

std::vector<std::string> adapters() {
  std::vector<std::string> out;
  if (fs::exists(kGolden / "lora"))
    for (auto& e : fs::directory_iterator(kGolden / "lora"))
      if (fs::exists(e.path() / "golden.json")) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

double max_diff(const Tensor& a, const Tensor& b) {
  double d = 0;
  for (int64_t i = 0; i < a.numel(); ++i)
    d = std::max(d, std::fabs(static_cast<double>(a.data<float>()[i]) - b.data<float>()[i]));
  return d;
}

class PeftParity : public ::testing::TestWithParam<std::string> {};

TEST_P(PeftParity, LogitsGradsAndMerge) {
  const fs::path dir = kGolden / "lora" / GetParam();
  Json g = read_json_file(dir / "golden.json");
  const std::string base_name = g["model"].get<std::string>();
  const fs::path base = kGolden / "models" / base_name;
  auto ref_logits = io::SafetensorsFile::open(dir / "logits.safetensors");
  std::vector<std::vector<int32_t>> prompts;
  for (auto& p : g["prompts"]) prompts.push_back(p.get<std::vector<int32_t>>());

  // Logits with the adapter applied.
  auto m = model::DecoderModel::load(base);
  m->load_lora(dir);
  double worst = 0;
  for (size_t i = 0; i < prompts.size(); ++i)
    worst = std::max(worst, max_diff(logits_of(*m, prompts[i]), ref_logits->get("logits_" + std::to_string(i))));
  EXPECT_LE(worst, 1e-4);

  // Gradients of the trainable tensors for the training golden's batch.
  const auto tb = testing_util::golden_train_batch(kGolden / "train" / base_name / "batch.json");
  m->make_lora_trainable();
  model::KVCache cache(m->config(), tb.slots, tb.longest);
  ag::Tape tape;
  ag::Var loss;
  {
    ag::TapeScope scope(tape);
    loss = ag::scale(ag::cross_entropy_sum(m->forward_var(tb.batch, cache), tb.targets),
                     1.0f / static_cast<float>(tb.n_targets));
  }
  EXPECT_NEAR(loss.f32()[0], g["loss"].get<double>(), 1e-5 * g["loss"].get<double>());
  tape.backward(loss);
  auto ref_grads = io::SafetensorsFile::open(dir / "grads.safetensors");
  auto trainable = m->trainable_parameters();
  EXPECT_EQ(trainable.size(), ref_grads->entries().size());
  for (auto& p : trainable) {
    ASSERT_TRUE(ref_grads->has(p.name)) << p.name;
    Tensor want = ref_grads->get(p.name);
    double scale = 0, d = 0;
    for (int64_t i = 0; i < want.numel(); ++i) {
      scale = std::max(scale, std::fabs(static_cast<double>(want.data<float>()[i])));
      d = std::max(d, std::fabs(static_cast<double>(want.data<float>()[i]) - p.var.grad_f32()[i]));
    }
    EXPECT_LE(d, 1e-4 * std::max(scale, 1e-8)) << p.name;
  }

  // Save and reload gives the same logits; merging gives PEFT's merged weights.
  const fs::path tmp = fs::temp_directory_path() / ("yak-lora-" + GetParam() + std::to_string(::getpid()));
  m->save_lora(tmp);
  auto m2 = model::DecoderModel::load(base);
  m2->load_lora(tmp);
  EXPECT_LE(max_diff(logits_of(*m2, prompts[2]), ref_logits->get("logits_2")), 1e-4);
  fs::remove_all(tmp);
  m2->merge_lora();
  EXPECT_FALSE(m2->has_lora());
  auto merged = io::SafetensorsFile::open(dir / "merged.safetensors");
  for (auto& p : m2->parameters())
    if (merged->has(p.name)) EXPECT_LE(max_diff(p.var.value().to_f32(), merged->get(p.name)), 1e-5) << p.name;
  EXPECT_LE(max_diff(logits_of(*m2, prompts[2]), ref_logits->get("logits_2")), 1e-4);
  std::printf("[lora parity] %-32s max |logit diff| %.2e\n", GetParam().c_str(), worst);
}

INSTANTIATE_TEST_SUITE_P(Adapters, PeftParity, ::testing::ValuesIn(adapters()),
                         [](const auto& info) { return info.param; });

TEST(Lora, AdapterForAnotherBaseIsRefused) {
  auto m = model::DecoderModel::load(kGolden / "models" / "qwen3_qknorm");
  try {
    m->load_lora(kGolden / "lora" / "llama_mha_f32_all");
    FAIL() << "loaded an adapter made for another base";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("different base"), std::string::npos) << e.what();
  }
}

// A reward model's adapter over a causal LM base (yak train rm --lora_rank): the score head is a
// modules_to_save copy saved in the adapter (PEFT's SEQ_CLS layout), so base + adapter scores as
// the trained model did, and merging keeps the head (yak lora merge --is_rm).
TEST(Lora, RewardModelAdapterCarriesItsScoreHead) {
  const auto base = kGolden / "models" / "qwen2_chat";
  auto m = model::DecoderModel::load(base);
  ASSERT_FALSE(m->has_score_head());
  model::LoraConfig lc;
  lc.r = 4;
  lc.target_modules = {"all-linear"};
  lc.modules_to_save = {"score"};
  m->add_lora(lc, 3);
  m->add_score_head(1, 7);
  // Non-zero adapters, as after training.
  for (auto& p : m->lora_parameters()) {
    float* x = p.var.value().data<float>();
    for (int64_t i = 0; i < p.var.value().numel(); ++i) x[i] += 0.01f * static_cast<float>((i * 7919) % 13 - 6);
  }
  const std::vector<int32_t> ids = {5, 17, 99, 230, 4};
  auto score = [&](model::DecoderModel& x) {
    model::KVCache cache(x.config(), 1, static_cast<int64_t>(ids.size()));
    model::Batch b;
    for (size_t t = 0; t < ids.size(); ++t) b.ids.push_back(ids[t]), b.pos.push_back(static_cast<int32_t>(t)), b.slot.push_back(0);
    b.logits_for.push_back(static_cast<int32_t>(ids.size() - 1));
    return static_cast<double>(x.forward_scores(b, cache).value().data<float>()[0]);
  };
  const double want = score(*m);
  const auto dir = fs::temp_directory_path() / ("yak_rm_lora_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  m->save_lora(dir);
  const Json cfg = read_json_file(dir / "adapter_config.json");
  EXPECT_EQ(cfg["task_type"], "SEQ_CLS");
  EXPECT_TRUE(io::SafetensorsFile::open(dir / "adapter_model.safetensors")->has("base_model.model.score.weight"));
  auto again = model::DecoderModel::load(base);
  again->load_lora(dir);
  ASSERT_TRUE(again->has_score_head());
  EXPECT_NEAR(score(*again), want, 1e-6);
  again->merge_lora();
  EXPECT_NEAR(score(*again), want, 1e-4) << "merged";
  fs::remove_all(dir);
}

TEST(Lora, BadConfigsNameTheField) {
  model::LoraConfig c;
  c.target_modules = {"qkv_proj"};
  EXPECT_THROW(c.validate("x"), Error);
  c.target_modules = {"q_proj"};
  c.r = 0;
  EXPECT_THROW(c.validate("x"), Error);
  Json j = {{"peft_type", "LORA"}, {"r", 4}, {"target_modules", {"q_proj"}}, {"use_dora", true}};
  EXPECT_THROW(model::LoraConfig::from_peft_json(j, "adapter_config.json"), Error);
}

}  // namespace
