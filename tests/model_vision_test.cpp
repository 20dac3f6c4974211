// Qwen3-VL against transformers (tools/golden/make_vl_goldens.py): a tiny random
// Qwen3VLForConditionalGeneration over two images of different grids and text around them —
// the vision tower's embeddings, last hidden states, merger and DeepStack outputs, the M-RoPE
// positions, the logits of the whole sequence, the logits of a text-only prompt and the greedy
// continuation decoded through the KV cache.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "yak/base/error.h"
#include "yak/base/json.h"
#include "yak/io/safetensors.h"
#include "yak/model/decoder.h"
#include "yak/model/vision.h"

using namespace yak;

namespace {

const std::filesystem::path kDir = std::filesystem::path(YAK_GOLDEN_DIR) / "vision" / "qwen3_vl";

float max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  if (a.shape() != b.shape()) return INFINITY;
  Tensor x = a.contiguous(), y = b.contiguous();
  float m = 0;
  for (int64_t i = 0; i < x.numel(); ++i) m = std::max(m, std::fabs(x.data<float>()[i] - y.data<float>()[i]));
  return m;
}

float max_abs(const Tensor& a) {
  float m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::fabs(a.data<float>()[i]));
  return m;
}

std::vector<int32_t> ints(const Tensor& t) {
  return {t.data<int32_t>(), t.data<int32_t>() + t.numel()};
}

struct Golden {
  std::unique_ptr<io::SafetensorsFile> file = io::SafetensorsFile::open(kDir / "vl.safetensors");
  std::vector<model::PatchGrid> grids;
  Golden() {
    Tensor g = file->get("grid_thw");
    for (int64_t i = 0; i < g.dim(0); ++i)
      grids.push_back({g.data<int32_t>()[3 * i], g.data<int32_t>()[3 * i + 1], g.data<int32_t>()[3 * i + 2]});
  }
  Tensor get(const std::string& n) const { return file->get(n); }
};

int32_t argmax(const float* row, int64_t n) {
  int32_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (row[i] > row[best]) best = static_cast<int32_t>(i);
  return best;
}

}  // namespace

TEST(Qwen3VLConfig, ReadsBothConfigsAndRefusesTheMixtureOfExperts) {
  auto cfg = io::ModelConfig::load(kDir);
  EXPECT_EQ(cfg.arch, io::Arch::Qwen3VL);
  EXPECT_TRUE(cfg.qk_norm);
  EXPECT_EQ(cfg.weight_prefix, "model.language_model.");
  ASSERT_TRUE(cfg.vision.has_value());
  EXPECT_EQ(cfg.vision->depth, 3);
  EXPECT_EQ(cfg.vision->deepstack_visual_indexes, (std::vector<int64_t>{0, 2}));
  EXPECT_EQ(cfg.rope.mrope_section, (std::vector<int64_t>{4, 2, 2}));
  EXPECT_TRUE(cfg.rope.mrope_interleaved);
  EXPECT_EQ(cfg.vision->image_token_id, 295);
  Json j = Json::parse(R"({"architectures": ["Qwen3VLMoeForConditionalGeneration"], "text_config": {}})");
  try {
    io::ModelConfig::from_json(j, "config.json");
    FAIL() << "the MoE variant was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("mixture-of-experts"), std::string::npos) << e.what();
  }
  Json bad = Json::parse(R"({"architectures": ["Qwen3VLForConditionalGeneration"]})");
  EXPECT_THROW(io::ModelConfig::from_json(bad, "config.json"), Error);
}

