#include "yak/model/vision.h"

#include <algorithm>
#include <cmath>
#include <fstream>

#include "yak/autograd/functions.h"
#include "yak/base/error.h"
#include "yak/model/attention.h"
#include "yak/model/decoder.h"
#include "yak/model/kv_cache.h"
#include "yak/ops/ops.h"

namespace yak::model {
namespace {

constexpr float kNormEps = 1e-6f;

class VisionLoader {
 public:
  VisionLoader(const io::WeightStore& store, std::string prefix) : store_(store), prefix_(std::move(prefix)) {}
  Tensor tensor(const std::string& name, const Shape& shape) const {
    Tensor t = store_.get(prefix_ + name);
    if (t.shape() != shape)
      throw Error(store_.source().string() + ": tensor '" + prefix_ + name + "' has shape " + shape_str(t.shape()) +
                  " but vision_config implies " + shape_str(shape));
    if (!dtype_info(t.dtype()).is_float || t.dtype() == DType::F64)
      throw Error(store_.source().string() + ": tensor '" + prefix_ + name + "' has dtype " +
                  dtype_name(t.dtype()) + " (expected f32, bf16 or f16)");
    return t;
  }
  ag::Var var(const std::string& name, const Shape& shape) const { return ag::Var(tensor(name, shape)); }
  ag::Var small(const std::string& name, const Shape& shape) const { return ag::Var(tensor(name, shape).to_f32()); }

