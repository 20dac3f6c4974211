// Chinese-LLaMA-Alpaca-2's NTK rope scaling (--alpha): the inverse frequencies equal the ones its
// published patch computes (tests/golden/rope/ntk_alpha.json, tools/golden/make_rope_ntk_goldens.py)
// for numbers and for "auto" below, at and past the trained context; bad values and rope types it
// does not combine with are refused.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "yak/base/error.h"
#include "yak/base/json.h"
#include "yak/model/rope.h"

using namespace yak;

TEST(RopeNtkAlpha, InverseFrequenciesEqualThePublishedFormula) {
  const Json g = read_json_file(std::filesystem::path(YAK_GOLDEN_DIR) / "rope" / "ntk_alpha.json");
  int checked = 0, auto_past_context = 0;
  for (const auto& c : g.at("cases")) {
    io::RopeConfig r;
    r.theta = c.at("theta").get<double>();
    const int64_t dim = c.at("head_dim").get<int64_t>(), max_pos = c.at("max_position_embeddings").get<int64_t>();
    const int64_t seq = c.at("seq_len").get<int64_t>();
    const std::string alpha = c.at("alpha").get<std::string>();
    model::Rope rope(model::with_ntk_alpha(r, alpha, dim), dim, max_pos);
    const auto& got = rope.table(seq).inv_freq;
    const auto want = c.at("inv_freq").get<std::vector<double>>();
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i)  // float32 on both sides; pow may differ in the last bits
      ASSERT_NEAR(got[i], want[i], 1e-6 * want[i]) << "alpha " << alpha << " dim " << dim << " seq " << seq << " i " << i;
    ++checked;
    auto_past_context += alpha == "auto" && seq > max_pos;
  }
  EXPECT_EQ(checked, 24);
  EXPECT_EQ(auto_past_context, 9);
}

TEST(RopeNtkAlpha, BadValuesAndRopeTypesAreRefused) {
  io::RopeConfig r;
  for (const char* bad : {"", "0", "-2", "abc", "2x", "nan", "inf"})
    EXPECT_THROW(model::with_ntk_alpha(r, bad, 128), Error) << bad;
  io::RopeConfig lin;
  lin.type = io::RopeType::Linear;
  lin.factor = 4;
  EXPECT_NO_THROW(model::with_ntk_alpha(lin, "2", 128));  // base raised under the linear positions
  try {
    model::with_ntk_alpha(lin, "auto", 128);
    ADD_FAILURE() << "auto over linear accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("linear"), std::string::npos) << e.what();
  }
  io::RopeConfig yarn;
  yarn.type = io::RopeType::Yarn;
  EXPECT_THROW(model::with_ntk_alpha(yarn, "2", 128), Error);
}