TEST(Qwen3VLVision, TowerMatchesTransformers) {
  Golden g;
  auto cfg = io::ModelConfig::load(kDir);
  auto store = io::WeightStore::open_dir(kDir);
  model::VisionModel vis(*cfg.vision, store);
  Tensor patches = g.get("pixel_values");
  const float e = max_abs_diff(vis.embed(patches, g.grids).value(), g.get("vision_embed"));
  EXPECT_LE(e, 1e-5f) << "patch + position embedding";
  model::VisionOutput out = vis.forward(patches, g.grids);
  const float h = max_abs_diff(vis.last_hidden().value(), g.get("vision_hidden"));
  const float m = max_abs_diff(out.embeds.value(), g.get("image_embeds"));
  EXPECT_LE(h, 1e-4f * std::max(1.0f, max_abs(g.get("vision_hidden")))) << "last hidden states";
  EXPECT_LE(m, 1e-4f * std::max(1.0f, max_abs(g.get("image_embeds")))) << "merger";
  ASSERT_EQ(out.deepstack.size(), 2u);
  float ds = 0;
  for (size_t k = 0; k < out.deepstack.size(); ++k)
    ds = std::max(ds, max_abs_diff(out.deepstack[k].value(), g.get("deepstack." + std::to_string(k))));
  EXPECT_LE(ds, 1e-4f * std::max(1.0f, max_abs(g.get("deepstack.0"))));
  std::printf("[parity] qwen3_vl vision: embed %.3g, hidden %.3g, merger %.3g, deepstack %.3g\n", e, h, m, ds);
}

TEST(Qwen3VLVision, MropePositionsMatchGetRopeIndex) {
  Golden g;
  auto cfg = io::ModelConfig::load(kDir);
  const auto ids = ints(g.get("input_ids"));
  int64_t delta = 0;
  const auto pos = model::mrope_positions(ids, g.grids, *cfg.vision, &delta);
  const Tensor ref = g.get("position_ids");  // [3, T]
  const int64_t T = static_cast<int64_t>(ids.size());
  int mismatches = 0;
  for (int64_t t = 0; t < T; ++t)
    for (int a = 0; a < 3; ++a) mismatches += pos[3 * t + a] != ref.data<int32_t>()[a * T + t];
  EXPECT_EQ(mismatches, 0);
  EXPECT_EQ(delta, g.get("rope_delta").data<int32_t>()[0]);
  // Image tokens without an image, and an image without its tokens, are errors.
  EXPECT_THROW(model::mrope_positions(ids, std::span<const model::PatchGrid>(g.grids.data(), 1), *cfg.vision, nullptr),
               Error);
  std::vector<int32_t> text(ids.begin(), ids.begin() + 3);
  EXPECT_THROW(model::mrope_positions(text, g.grids, *cfg.vision, nullptr), Error);
}

TEST(Qwen3VLModel, LogitsAndGreedyMatchTransformers) {
  Golden g;
  auto model = model::DecoderModel::load(kDir);
  const auto& cfg = model->config();
  auto store = io::WeightStore::open_dir(kDir);
  model::VisionModel vis(*cfg.vision, store);
  model::VisionOutput feats = vis.forward(g.get("pixel_values"), g.grids);

  const auto ids = ints(g.get("input_ids"));
  const int64_t T = static_cast<int64_t>(ids.size()), V = cfg.vocab_size;
  int64_t delta = 0;
  model::VisualInput visual;
  for (int64_t t = 0; t < T; ++t)
    if (ids[t] == cfg.vision->image_token_id) visual.rows.push_back(static_cast<int32_t>(t));
  visual.embeds = feats.embeds;
  visual.deepstack = feats.deepstack;
  model::Batch b;
  b.ids = ids;
  for (int64_t t = 0; t < T; ++t) {
    b.pos.push_back(static_cast<int32_t>(t));
    b.slot.push_back(0);
    b.logits_for.push_back(static_cast<int32_t>(t));
  }
  b.mrope_pos = model::mrope_positions(ids, g.grids, *cfg.vision, &delta);
  b.visual = &visual;
  const int64_t n_new = g.get("greedy").numel();
  model::KVCache cache(cfg, 1, T + n_new);
  Tensor logits = model->forward(b, cache);
  const Tensor ref = g.get("logits");
  const float d = max_abs_diff(logits, ref);
  EXPECT_LE(d, 1e-4f * std::max(1.0f, max_abs(ref))) << "logits with images";

  // Without the images' features the logits differ: the features are really used.
  {
    model::KVCache c2(cfg, 1, T);
    model::Batch plain = b;
    plain.visual = nullptr;
    EXPECT_GT(max_abs_diff(model->forward(plain, c2), ref), 1e-2f);
  }

  // Greedy decoding through the cache: token at cache position T + i has rope position T + i + delta.
  std::vector<int32_t> greedy;
  int32_t next = argmax(logits.data<float>() + (T - 1) * V, V);
  for (int64_t i = 0; i < n_new; ++i) {
    greedy.push_back(next);
    if (i + 1 == n_new) break;
    model::Batch s;
    const int32_t p = static_cast<int32_t>(T + i), rp = static_cast<int32_t>(T + i + delta);
    s.ids = {next};
    s.pos = {p};
    s.slot = {0};
    s.logits_for = {0};
    s.mrope_pos = {rp, rp, rp};
    Tensor o = model->forward(s, cache);
    next = argmax(o.data<float>(), V);
  }
  EXPECT_EQ(greedy, ints(g.get("greedy")));

  // A text-only prompt: one position per token, as a Qwen3 model.
  const auto text = ints(g.get("text_ids"));
  model::Batch tb;
  tb.ids = text;
  for (size_t t = 0; t < text.size(); ++t) {
    tb.pos.push_back(static_cast<int32_t>(t));
    tb.slot.push_back(0);
    tb.logits_for.push_back(static_cast<int32_t>(t));
  }
  model::KVCache c3(cfg, 1, static_cast<int64_t>(text.size()));
  const float dt = max_abs_diff(model->forward(tb, c3), g.get("text_logits"));
  EXPECT_LE(dt, 1e-4f * std::max(1.0f, max_abs(g.get("text_logits"))));
  std::printf("[parity] qwen3_vl logits with images %.3g, text only %.3g, greedy %zu/%lld tokens\n", d, dt,
              greedy.size(), static_cast<long long>(n_new));
}