 private:
  const io::WeightStore& store_;
  std::string prefix_;
};

// Where patch `within` of a frame (the processor's 2x2-merge-block order) sits in its h x w grid.
struct RowCol {
  int64_t row, col;
};
RowCol patch_place(int64_t within, int64_t w, int64_t m) {
  const int64_t blocks_w = w / m;
  const int64_t in_col = within % m, in_row = (within / m) % m;
  const int64_t block_col = (within / (m * m)) % blocks_w, block_row = within / (m * m * blocks_w);
  return {block_row * m + in_row, block_col * m + in_col};
}

// Bilinear taps (align_corners) along one axis of `size` patches into a table side of `side`,
// in float32 as transformers computes them.
struct Taps {
  int64_t i0, i1;
  float w0, w1;
};
Taps axis_taps(int64_t index, int64_t size, int64_t side) {
  const float src = static_cast<float>(index) * static_cast<float>(side - 1) /
                    static_cast<float>(std::max<int64_t>(size - 1, 1));
  const float fl = std::floor(src);
  const auto clamp = [&](int64_t v) { return std::clamp<int64_t>(v, 0, side - 1); };
  const float d0 = std::fabs(src - fl - 0.0f), d1 = std::fabs(src - fl - 1.0f);
  return {clamp(static_cast<int64_t>(fl)), clamp(static_cast<int64_t>(fl) + 1), std::max(0.0f, 1.0f - d0),
          std::max(0.0f, 1.0f - d1)};
}

}  // namespace

VisionModel::VisionModel(const io::VisionConfig& cfg, const io::WeightStore& store, const std::string& prefix)
    : cfg_(cfg) {
  const int64_t D = cfg.hidden_size, I = cfg.intermediate_size, m2 = cfg.spatial_merge_size * cfg.spatial_merge_size;
  VisionLoader L(store, prefix);
  patch_w_ = ag::Var(L.tensor("patch_embed.proj.weight", {D, cfg.in_channels, cfg.temporal_patch_size,
                                                          cfg.patch_size, cfg.patch_size})
                         .contiguous()
                         .reshape({D, cfg.patch_values()}));
  patch_b_ = L.small("patch_embed.proj.bias", {D});
  pos_table_ = L.var("pos_embed.weight", {cfg.num_position_embeddings, D});
  for (int64_t i = 0; i < cfg.depth; ++i) {
    const std::string p = "blocks." + std::to_string(i) + ".";
    Block b;
    b.norm1_w = L.small(p + "norm1.weight", {D});
    b.norm1_b = L.small(p + "norm1.bias", {D});
    Tensor qkv = L.tensor(p + "attn.qkv.weight", {3 * D, D});
    Tensor qkv_b = L.tensor(p + "attn.qkv.bias", {3 * D}).to_f32();
    b.q = ag::Var(qkv.slice_rows(0, D));
    b.k = ag::Var(qkv.slice_rows(D, 2 * D));
    b.v = ag::Var(qkv.slice_rows(2 * D, 3 * D));
    b.q_b = ag::Var(qkv_b.slice_rows(0, D));
    b.k_b = ag::Var(qkv_b.slice_rows(D, 2 * D));
    b.v_b = ag::Var(qkv_b.slice_rows(2 * D, 3 * D));
    b.proj = L.var(p + "attn.proj.weight", {D, D});
    b.proj_b = L.small(p + "attn.proj.bias", {D});
    b.norm2_w = L.small(p + "norm2.weight", {D});
    b.norm2_b = L.small(p + "norm2.bias", {D});
    b.fc1 = L.var(p + "mlp.linear_fc1.weight", {I, D});
    b.fc1_b = L.small(p + "mlp.linear_fc1.bias", {I});
    b.fc2 = L.var(p + "mlp.linear_fc2.weight", {D, I});
    b.fc2_b = L.small(p + "mlp.linear_fc2.bias", {D});
    blocks_.push_back(std::move(b));
  }
  auto load_merger = [&](const std::string& p, bool post) {
    Merger mg;
    mg.postshuffle = post;
    const int64_t n = post ? D * m2 : D;
    mg.norm_w = L.small(p + "norm.weight", {n});
    mg.norm_b = L.small(p + "norm.bias", {n});
    mg.fc1 = L.var(p + "linear_fc1.weight", {D * m2, D * m2});
    mg.fc1_b = L.small(p + "linear_fc1.bias", {D * m2});
    mg.fc2 = L.var(p + "linear_fc2.weight", {cfg.out_hidden_size, D * m2});
    mg.fc2_b = L.small(p + "linear_fc2.bias", {cfg.out_hidden_size});
    return mg;
  };
  merger_ = load_merger("merger.", false);
  for (size_t k = 0; k < cfg.deepstack_visual_indexes.size(); ++k)
    deepstack_.push_back(load_merger("deepstack_merger_list." + std::to_string(k) + ".", true));
  // The axial rotary frequencies over half the head: 1 / theta^(2i / (hd/2)), exponent in float32.
  const int64_t spatial = cfg.head_dim() / 2;
  for (int64_t i = 0; i < spatial / 2; ++i) {
    const float e = static_cast<float>(2 * i) / static_cast<float>(spatial);
    inv_freq_.push_back(static_cast<float>(1.0 / std::pow(cfg.rope_theta, static_cast<double>(e))));
  }
}

int64_t VisionModel::parameter_count() const {
  int64_t n = patch_w_.value().numel() + patch_b_.value().numel() + pos_table_.value().numel();
  for (auto& b : blocks_)
    for (const ag::Var* v : {&b.norm1_w, &b.norm1_b, &b.q, &b.k, &b.v, &b.q_b, &b.k_b, &b.v_b, &b.proj, &b.proj_b,
                             &b.norm2_w, &b.norm2_b, &b.fc1, &b.fc1_b, &b.fc2, &b.fc2_b})
      n += v->value().numel();
  auto merger_params = [](const Merger& m) {
    int64_t c = 0;
    for (const ag::Var* v : {&m.norm_w, &m.norm_b, &m.fc1, &m.fc1_b, &m.fc2, &m.fc2_b}) c += v->value().numel();
    return c;
  };
  n += merger_params(merger_);
  for (auto& m : deepstack_) n += merger_params(m);
  return n;
}

void VisionModel::check_input(const Tensor& patches, std::span<const PatchGrid> grids) const {
  const int64_t m = cfg_.spatial_merge_size;
  int64_t total = 0;
  for (const auto& g : grids) {
    if (g.t <= 0 || g.h <= 0 || g.w <= 0 || g.h % m || g.w % m) [[unlikely]]
      throw Error("vision: an image grid of " + std::to_string(g.t) + "x" + std::to_string(g.h) + "x" +
                  std::to_string(g.w) + " patches is not made of whole " + std::to_string(m) + "x" +
                  std::to_string(m) + " merge blocks");
    total += g.patches();
  }
  if (patches.ndim() != 2 || patches.dim(0) != total || patches.dim(1) != cfg_.patch_values() ||
      patches.dtype() != DType::F32) [[unlikely]]
    throw Error("vision: expected f32 patches [" + std::to_string(total) + ", " +
                std::to_string(cfg_.patch_values()) + "], got " + shape_str(patches.shape()));
}

ag::Var VisionModel::embed(const Tensor& patches, std::span<const PatchGrid> grids) const {
  check_input(patches, grids);
  const int64_t N = patches.dim(0), D = cfg_.hidden_size, side = cfg_.grid_side(), m = cfg_.spatial_merge_size;
  ag::Var x = ag::linear(ag::Var(patches), patch_w_, &patch_b_);
  // The learned position table resampled to each grid: four taps per patch, each a row gather
  // scaled by its weight.
  std::vector<int32_t> idx[4];
  Tensor wt[4];
  for (int k = 0; k < 4; ++k) {
    idx[k].resize(static_cast<size_t>(N));
    wt[k] = Tensor::empty({N, D});
  }
  int64_t n = 0;
  for (const auto& g : grids)
    for (int64_t i = 0; i < g.patches(); ++i, ++n) {
      const RowCol rc = patch_place(i % (g.h * g.w), g.w, m);
      const Taps th = axis_taps(rc.row, g.h, side), tw = axis_taps(rc.col, g.w, side);
      const int64_t ids[4] = {th.i0 * side + tw.i0, th.i0 * side + tw.i1, th.i1 * side + tw.i0, th.i1 * side + tw.i1};
      const float ws[4] = {th.w0 * tw.w0, th.w0 * tw.w1, th.w1 * tw.w0, th.w1 * tw.w1};
      for (int k = 0; k < 4; ++k) {
        idx[k][static_cast<size_t>(n)] = static_cast<int32_t>(ids[k]);
        std::fill_n(wt[k].data<float>() + n * D, D, ws[k]);
      }
    }
  ag::Var pos = ag::mul_by(ag::embedding(pos_table_, idx[0]), wt[0]);
  for (int k = 1; k < 4; ++k) pos = ag::add(pos, ag::mul_by(ag::embedding(pos_table_, idx[k]), wt[k]));
  return ag::add(x, pos);
}

Tensor VisionModel::rotary_table(std::span<const PatchGrid> grids) const {
  int64_t N = 0;
  for (const auto& g : grids) N += g.patches();
  const int64_t hd = cfg_.head_dim(), q = hd / 4, m = cfg_.spatial_merge_size;
  Tensor cs = Tensor::empty({N, hd});  // per patch: cos[hd/2] (rows' then columns') | sin[hd/2]
  int64_t n = 0;
  for (const auto& g : grids)
    for (int64_t i = 0; i < g.patches(); ++i, ++n) {
      const RowCol rc = patch_place(i % (g.h * g.w), g.w, m);
      float* cos = cs.data<float>() + n * hd;
      float* sin = cos + hd / 2;
      for (int64_t f = 0; f < q; ++f) {
        const float ar = static_cast<float>(rc.row) * inv_freq_[static_cast<size_t>(f)];
        const float ac = static_cast<float>(rc.col) * inv_freq_[static_cast<size_t>(f)];
        cos[f] = static_cast<float>(std::cos(static_cast<double>(ar)));
        sin[f] = static_cast<float>(std::sin(static_cast<double>(ar)));
        cos[q + f] = static_cast<float>(std::cos(static_cast<double>(ac)));
        sin[q + f] = static_cast<float>(std::sin(static_cast<double>(ac)));
      }
    }
  return cs;
}

ag::Var VisionModel::merge(const Merger& mg, const ag::Var& x) const {
  const int64_t m2 = cfg_.spatial_merge_size * cfg_.spatial_merge_size, D = cfg_.hidden_size;
  const int64_t rows = x.dim(0) / m2;
  ag::Var h = mg.postshuffle ? ag::layer_norm(ag::reshape(x, {rows, D * m2}), mg.norm_w, &mg.norm_b, kNormEps)
                             : ag::reshape(ag::layer_norm(x, mg.norm_w, &mg.norm_b, kNormEps), {rows, D * m2});
  h = ag::gelu(ag::linear(h, mg.fc1, &mg.fc1_b), ops::GeluKind::Erf);
  return ag::linear(h, mg.fc2, &mg.fc2_b);
}

VisionOutput VisionModel::forward(const Tensor& patches, std::span<const PatchGrid> grids) const {
  // The tower is frozen: its features enter the decoder as constants, even while it trains.
  ag::NoTapeScope frozen;
  ag::Var x = embed(patches, grids);
  const Tensor cs = rotary_table(grids);
  const int64_t hd = cfg_.head_dim(), H = cfg_.num_heads;
  const ops::GeluKind act = cfg_.hidden_act == "gelu" ? ops::GeluKind::Erf : ops::GeluKind::Tanh;
  // Attention within each frame of each image: a frame is one KV-cache slot.
  Batch vb;
  int64_t frames = 0, longest = 0;
  for (const auto& g : grids)
    for (int64_t f = 0; f < g.t; ++f, ++frames) {
      longest = std::max(longest, g.h * g.w);
      for (int64_t i = 0; i < g.h * g.w; ++i) {
        vb.pos.push_back(static_cast<int32_t>(i));
        vb.slot.push_back(static_cast<int32_t>(frames));
      }
    }
  vb.ids.assign(vb.pos.size(), 0);
  // One cache layer serves every block: each block's attention is done before the next writes.
  io::ModelConfig kc;
  kc.num_layers = 1;
  kc.num_kv_heads = H;
  kc.head_dim = hd;
  kc.hidden_size = cfg_.hidden_size;
  KVCache cache(kc, frames, longest, DType::F32, x.device());
  AttentionShape shape{H, H, hd, 0, false};
  VisionOutput out;
  for (int64_t l = 0; l < cfg_.depth; ++l) {
    const Block& b = blocks_[static_cast<size_t>(l)];
    ag::Var h = ag::layer_norm(x, b.norm1_w, &b.norm1_b, kNormEps);
    ag::Var q = ag::rope(ag::linear(h, b.q, &b.q_b), cs, hd);
    ag::Var k = ag::rope(ag::linear(h, b.k, &b.k_b), cs, hd);
    ag::Var v = ag::linear(h, b.v, &b.v_b);
    ag::Var a = attention(q, k, v, vb, cache, 0, shape);
    x = ag::add(x, ag::linear(a, b.proj, &b.proj_b));
    h = ag::layer_norm(x, b.norm2_w, &b.norm2_b, kNormEps);
    x = ag::add(x, ag::linear(ag::gelu(ag::linear(h, b.fc1, &b.fc1_b), act), b.fc2, &b.fc2_b));
    const auto& ds = cfg_.deepstack_visual_indexes;
    if (auto it = std::find(ds.begin(), ds.end(), l); it != ds.end())
      out.deepstack.push_back(merge(deepstack_[static_cast<size_t>(it - ds.begin())], x));
  }
  last_hidden_ = x;
  out.embeds = merge(merger_, x);
  return out;
}

ImageProcessorConfig ImageProcessorConfig::load(const std::filesystem::path& dir, const io::VisionConfig& vision) {
  ImageProcessorConfig c;
  c.patch_size = vision.patch_size;
  c.temporal_patch_size = vision.temporal_patch_size;
  c.merge_size = vision.spatial_merge_size;
  const auto path = dir / "preprocessor_config.json";
  if (!std::filesystem::exists(path)) return c;
  const std::string w = path.string();
  Json j;
  {
    std::ifstream f(path);
    try {
      j = Json::parse(f);
    } catch (const std::exception& e) {
      throw Error(w + ": not valid JSON (" + e.what() + ")");
    }
  }
  if (!j.is_object()) throw Error(w + ": expected a JSON object");
  c.patch_size = json_get_or<int64_t>(j, "patch_size", c.patch_size, w);
  c.temporal_patch_size = json_get_or<int64_t>(j, "temporal_patch_size", c.temporal_patch_size, w);
  c.merge_size = json_get_or<int64_t>(j, "merge_size", c.merge_size, w);
  if (c.patch_size != vision.patch_size || c.temporal_patch_size != vision.temporal_patch_size ||
      c.merge_size != vision.spatial_merge_size)
    throw Error(w + ": patch_size / temporal_patch_size / merge_size disagree with config.json's vision_config");
  if (auto it = j.find("size"); it != j.end() && it->is_object()) {
    c.min_pixels = json_get_or<int64_t>(*it, "shortest_edge", c.min_pixels, w + ": size");
    c.max_pixels = json_get_or<int64_t>(*it, "longest_edge", c.max_pixels, w + ": size");
  }
  c.min_pixels = json_get_or<int64_t>(j, "min_pixels", c.min_pixels, w);
  c.max_pixels = json_get_or<int64_t>(j, "max_pixels", c.max_pixels, w);
  if (c.min_pixels <= 0 || c.max_pixels < c.min_pixels)
    throw Error(w + ": the pixel bounds must satisfy 0 < shortest_edge <= longest_edge");
  auto triple = [&](const char* key, double* out) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return;
    if (it->is_number()) {
      out[0] = out[1] = out[2] = it->get<double>();
      return;
    }
    if (!it->is_array() || it->size() != 3 || !(*it)[0].is_number() || !(*it)[1].is_number() || !(*it)[2].is_number())
      throw Error(w + ": field '" + key + "' must be a number or a list of 3 numbers");
    for (int i = 0; i < 3; ++i) out[i] = (*it)[i].get<double>();
  };
  triple("image_mean", c.mean);
  triple("image_std", c.std);
  for (double s : c.std)
    if (!(s != 0)) throw Error(w + ": field 'image_std' must not be zero");
  c.rescale_factor = json_get_or<double>(j, "rescale_factor", c.rescale_factor, w);
  c.do_resize = json_get_or<bool>(j, "do_resize", true, w);
  c.do_rescale = json_get_or<bool>(j, "do_rescale", true, w);
  c.do_normalize = json_get_or<bool>(j, "do_normalize", true, w);
  return c;
}

