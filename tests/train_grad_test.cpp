// Loss and the gradient of every parameter of tiny LLaMA / Mistral / Qwen2 / Qwen3 models against
// torch autograd through transformers (tests/golden/train), and packed vs one-by-one losses.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "yak/autograd/functions.h"
#include "yak/base/json.h"
#include "yak/io/safetensors.h"
#include "yak/train/lm_loss.h"

using namespace yak;
namespace fs = std::filesystem;

namespace {

const fs::path kTrain = fs::path(YAK_GOLDEN_DIR) / "train";

std::vector<std::string> grad_goldens() {
  std::vector<std::string> out;
  if (fs::exists(kTrain))
    for (auto& e : fs::directory_iterator(kTrain))
      if (fs::exists(e.path() / "grads.safetensors")) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<train::LmSequence> sequences(const Json& j) {
  std::vector<train::LmSequence> out;
  for (size_t i = 0; i < j["sequences"].size(); ++i)
    out.push_back({j["sequences"][i].get<std::vector<int32_t>>(), j["labels"][i].get<std::vector<int32_t>>()});
  return out;
}

int64_t longest(const std::vector<train::LmSequence>& s) {
  size_t n = 0;
  for (auto& x : s) n = std::max(n, x.ids.size());
  return static_cast<int64_t>(n);
}

class GoldenGrads : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenGrads, MatchTorch) {
  Json g = read_json_file(kTrain / GetParam() / "batch.json");
  auto ref = io::SafetensorsFile::open(kTrain / GetParam() / "grads.safetensors");
  auto model = model::DecoderModel::load(fs::path(YAK_GOLDEN_DIR) / "models" / g["model"].get<std::string>());
  model->make_trainable();
  auto seqs = sequences(g);
  model::KVCache cache(model->config(), static_cast<int64_t>(seqs.size()), longest(seqs));
  ag::Tape tape;
  ag::Var loss;
  int64_t n = 0;
  {
    ag::TapeScope scope(tape);
    auto l = train::lm_loss(*model, seqs, cache);
    n = l.n_targets;
    loss = ag::scale(l.sum, 1.0f / static_cast<float>(n));
  }
  EXPECT_EQ(n, g["n_targets"].get<int64_t>());
  EXPECT_NEAR(loss.f32()[0], g["loss"].get<double>(), 1e-5 * std::fabs(g["loss"].get<double>()));
  tape.backward(loss);
  auto params = model->parameters();
  EXPECT_EQ(params.size(), ref->entries().size());
  double worst = 0;
  for (auto& p : params) {
    ASSERT_TRUE(ref->has(p.name)) << p.name;
    Tensor want = ref->get(p.name);
    ASSERT_EQ(want.shape(), p.var.value().shape()) << p.name;
    ASSERT_TRUE(p.var.has_grad()) << p.name;
    double scale = 0, diff = 0;
    for (int64_t i = 0; i < want.numel(); ++i) {
      scale = std::max(scale, std::fabs(static_cast<double>(want.data<float>()[i])));
      diff = std::max(diff, std::fabs(static_cast<double>(want.data<float>()[i]) - p.var.grad_f32()[i]));
    }
    const double rel = diff / std::max(scale, 1e-12);
    worst = std::max(worst, rel);
    EXPECT_LE(rel, 1e-4) << p.name << " max|diff| " << diff << " max|grad| " << scale;
  }
  std::printf("[grad parity] %-20s loss %.7f (torch %.7f), worst per-tensor max|diff|/max|grad| %.2e\n",
              GetParam().c_str(), loss.f32()[0], g["loss"].get<double>(), worst);
}

INSTANTIATE_TEST_SUITE_P(Models, GoldenGrads, ::testing::ValuesIn(grad_goldens()),
                         [](const auto& info) { return info.param; });

TEST(LmLoss, PackedEqualsOneByOne) {
  Json g = read_json_file(kTrain / "qwen3_qknorm" / "batch.json");
  auto model = model::DecoderModel::load(fs::path(YAK_GOLDEN_DIR) / "models" / "qwen3_qknorm");
  auto seqs = sequences(g);
  model::KVCache cache(model->config(), static_cast<int64_t>(seqs.size()), longest(seqs));
  const double packed = train::lm_loss(*model, seqs, cache).sum.f32()[0];
  double separate = 0;
  for (auto& s : seqs) {
    model::KVCache c1(model->config(), 1, static_cast<int64_t>(s.ids.size()));
    separate += train::lm_loss(*model, {s}, c1).sum.f32()[0];
  }
  EXPECT_NEAR(packed, separate, 1e-5 * std::fabs(separate));
}

}  // namespace

namespace {

// Recomputing each layer in the backward (gradient checkpointing) gives the same gradients.
TEST(GradientCheckpointing, SameGradients) {
  Json g = read_json_file(kTrain / "qwen3_qknorm" / "batch.json");
  auto seqs = sequences(g);
  std::vector<std::vector<float>> grads[2];
  for (int ckpt = 0; ckpt < 2; ++ckpt) {
    auto model = model::DecoderModel::load(fs::path(YAK_GOLDEN_DIR) / "models" / "qwen3_qknorm");
    model->make_trainable();
    model->set_gradient_checkpointing(ckpt == 1);
    model::KVCache cache(model->config(), static_cast<int64_t>(seqs.size()), longest(seqs));
    ag::Tape tape;
    ag::Var loss;
    {
      ag::TapeScope scope(tape);
      loss = train::lm_loss(*model, seqs, cache).sum;
    }
    tape.backward(loss);
    for (auto& p : model->parameters()) grads[ckpt].emplace_back(p.var.grad_f32(), p.var.grad_f32() + p.var.numel());
  }
  ASSERT_EQ(grads[0].size(), grads[1].size());
  for (size_t k = 0; k < grads[0].size(); ++k)
    for (size_t i = 0; i < grads[0][k].size(); ++i) ASSERT_NEAR(grads[0][k][i], grads[1][k][i], 1e-5f) << k;
}

}  // namespace