TEST(Qwen3VLImages, PreprocessingMatchesTheImageProcessor) {
  const auto images = std::filesystem::path(YAK_GOLDEN_DIR) / "vision" / "images";
  auto golden = io::SafetensorsFile::open(images / "images.safetensors");
  std::ifstream jf(images / "images.json");
  const auto names = Json::parse(jf)["files"].get<std::vector<std::string>>();
  auto cfg = io::ModelConfig::load(kDir);
  const auto pc = model::ImageProcessorConfig::load(kDir, *cfg.vision);
  EXPECT_EQ(pc.min_pixels, 256);
  EXPECT_EQ(pc.max_pixels, 1536);
  int64_t values = 0, differ = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    model::PatchGrid grid;
    const Tensor px = model::preprocess_image(io::read_image(images / names[i]), pc, &grid);
    const Tensor ref = golden->get("pixel_values." + std::to_string(i));
    const Tensor g = golden->get("grid." + std::to_string(i));
    EXPECT_EQ(grid.t, g.data<int32_t>()[0]);
    EXPECT_EQ(grid.h, g.data<int32_t>()[1]) << names[i];
    EXPECT_EQ(grid.w, g.data<int32_t>()[2]) << names[i];
    ASSERT_EQ(px.shape(), ref.shape()) << names[i];
    for (int64_t k = 0; k < ref.numel(); ++k) differ += px.data<float>()[k] != ref.data<float>()[k];
    values += ref.numel();
  }
  EXPECT_EQ(differ, 0);
  std::printf("[parity] image processor: %lld pixel values of %zu images, %lld differ\n",
              static_cast<long long>(values), names.size(), static_cast<long long>(differ));
}

TEST(Qwen3VLImages, SmartResize) {
  // Worked by hand from transformers' smart_resize (factor 28, Qwen2-VL's defaults).
  EXPECT_EQ(model::smart_resize(100, 200, 28, 56 * 56, 28 * 28 * 1280), (std::pair<int64_t, int64_t>{112, 196}));
  EXPECT_EQ(model::smart_resize(10, 10, 28, 56 * 56, 28 * 28 * 1280), (std::pair<int64_t, int64_t>{56, 56}));
  // 70 / 8 = 8.75 -> 72, 45 / 8 = 5.625 -> 48, 3456 > 1536: beta = sqrt(3150 / 1536)
  EXPECT_EQ(model::smart_resize(70, 45, 8, 256, 1536), (std::pair<int64_t, int64_t>{48, 24}));
  // round() halves to even: 20 / 8 = 2.5 -> 2, 28 / 8 = 3.5 -> 4
  EXPECT_EQ(model::smart_resize(20, 28, 8, 1, 100000), (std::pair<int64_t, int64_t>{16, 32}));
  EXPECT_THROW(model::smart_resize(1, 201, 8, 1, 100000), Error);
}