std::pair<int64_t, int64_t> smart_resize(int64_t height, int64_t width, int64_t factor, int64_t min_pixels,
                                         int64_t max_pixels) {
  const double h = static_cast<double>(height), w = static_cast<double>(width), f = static_cast<double>(factor);
  if (std::max(h, w) / std::min(h, w) > 200)
    throw Error("image: the aspect ratio " + std::to_string(width) + "x" + std::to_string(height) +
                " is over 200, which the image processor refuses");
  // Python's round(): halves to even, which nearbyint does in the default rounding mode.
  int64_t hb = static_cast<int64_t>(std::nearbyint(h / f)) * factor;
  int64_t wb = static_cast<int64_t>(std::nearbyint(w / f)) * factor;
  if (hb * wb > max_pixels) {
    const double beta = std::sqrt(h * w / static_cast<double>(max_pixels));
    hb = std::max(factor, static_cast<int64_t>(std::floor(h / beta / f)) * factor);
    wb = std::max(factor, static_cast<int64_t>(std::floor(w / beta / f)) * factor);
  } else if (hb * wb < min_pixels) {
    const double beta = std::sqrt(static_cast<double>(min_pixels) / (h * w));
    hb = static_cast<int64_t>(std::ceil(h * beta / f)) * factor;
    wb = static_cast<int64_t>(std::ceil(w * beta / f)) * factor;
  }
  return {hb, wb};
}

