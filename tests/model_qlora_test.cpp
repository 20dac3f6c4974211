// QLoRA (--load_in_4bit): with the frozen projections kept quantized, an adapter's logits, loss and
// gradients equal those of the same adapter over the dequantized f32 weights (whose LoRA math
// model_lora_test holds to PEFT): the quantized forward and the dx through dequantized tiles
// compute the f32 product of the dequantized weights. Checked for Q4_K (rows falling back to Q4_0
// where they are not whole 256-blocks, as on these tiny models), Q4_0 and Q8_0.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "yak/autograd/functions.h"
#include "yak/base/json.h"
#include "yak/model/decoder.h"
#include "model_batches.h"

using namespace yak;
namespace fs = std::filesystem;

namespace {

const fs::path kGolden = fs::path(YAK_GOLDEN_DIR);

struct Outcome {
  Tensor logits;  // last prompt, every position
  double loss = 0;
  std::map<std::string, std::vector<float>> grads;
};

Outcome run(model::DecoderModel& m) {
  Outcome r;
  // The training golden's two sequences: prefill-sized (more than 8 rows).
  const auto tb = testing_util::golden_train_batch(kGolden / "train" / "llama_mha_f32" / "batch.json");
  m.make_lora_trainable();
  model::KVCache cache(m.config(), tb.slots, tb.longest);
  ag::Tape tape;
  ag::Var loss, logits;
  {
    ag::TapeScope scope(tape);
    logits = m.forward_var(tb.batch, cache);
    loss = ag::scale(ag::cross_entropy_sum(logits, tb.targets), 1.0f / static_cast<float>(tb.n_targets));
  }
  r.logits = logits.value().clone();
  r.loss = loss.f32()[0];
  tape.backward(loss);
  for (auto& p : m.trainable_parameters()) {
    const float* g = p.var.grad_f32();
    r.grads[p.name].assign(g, g + p.var.value().numel());
  }
  return r;
}

double rel_diff(const float* a, const float* b, size_t n) {
  double d = 0, s = 0;
  for (size_t i = 0; i < n; ++i) {
    d = std::max(d, std::fabs(static_cast<double>(a[i]) - b[i]));
    s = std::max(s, std::fabs(static_cast<double>(b[i])));
  }
  return d / std::max(s, 1e-12);
}

}  // namespace

TEST(QLora, QuantizedBaseEqualsTheDequantizedBase) {
  const fs::path base = kGolden / "models" / "llama_mha_f32";
  const fs::path adapter = kGolden / "lora" / "llama_mha_f32_all";
  for (DType t : {DType::Q4_K, DType::Q4_0, DType::Q8_0}) {
    auto q = model::DecoderModel::load(base);
    const auto [before, after] = q->convert_projections(t);
    EXPECT_LT(after * 3, before) << dtype_name(t) << ": quantized projections should be far smaller";
    auto f = model::DecoderModel::load(base);
    f->convert_projections(t);
    f->convert_projections(DType::F32);  // the same values, dequantized exactly
    q->load_lora(adapter);
    f->load_lora(adapter);
    const Outcome rq = run(*q), rf = run(*f);
    EXPECT_LE(rel_diff(rq.logits.data<float>(), rf.logits.data<float>(), static_cast<size_t>(rq.logits.numel())), 1e-5)
        << dtype_name(t);
    EXPECT_NEAR(rq.loss, rf.loss, 1e-5 * rf.loss) << dtype_name(t);
    ASSERT_EQ(rq.grads.size(), rf.grads.size());
    ASSERT_GE(rq.grads.size(), 2u * 7 * 2);  // every projection's A and B in both layers
    for (const auto& [name, g] : rf.grads)
      EXPECT_LE(rel_diff(rq.grads.at(name).data(), g.data(), g.size()), 1e-4) << dtype_name(t) << " " << name;
    // The quantized base still differs from the original weights (it is really quantized).
    auto o = model::DecoderModel::load(base);
    o->load_lora(adapter);
    EXPECT_GT(std::fabs(run(*o).loss - rq.loss), 1e-7) << dtype_name(t);
  }
}
