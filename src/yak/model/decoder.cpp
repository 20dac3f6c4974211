#include "yak/model/decoder.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>

#include "yak/base/error.h"
#include "yak/base/thread_pool.h"
#include "yak/ops/cpu/kernels.h"
#include "yak/ops/linear.h"

namespace yak::model {
namespace fs = std::filesystem;

namespace {

class Loader {
 public:
  Loader(const io::WeightStore& store, std::string where) : store_(store), where_(std::move(where)) {}

  Tensor weight(const std::string& name, const Shape& shape) const {
    Tensor t = store_.get(name);
    if (t.shape() != shape)
      throw Error(where_ + ": tensor '" + name + "' has shape " + shape_str(t.shape()) + " but config.json implies " +
                  shape_str(shape));
    if (!dtype_info(t.dtype()).is_float || t.dtype() == DType::F64)
      throw Error(where_ + ": tensor '" + name + "' has dtype " + dtype_name(t.dtype()) +
                  " (expected f32, bf16 or f16)");
    return t;
  }
  // Small tensors (norms, biases) are kept as f32 copies.
  Tensor small_f32(const std::string& name, const Shape& shape) const { return weight(name, shape).to_f32(); }
  bool has(const std::string& name) const { return store_.has(name); }

 private:
  const io::WeightStore& store_;
  std::string where_;
};

}  // namespace

std::unique_ptr<DecoderModel> DecoderModel::load(const fs::path& dir) {
  if (!fs::is_directory(dir)) throw Error(dir.string() + ": not a model folder (no config.json)");
  auto cfg = io::ModelConfig::load(dir);
  auto store = io::WeightStore::open_dir(dir);
  return std::make_unique<DecoderModel>(std::move(cfg), std::move(store));
}

DecoderModel::DecoderModel(io::ModelConfig cfg, io::WeightStore store)
    : cfg_(std::move(cfg)), store_(std::move(store)), rope_(cfg_.rope, cfg_.head_dim, cfg_.max_position_embeddings) {
  const int64_t D = cfg_.hidden_size, I = cfg_.intermediate_size, hd = cfg_.head_dim;
  const int64_t qd = cfg_.num_heads * hd, kvd = cfg_.num_kv_heads * hd;
  Loader L(store_, store_.source().string());
  embed_ = L.weight("model.embed_tokens.weight", {cfg_.vocab_size, D});
  final_norm_ = L.small_f32("model.norm.weight", {D});
  if (L.has("lm_head.weight") && !cfg_.tie_word_embeddings) {
    lm_head_ = L.weight("lm_head.weight", {cfg_.vocab_size, D});
  } else if (cfg_.tie_word_embeddings) {
    lm_head_ = embed_;
  } else {
    throw Error(store_.source().string() +
                ": checkpoint has no tensor 'lm_head.weight' and config.json says tie_word_embeddings is false");
  }
  for (int64_t i = 0; i < cfg_.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    LayerWeights w;
    w.attn_norm = L.small_f32(p + "input_layernorm.weight", {D});
    w.q = L.weight(p + "self_attn.q_proj.weight", {qd, D});
    w.k = L.weight(p + "self_attn.k_proj.weight", {kvd, D});
    w.v = L.weight(p + "self_attn.v_proj.weight", {kvd, D});
    w.o = L.weight(p + "self_attn.o_proj.weight", {D, qd});
    if (cfg_.attention_bias) {
      w.q_bias = L.small_f32(p + "self_attn.q_proj.bias", {qd});
      w.k_bias = L.small_f32(p + "self_attn.k_proj.bias", {kvd});
      w.v_bias = L.small_f32(p + "self_attn.v_proj.bias", {kvd});
    }
    if (cfg_.qk_norm) {
      w.q_norm = L.small_f32(p + "self_attn.q_norm.weight", {hd});
      w.k_norm = L.small_f32(p + "self_attn.k_norm.weight", {hd});
    }
    w.mlp_norm = L.small_f32(p + "post_attention_layernorm.weight", {D});
    w.gate = L.weight(p + "mlp.gate_proj.weight", {I, D});
    w.up = L.weight(p + "mlp.up_proj.weight", {I, D});
    w.down = L.weight(p + "mlp.down_proj.weight", {D, I});
    layers_.push_back(std::move(w));
  }
}

int64_t DecoderModel::parameter_count() const {
  int64_t n = 0;
  for (auto& name : store_.names()) n += shape_numel(store_.entry(name).shape);
  return n;
}

std::vector<std::pair<std::string, size_t>> DecoderModel::weight_bytes_by_dtype() const {
  std::map<std::string, size_t> m;
  for (auto& name : store_.names()) {
    auto& e = store_.entry(name);
    m[dtype_name(e.dtype)] += e.end - e.begin;
  }
  return {m.begin(), m.end()};
}

Tensor DecoderModel::forward(const Batch& batch, KVCache& cache) {
  const int64_t T = static_cast<int64_t>(batch.ids.size());
  check(T > 0 && batch.pos.size() == batch.ids.size() && batch.slot.size() == batch.ids.size(),
        "forward: batch ids, positions and slots must have the same non-zero length");
  const int64_t D = cfg_.hidden_size, I = cfg_.intermediate_size, hd = cfg_.head_dim;
  const int64_t H = cfg_.num_heads, KV = cfg_.num_kv_heads, qd = H * hd, kvd = KV * hd;
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  int64_t max_pos = 0;
  for (int64_t t = 0; t < T; ++t) {
    check(batch.ids[t] >= 0 && batch.ids[t] < cfg_.vocab_size, "token id " + std::to_string(batch.ids[t]) +
                                                                   " is outside the vocabulary of " +
                                                                   std::to_string(cfg_.vocab_size));
    check(batch.pos[t] >= 0 && batch.pos[t] < cache.capacity(), "position " + std::to_string(batch.pos[t]) +
                                                                    " exceeds the KV cache capacity " +
                                                                    std::to_string(cache.capacity()));
    check(batch.slot[t] >= 0 && batch.slot[t] < cache.slots(), "sequence slot out of range");
    max_pos = std::max<int64_t>(max_pos, batch.pos[t]);
  }

  Tensor x = Tensor::empty({T, D});
  Tensor h = Tensor::empty({T, D});
  Tensor q = Tensor::empty({T, qd}), k = Tensor::empty({T, kvd}), v = Tensor::empty({T, kvd});
  Tensor att = Tensor::empty({T, qd});
  Tensor g = Tensor::empty({T, I}), u = Tensor::empty({T, I});
  float* X = x.data<float>();
  float* Hn = h.data<float>();

  const size_t erow = dtype_bytes(embed_.dtype(), D);
  for (int64_t t = 0; t < T; ++t)
    convert_to_f32(embed_.dtype(), static_cast<const uint8_t*>(embed_.raw()) + batch.ids[t] * erow, X + t * D, D);

  const RopeTable& table = rope_.table(max_pos + 1);
  std::vector<float> cs(static_cast<size_t>(T * hd));  // per token: cos[hd/2], sin[hd/2]
  for (int64_t t = 0; t < T; ++t) Rope::angles(table, batch.pos[t], &cs[t * hd], &cs[t * hd + hd / 2]);

  auto rows = [&](const std::function<void(int64_t)>& fn) {
    parallel_for(T, 4, [&](int64_t a, int64_t b) {
      for (int64_t t = a; t < b; ++t) fn(t);
    });
  };

  for (int64_t l = 0; l < cfg_.num_layers; ++l) {
    const LayerWeights& w = layers_[l];
    rows([&](int64_t t) { ops::cpu::rms_norm(X + t * D, w.attn_norm.data<float>(), eps, D, Hn + t * D); });
    ops::linear(Hn, T, w.q, &w.q_bias, q.data<float>());
    ops::linear(Hn, T, w.k, &w.k_bias, k.data<float>());
    ops::linear(Hn, T, w.v, &w.v_bias, v.data<float>());
    rows([&](int64_t t) {
      float* qt = q.data<float>() + t * qd;
      float* kt = k.data<float>() + t * kvd;
      const float* c = &cs[t * hd];
      for (int64_t hh = 0; hh < H; ++hh) {
        if (cfg_.qk_norm) ops::cpu::rms_norm(qt + hh * hd, w.q_norm.data<float>(), eps, hd, qt + hh * hd);
        ops::cpu::rope_rotate_half(qt + hh * hd, c, c + hd / 2, hd);
      }
      for (int64_t hh = 0; hh < KV; ++hh) {
        if (cfg_.qk_norm) ops::cpu::rms_norm(kt + hh * hd, w.k_norm.data<float>(), eps, hd, kt + hh * hd);
        ops::cpu::rope_rotate_half(kt + hh * hd, c, c + hd / 2, hd);
      }
      std::copy(kt, kt + kvd, cache.keys(l, batch.slot[t]) + batch.pos[t] * kvd);
      std::copy(v.data<float>() + t * kvd, v.data<float>() + (t + 1) * kvd,
                cache.values(l, batch.slot[t]) + batch.pos[t] * kvd);
    });
    attention(batch, cache, l, q.data<float>(), att.data<float>());
    ops::linear(att.data<float>(), T, w.o, nullptr, Hn);
    for (int64_t i = 0; i < T * D; ++i) X[i] += Hn[i];

    rows([&](int64_t t) { ops::cpu::rms_norm(X + t * D, w.mlp_norm.data<float>(), eps, D, Hn + t * D); });
    ops::linear(Hn, T, w.gate, nullptr, g.data<float>());
    ops::linear(Hn, T, w.up, nullptr, u.data<float>());
    rows([&](int64_t t) {
      ops::cpu::silu_mul(g.data<float>() + t * I, u.data<float>() + t * I, I, g.data<float>() + t * I);
    });
    ops::linear(g.data<float>(), T, w.down, nullptr, Hn);
    for (int64_t i = 0; i < T * D; ++i) X[i] += Hn[i];
  }

  const int64_t n_out = static_cast<int64_t>(batch.logits_for.size());
  Tensor fin = Tensor::empty({n_out, D});
  for (int64_t r = 0; r < n_out; ++r) {
    int32_t t = batch.logits_for[r];
    check(t >= 0 && t < T, "forward: logits_for index out of range");
    ops::cpu::rms_norm(X + t * D, final_norm_.data<float>(), eps, D, fin.data<float>() + r * D);
  }
  Tensor logits = Tensor::empty({n_out, cfg_.vocab_size});
  ops::linear(fin.data<float>(), n_out, lm_head_, nullptr, logits.data<float>());
  return logits;
}

void DecoderModel::attention(const Batch& batch, KVCache& cache, int64_t layer, const float* q, float* out) {
  const int64_t T = static_cast<int64_t>(batch.ids.size());
  const int64_t H = cfg_.num_heads, KV = cfg_.num_kv_heads, hd = cfg_.head_dim;
  const int64_t group = H / KV, kvd = KV * hd;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  parallel_for(T * H, 1, [&](int64_t a, int64_t b) {
    std::vector<float> scores;
    for (int64_t idx = a; idx < b; ++idx) {
      const int64_t t = idx / H, hh = idx % H, kvh = hh / group;
      const int64_t p = batch.pos[t];
      int64_t start = 0;
      if (cfg_.sliding_window && *cfg_.sliding_window > 0 && cfg_.sliding_layers[layer])
        start = std::max<int64_t>(0, p - *cfg_.sliding_window + 1);
      const float* qv = q + t * H * hd + hh * hd;
      const float* K = cache.keys(layer, batch.slot[t]);
      const float* V = cache.values(layer, batch.slot[t]);
      const int64_t n = p - start + 1;
      scores.resize(static_cast<size_t>(n));
      for (int64_t j = 0; j < n; ++j)
        scores[j] = ops::cpu::dot(DType::F32, K + (start + j) * kvd + kvh * hd, qv, hd) * scale;
      ops::cpu::softmax(scores.data(), n);
      float* o = out + t * H * hd + hh * hd;
      std::fill(o, o + hd, 0.0f);
      for (int64_t j = 0; j < n; ++j) {
        const float* vv = V + (start + j) * kvd + kvh * hd;
        const float s = scores[j];
        for (int64_t d = 0; d < hd; ++d) o[d] += s * vv[d];
      }
    }
  });
}

}  // namespace yak::model