Tensor preprocess_image(const io::Image& img, const ImageProcessorConfig& cfg, PatchGrid* grid) {
  const int64_t p = cfg.patch_size, m = cfg.merge_size, tp = cfg.temporal_patch_size;
  io::Image im = img;
  if (cfg.do_resize) {
    const auto [h, w] = smart_resize(img.height, img.width, p * m, cfg.min_pixels, cfg.max_pixels);
    if (h != img.height || w != img.width) im = io::resize_bicubic(img, w, h);
  }
  if (im.height % (p * m) || im.width % (p * m))
    throw Error("image: " + std::to_string(im.width) + "x" + std::to_string(im.height) +
                " is not made of whole merge blocks of " + std::to_string(p * m) + " pixels (turn do_resize on)");
  // Rescale and normalise fused as the processor does: (x - mean/rescale) / (std/rescale) in float32.
  float sub[3], div[3];
  for (int c = 0; c < 3; ++c) {
    const float k = static_cast<float>(1.0 / cfg.rescale_factor);
    sub[c] = cfg.do_normalize ? static_cast<float>(cfg.mean[c]) * (cfg.do_rescale ? k : 1.0f) : 0.0f;
    div[c] = cfg.do_normalize ? static_cast<float>(cfg.std[c]) * (cfg.do_rescale ? k : 1.0f)
                              : (cfg.do_rescale ? 1.0f / static_cast<float>(cfg.rescale_factor) : 1.0f);
  }
  const int64_t gh = im.height / p, gw = im.width / p, n = gh * gw, row = 3 * tp * p * p;
  Tensor out = Tensor::empty({n, row});
  float* o = out.data<float>();
  int64_t r = 0;
  for (int64_t bh = 0; bh < gh / m; ++bh)
    for (int64_t bw = 0; bw < gw / m; ++bw)
      for (int64_t mh = 0; mh < m; ++mh)
        for (int64_t mw = 0; mw < m; ++mw, ++r) {
          float* dst = o + r * row;
          const int64_t y0 = (bh * m + mh) * p, x0 = (bw * m + mw) * p;
          for (int64_t c = 0; c < 3; ++c)
            for (int64_t t = 0; t < tp; ++t)
              for (int64_t y = 0; y < p; ++y)
                for (int64_t x = 0; x < p; ++x)
                  *dst++ = (static_cast<float>(im.rgb[static_cast<size_t>(((y0 + y) * im.width + x0 + x) * 3 + c)]) -
                            sub[c]) /
                           div[c];
        }
  if (grid) *grid = {1, gh, gw};
  return out;
}

