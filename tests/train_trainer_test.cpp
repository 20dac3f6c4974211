// The training loop end to end on a tiny Qwen2 with a real tokenizer: the loss falls, a run resumed
// from a checkpoint reproduces the uninterrupted run exactly, a half-written checkpoint is ignored,
// and the saved Hugging Face folder loads back with the trained weights.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "yak/base/json.h"
#include "yak/io/safetensors.h"
#include "yak/ops/ops.h"
#include "yak/tokenizer/tokenizer.h"
#include "yak/train/checkpoint.h"
#include "yak/train/lm_trainer.h"
#include "yak/train/metrics.h"

using namespace yak;
namespace fs = std::filesystem;

namespace {

const fs::path kModel = fs::path(YAK_GOLDEN_DIR) / "models" / "qwen2_chat";

fs::path temp_dir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("yak-trainer-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// "a + b = c" facts: the prompt part is masked, the answer is the target.
std::vector<train::Sample> addition_samples(const tok::Tokenizer& tok, int n) {
  std::vector<train::Sample> out;
  for (int i = 0; i < n; ++i) {
    int a = i % 7, b = (i * 3) % 5;
    auto prompt = tok.encode(std::to_string(a) + "+" + std::to_string(b) + "=", false);
    auto answer = tok.encode(std::to_string(a + b) + "\n", false);
    train::Sample s;
    s.ids = prompt;
    s.ids.insert(s.ids.end(), answer.begin(), answer.end());
    s.loss_mask.assign(prompt.size(), 0);
    s.loss_mask.resize(s.ids.size(), 1);
    s.where = "generated:" + std::to_string(i);
    out.push_back(std::move(s));
  }
  return out;
}

train::LmTrainOptions base_options(const fs::path& dir) {
  train::LmTrainOptions o;
  o.pretrain = kModel;
  o.train_batch_size = 4;
  o.micro_train_batch_size = 2;
  o.max_epochs = 3;
  o.learning_rate = 3e-3;
  o.lr_scheduler = "cosine_with_min_lr";
  o.lr_warmup_ratio = 0.1;
  o.seed = 7;
  o.max_len = 64;
  o.quiet = true;
  o.ckpt_path = dir / "ckpt";
  return o;
}

TEST(LmTrainer, LossFallsAndSavedFolderLoads) {
  auto dir = temp_dir("learn");
  auto tok = tok::load_tokenizer(kModel);
  auto train = addition_samples(*tok, 32);
  auto eval = addition_samples(*tok, 8);
  auto model = model::DecoderModel::load(kModel);
  auto o = base_options(dir);
  o.max_epochs = 6;
  o.save_path = dir / "out";
  o.metrics_path = dir / "metrics.jsonl";
  o.tensorboard_dir = dir / "tb";
  const double before = train::evaluate_loss(*model, eval, 4, 64);
  auto r = train::train_lm(*model, train, eval, o);
  ASSERT_EQ(r.step_losses.size(), 48u);
  EXPECT_LT(r.eval_loss, 0.5 * before) << "eval loss " << before << " -> " << r.eval_loss;
  // The folder on disk holds the trained weights: same eval loss after reloading.
  auto back = model::DecoderModel::load(dir / "out");
  EXPECT_NEAR(train::evaluate_loss(*back, eval, 4, 64), r.eval_loss, 1e-5);
  for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"})
    EXPECT_TRUE(fs::exists(dir / "out" / f)) << f;
  // Metrics: one JSON line per step plus the evaluation.
  std::ifstream in(dir / "metrics.jsonl");
  int lines = 0;
  for (std::string line; std::getline(in, line);) {
    Json j = Json::parse(line);
    EXPECT_TRUE(j.contains("step"));
    ++lines;
  }
  EXPECT_EQ(lines, 49);
  EXPECT_FALSE(fs::is_empty(dir / "tb"));
  fs::remove_all(dir);
}

TEST(LmTrainer, ResumeReproducesTheUninterruptedRun) {
  ops::set_num_threads(1);
  auto tok = tok::load_tokenizer(kModel);
  auto train = addition_samples(*tok, 16);
  auto straight_dir = temp_dir("straight"), resumed_dir = temp_dir("resumed");
  auto m1 = model::DecoderModel::load(kModel);
  auto straight = train::train_lm(*m1, train, {}, base_options(straight_dir));
  ASSERT_EQ(straight.step_losses.size(), 12u);

  auto o = base_options(resumed_dir);
  o.save_steps = 5;
  o.max_steps = 7;  // "killed" after step 7; the last checkpoint is step 5
  auto m2 = model::DecoderModel::load(kModel);
  train::train_lm(*m2, train, {}, o);
  // A save that died half-way leaves a temporary folder; it must be ignored.
  fs::create_directories(o.ckpt_path / ".global_step_10.tmp-999");
  std::ofstream(o.ckpt_path / ".global_step_10.tmp-999" / "model.safetensors") << "partial";
  o.max_steps = -1;
  o.load_checkpoint = true;
  auto m3 = model::DecoderModel::load(kModel);
  auto resumed = train::train_lm(*m3, train, {}, o);
  EXPECT_EQ(resumed.first_step, 5);
  ASSERT_EQ(resumed.step_losses.size(), 7u);
  for (size_t k = 0; k < resumed.step_losses.size(); ++k)
    EXPECT_EQ(resumed.step_losses[k], straight.step_losses[k + 5]) << "step " << k + 6;
  auto p1 = m1->parameters(), p3 = m3->parameters();
  for (size_t k = 0; k < p1.size(); ++k)
    EXPECT_EQ(std::memcmp(p1[k].var.f32(), p3[k].var.f32(), p1[k].var.value().nbytes()), 0) << p1[k].name;
  ops::set_num_threads(0);
  fs::remove_all(straight_dir);
  fs::remove_all(resumed_dir);
}

TEST(LmTrainer, BadOptionsAreRefused) {
  auto tok = tok::load_tokenizer(kModel);
  auto train = addition_samples(*tok, 4);
  auto model = model::DecoderModel::load(kModel);
  auto o = base_options(temp_dir("bad"));
  o.train_batch_size = 3;
  EXPECT_THROW(train::train_lm(*model, train, {}, o), Error);
  o.train_batch_size = 8;
  o.micro_train_batch_size = 8;
  EXPECT_THROW(train::train_lm(*model, train, {}, o), Error);  // smaller than one batch
  o.train_batch_size = 2;
  o.micro_train_batch_size = 1;
  o.lr_scheduler = "sawtooth";
  EXPECT_THROW(train::train_lm(*model, train, {}, o), Error);
}

TEST(Metrics, Crc32cCheckValue) {
  // The CRC catalogue's check value for CRC-32C (Castagnoli) over "123456789".
  EXPECT_EQ(train::crc32c("123456789", 9), 0xE3069283u);
}

}  // namespace

namespace {

// A bf16 checkpoint trains on f32 master weights and is saved back in bf16.
TEST(LmTrainer, Bf16CheckpointKeepsItsDtype) {
  const fs::path src = fs::path(YAK_GOLDEN_DIR) / "models" / "llama_bf16";
  Json g = read_json_file(src / "golden.json");
  std::vector<train::Sample> data;
  for (auto& p : g["prompts"]) {
    train::Sample s;
    s.ids = p.get<std::vector<int32_t>>();
    s.loss_mask.assign(s.ids.size(), 1);
    data.push_back(s);
  }
  auto dir = temp_dir("bf16");
  auto model = model::DecoderModel::load(src);
  EXPECT_EQ(model->weight_dtype(), DType::BF16);
  train::LmTrainOptions o;
  o.pretrain = src;
  o.save_path = dir / "out";
  o.train_batch_size = 3;
  o.micro_train_batch_size = 3;
  o.max_epochs = 2;
  o.learning_rate = 1e-2;
  o.quiet = true;
  auto r = train::train_lm(*model, data, {}, o);
  ASSERT_EQ(r.step_losses.size(), 2u);
  for (auto& p : model->parameters()) EXPECT_EQ(p.var.value().dtype(), DType::F32) << p.name;  // masters
  auto saved = io::SafetensorsFile::open(dir / "out" / "model.safetensors");
  for (auto& [name, e] : saved->entries()) EXPECT_EQ(e.dtype, DType::BF16) << name;
  auto back = model::DecoderModel::load(dir / "out");
  EXPECT_EQ(back->weight_dtype(), DType::BF16);
  fs::remove_all(dir);
}

}  // namespace
