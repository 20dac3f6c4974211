// Sliding-window perplexity and KL against transformers (tests/golden/ppl, by
// tools/golden/make_ppl_golden.py): the same windows score the same tokens, the summed losses
// agree within 1e-4 relative, and KL(qwen2_bpe || llama_bpe) and top-1 agreement likewise.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "yak/base/error.h"
#include "yak/base/json.h"
#include "yak/infer/perplexity.h"
#include "yak/tokenizer/tokenizer.h"

namespace yak {
namespace {
namespace fs = std::filesystem;

const fs::path kGolden = fs::path(YAK_GOLDEN_DIR);

TEST(Perplexity, MatchesTransformers) {
  const Json g = read_json_file(kGolden / "ppl" / "expected.json");
  const auto ids = g.at("ids").get<std::vector<int32_t>>();
  // yak's tokenizer gives transformers' ids for the shipped text
  const auto tok = tok::load_tokenizer(kGolden / "models" / "qwen2_bpe");
  EXPECT_EQ(tok->encode(read_text_file(kGolden / "ppl" / "text.txt"), false), ids);
  auto qwen = model::DecoderModel::load(kGolden / "models" / "qwen2_bpe");
  auto llama = model::DecoderModel::load(kGolden / "models" / "llama_bpe");
  for (const auto& c : g.at("cases")) {
    infer::PerplexityOptions o;
    o.ctx = c.at("ctx").get<int64_t>();
    o.stride = c.at("stride").get<int64_t>();
    o.segment = 17;  // several segments per window
    SCOPED_TRACE("ctx " + std::to_string(o.ctx) + " stride " + std::to_string(o.stride));
    for (auto [name, m] : {std::pair{"qwen2_bpe", qwen.get()}, std::pair{"llama_bpe", llama.get()}}) {
      const auto r = infer::perplexity(*m, ids, o);
      const auto& want = c.at(name);
      EXPECT_EQ(r.scored, want.at("scored").get<int64_t>()) << name;
      if (o.stride < o.ctx) {  // overlapping windows score every token but the text's first, once
        EXPECT_EQ(r.scored, static_cast<int64_t>(ids.size()) - 1);
      }
      EXPECT_NEAR(r.nll_sum / want.at("nll_sum").get<double>(), 1.0, 1e-4) << name;
      EXPECT_NEAR(r.ppl / want.at("ppl").get<double>(), 1.0, 1e-4) << name;
    }
    const auto k = infer::perplexity(*llama, ids, o, qwen.get());
    const auto& want = c.at("kl_llama_vs_qwen2");
    EXPECT_NEAR(k.kl_mean / want.at("kl_mean").get<double>(), 1.0, 1e-4);
    EXPECT_NEAR(k.top1_agreement, want.at("top1").get<double>(), 1.0 / static_cast<double>(k.scored) + 1e-12);
    EXPECT_NEAR(k.reference_ppl / c.at("qwen2_bpe").at("ppl").get<double>(), 1.0, 1e-4);
    // a model against itself: no divergence (the reference log-probs are kept as floats), full agreement
    const auto self = infer::perplexity(*qwen, ids, o, qwen.get());
    EXPECT_NEAR(self.kl_mean, 0.0, 1e-6);
    EXPECT_DOUBLE_EQ(self.top1_agreement, 1.0);
  }
}

TEST(Perplexity, RefusesBadSettings) {
  auto m = model::DecoderModel::load(kGolden / "models" / "qwen2_bpe");
  infer::PerplexityOptions o;
  o.ctx = 16;
  o.stride = 32;
  EXPECT_THROW(infer::perplexity(*m, {1, 2, 3}, o), Error);
  o.stride = 8;
  EXPECT_THROW(infer::perplexity(*m, {1}, o), Error);
  EXPECT_THROW(infer::perplexity(*m, {1, 99999}, o), Error);
}

}  // namespace
}  // namespace yak