VisualPrompt make_visual_prompt(const VisionModel& vision, std::span<const int32_t> prompt, const Tensor& patches,
                                std::span<const PatchGrid> grids) {
  VisualPrompt v;
  v.mrope_pos = mrope_positions(prompt, grids, vision.config(), &v.rope_delta);
  int64_t row = 0;
  for (const auto& g : grids) {  // FNV-1a over each image's patch values
    uint64_t h = 1469598103934665603ull;
    const auto* b = reinterpret_cast<const uint8_t*>(patches.data<float>() + row * patches.dim(1));
    for (size_t i = 0; i < static_cast<size_t>(g.patches() * patches.dim(1)) * sizeof(float); ++i)
      h = (h ^ b[i]) * 1099511628211ull;
    v.image_keys.push_back(h ^ static_cast<uint64_t>(g.h * 131 + g.w));
    row += g.patches();
  }
  for (size_t t = 0; t < prompt.size(); ++t)
    if (prompt[t] == vision.config().image_token_id) v.rows.push_back(static_cast<int32_t>(t));
  VisionOutput out = vision.forward(patches, grids);
  if (out.embeds.dim(0) != static_cast<int64_t>(v.rows.size())) [[unlikely]]
    throw Error("vision: the images give " + std::to_string(out.embeds.dim(0)) + " features for " +
                std::to_string(v.rows.size()) + " image tokens");
  v.embeds = out.embeds;
  v.deepstack = std::move(out.deepstack);
  return v;
}

