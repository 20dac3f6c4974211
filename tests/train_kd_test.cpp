// Knowledge distillation: a small random student pulled towards a teacher's token distributions
// (KL(teacher || student) on held-out text falls), kd_coef 0 is plain SFT step for step, and a
// teacher with another vocabulary is refused.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "preference_data.h"
#include "yak/base/error.h"
#include "yak/base/json.h"
#include "yak/model/init.h"
#include "yak/tokenizer/tokenizer.h"
#include "yak/train/lm_loss.h"
#include "yak/train/lm_trainer.h"

using namespace yak;
namespace fs = std::filesystem;

namespace {

const fs::path kTeacher = fs::path(YAK_GOLDEN_DIR) / "models" / "qwen2_chat";

fs::path make_student(const fs::path& dir, int64_t vocab) {
  fs::create_directories(dir);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(kTeacher / f, dir / f, fs::copy_options::overwrite_existing);
  Json cfg = {{"architectures", {"LlamaForCausalLM"}},
              {"model_type", "llama"},
              {"vocab_size", vocab},
              {"hidden_size", 32},
              {"intermediate_size", 64},
              {"num_hidden_layers", 1},
              {"num_attention_heads", 2},
              {"num_key_value_heads", 1},
              {"max_position_embeddings", 128},
              {"rms_norm_eps", 1e-6},
              {"tie_word_embeddings", true},
              {"initializer_range", 0.02}};
  model::init_random_checkpoint(cfg, dir, 3);
  return dir;
}

std::vector<train::Sample> data(const tok::Tokenizer& tok, int n, uint64_t seed) {
  std::vector<train::Record> recs;
  for (auto& r : testdata::preferences(n, seed))
    recs.push_back({Json{{"input", r.value["prompt"]}, {"output", r.value["chosen"]}}, r.where});
  train::SftOptions so;
  so.max_len = 64;
  return train::build_sft_dataset(recs, tok, nullptr, so).samples;
}

// Mean over response tokens of KL(teacher || student).
double kl_to_teacher(model::DecoderModel& student, model::DecoderModel& teacher, const std::vector<train::Sample>& s) {
  double kl = 0;
  int64_t n = 0;
  for (const auto& x : s) {
    model::Batch b;
    for (size_t t = 0; t < x.ids.size(); ++t) {
      b.ids.push_back(x.ids[t]);
      b.pos.push_back(static_cast<int32_t>(t));
      b.slot.push_back(0);
    }
    b = train::all_positions(b);
    model::KVCache c1(student.config(), 1, static_cast<int64_t>(x.ids.size())),
        c2(teacher.config(), 1, static_cast<int64_t>(x.ids.size()));
    Tensor ls = student.forward(b, c1), lt = teacher.forward(b, c2);
    const int64_t V = ls.dim(1);
    for (size_t t = 0; t + 1 < x.ids.size(); ++t) {
      if (!x.loss_mask[t + 1]) continue;
      const float* a = lt.data<float>() + t * V;
      const float* q = ls.data<float>() + t * V;
      double ma = -1e30, mq = -1e30, za = 0, zq = 0;
      for (int64_t j = 0; j < V; ++j) ma = std::max<double>(ma, a[j]), mq = std::max<double>(mq, q[j]);
      for (int64_t j = 0; j < V; ++j) za += std::exp(a[j] - ma), zq += std::exp(q[j] - mq);
      for (int64_t j = 0; j < V; ++j) {
        const double lp = a[j] - ma - std::log(za), lq = q[j] - mq - std::log(zq);
        kl += std::exp(lp) * (lp - lq);
      }
      ++n;
    }
  }
  return kl / static_cast<double>(n);
}

train::LmTrainOptions options(const fs::path& student) {
  train::LmTrainOptions o;
  o.pretrain = student;
  o.train_batch_size = 8;
  o.micro_train_batch_size = 4;
  o.max_epochs = 4;
  o.learning_rate = 5e-3;
  o.max_len = 64;
  o.quiet = true;
  return o;
}

TEST(Kd, StudentMovesTowardsTheTeacher) {
  const fs::path dir = fs::temp_directory_path() / "yak-kd-test";
  auto tok = tok::load_tokenizer(kTeacher);
  auto teacher = model::DecoderModel::load(kTeacher);
  make_student(dir, teacher->config().vocab_size);
  auto train_s = data(*tok, 64, 1), eval_s = data(*tok, 16, 2);
  auto student = model::DecoderModel::load(dir);
  const double before = kl_to_teacher(*student, *teacher, eval_s);
  auto o = options(dir);
  o.teacher = teacher.get();
  o.kd_coef = 1.0;  // distillation only
  o.max_epochs = 10;
  train::train_lm(*student, train_s, {}, o);
  const double after = kl_to_teacher(*student, *teacher, eval_s);
  std::printf("[kd] held-out KL(teacher || student) %.3f -> %.3f\n", before, after);
  EXPECT_LT(after, 0.7 * before);

  // kd_coef 0: the same steps as plain SFT.
  auto a = model::DecoderModel::load(dir), b = model::DecoderModel::load(dir);
  auto o0 = options(dir);
  o0.max_epochs = 1;
  auto plain = train::train_lm(*a, train_s, {}, o0);
  o0.teacher = teacher.get();
  o0.kd_coef = 0.0;
  auto with_teacher = train::train_lm(*b, train_s, {}, o0);
  ASSERT_EQ(plain.step_losses.size(), with_teacher.step_losses.size());
  for (size_t i = 0; i < plain.step_losses.size(); ++i)
    EXPECT_NEAR(plain.step_losses[i], with_teacher.step_losses[i], 1e-6) << "step " << i;

  // A teacher of another vocabulary is refused.
  const fs::path other = fs::temp_directory_path() / "yak-kd-test-other";
  make_student(other, teacher->config().vocab_size + 7);
  auto wrong = model::DecoderModel::load(other);
  o0.teacher = wrong.get();
  EXPECT_THROW(train::train_lm(*b, train_s, {}, o0), Error);
  fs::remove_all(dir);
  fs::remove_all(other);
}

}  // namespace