std::vector<int32_t> mrope_positions(std::span<const int32_t> ids, std::span<const PatchGrid> grids,
                                     const io::VisionConfig& cfg, int64_t* delta) {
  const int64_t T = static_cast<int64_t>(ids.size()), m = cfg.spatial_merge_size;
  std::vector<int32_t> pos(static_cast<size_t>(3 * T));
  auto put = [&](int64_t t, int64_t a, int64_t b, int64_t c) {
    pos[static_cast<size_t>(3 * t)] = static_cast<int32_t>(a);
    pos[static_cast<size_t>(3 * t + 1)] = static_cast<int32_t>(b);
    pos[static_cast<size_t>(3 * t + 2)] = static_cast<int32_t>(c);
  };
  int64_t cur = 0, mx = -1;
  size_t next_grid = 0;
  for (int64_t t = 0; t < T;) {
    if (ids[static_cast<size_t>(t)] != cfg.image_token_id) {
      put(t, cur, cur, cur);
      mx = std::max(mx, cur);
      ++cur;
      ++t;
      continue;
    }
    if (next_grid >= grids.size()) [[unlikely]]
      throw Error("vision: the prompt has more image tokens than the images given make");
    const PatchGrid& g = grids[next_grid++];
    const int64_t lh = g.h / m, lw = g.w / m, n = g.t * lh * lw;
    if (t + n > T) [[unlikely]]
      throw Error("vision: an image needs " + std::to_string(n) + " image tokens, the prompt has fewer");
    for (int64_t f = 0; f < g.t; ++f)
      for (int64_t r = 0; r < lh; ++r)
        for (int64_t c = 0; c < lw; ++c, ++t) {
          if (ids[static_cast<size_t>(t)] != cfg.image_token_id) [[unlikely]]
            throw Error("vision: an image needs " + std::to_string(n) + " consecutive image tokens");
          put(t, cur + f, cur + r, cur + c);
          mx = std::max({mx, cur + f, cur + r, cur + c});
        }
    cur += std::max(lh, lw);
  }
  if (next_grid != grids.size()) [[unlikely]]
    throw Error("vision: " + std::to_string(grids.size()) + " images given but the prompt holds image tokens for " +
                std::to_string(next_grid));
  if (delta) *delta = mx + 1 - T;
  return pos;
}

}  // namespace yak::model
