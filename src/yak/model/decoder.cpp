#include "yak/model/decoder.h"

#include "yak/io/gguf_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <random>

#include "yak/autograd/functions.h"
#include "yak/base/error.h"
#include "yak/model/attention.h"
#include "yak/ops/ops.h"

namespace yak::model {
namespace fs = std::filesystem;

namespace {

class Loader {
 public:
  Loader(const io::WeightStore& store, std::string where) : store_(store), where_(std::move(where)) {}

  ag::Var var(const std::string& name, const Shape& shape) const { return ag::Var(weight(name, shape)); }
  ag::Var small(const std::string& name, const Shape& shape) const { return ag::Var(small_f32(name, shape)); }
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
  if (io::is_gguf_path(dir)) {
    const auto files = io::open_gguf_model(dir);  // one file, or every file of a split model
    auto cfg = io::config_from_gguf(files[0]);
    auto store = io::weights_from_gguf(files, cfg);
    return std::make_unique<DecoderModel>(std::move(cfg), std::move(store));
  }
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
  const std::string& mp = cfg_.weight_prefix;
  embed_ = L.var(mp + "embed_tokens.weight", {cfg_.vocab_size, D});
  final_norm_ = L.small(mp + "norm.weight", {D});
  if (cfg_.sequence_classifier) {
    score_ = L.var("score.weight", {cfg_.num_labels, D});
  } else if (L.has("lm_head.weight") && !cfg_.tie_word_embeddings) {
    lm_head_ = L.var("lm_head.weight", {cfg_.vocab_size, D});
  } else if (cfg_.tie_word_embeddings) {
    lm_head_ = embed_;
  } else {
    throw Error(store_.source().string() +
                ": checkpoint has no tensor 'lm_head.weight' and config.json says tie_word_embeddings is false");
  }
  for (int64_t i = 0; i < cfg_.num_layers; ++i) {
    const std::string p = mp + "layers." + std::to_string(i) + ".";
    LayerWeights w;
    w.attn_norm = L.small(p + "input_layernorm.weight", {D});
    w.q = L.var(p + "self_attn.q_proj.weight", {qd, D});
    w.k = L.var(p + "self_attn.k_proj.weight", {kvd, D});
    w.v = L.var(p + "self_attn.v_proj.weight", {kvd, D});
    w.o = L.var(p + "self_attn.o_proj.weight", {D, qd});
    if (cfg_.attention_bias) {
      w.q_bias = L.small(p + "self_attn.q_proj.bias", {qd});
      w.k_bias = L.small(p + "self_attn.k_proj.bias", {kvd});
      w.v_bias = L.small(p + "self_attn.v_proj.bias", {kvd});
    }
    if (cfg_.qk_norm) {
      w.q_norm = L.small(p + "self_attn.q_norm.weight", {hd});
      w.k_norm = L.small(p + "self_attn.k_norm.weight", {hd});
    }
    w.mlp_norm = L.small(p + "post_attention_layernorm.weight", {D});
    w.gate = L.var(p + "mlp.gate_proj.weight", {I, D});
    w.up = L.var(p + "mlp.up_proj.weight", {I, D});
    w.down = L.var(p + "mlp.down_proj.weight", {D, I});
    layers_.push_back(std::move(w));
  }
  if (cfg_.vision) vision_ = std::make_unique<VisionModel>(*cfg_.vision, store_);
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

void DecoderModel::to(Device device) {
  if (device == this->device()) return;
  auto move = [&](ag::Var& v) {
    if (v.defined()) v = ag::Var(v.value().to(device), v.requires_grad());
  };
  const bool tied = lm_head_.id() == embed_.id();
  move(embed_);
  if (tied)
    lm_head_ = embed_;
  else
    move(lm_head_);
  move(score_);
  move(final_norm_);
  for (auto& w : layers_) {
    for (ag::Var* v : {&w.attn_norm, &w.q, &w.k, &w.v, &w.o, &w.q_bias, &w.k_bias, &w.v_bias, &w.q_norm, &w.k_norm,
                       &w.mlp_norm, &w.gate, &w.up, &w.down})
      move(*v);
    for (auto& a : w.lora) {
      move(a.A);
      move(a.B);
    }
  }
}

void DecoderModel::make_trainable() {
  auto train = [](ag::Var& v) {
    if (!v.defined() || v.requires_grad()) return;
    Tensor master = Tensor::empty(v.value().shape(), DType::F32, v.device());
    ops::convert(v.value(), master);
    v = ag::Var(master, true);
  };
  const bool tied = lm_head_.id() == embed_.id();
  train(embed_);
  lm_head_ = tied ? embed_ : lm_head_;
  if (!tied) train(lm_head_);
  train(score_);
  train(final_norm_);
  for (auto& w : layers_)
    for (ag::Var* v : {&w.attn_norm, &w.q, &w.k, &w.v, &w.o, &w.q_bias, &w.k_bias, &w.v_bias, &w.q_norm, &w.k_norm,
                       &w.mlp_norm, &w.gate, &w.up, &w.down})
      train(*v);
}

std::vector<NamedParam> DecoderModel::parameters() const {
  const std::string& mp = cfg_.weight_prefix;
  std::vector<NamedParam> out = {{mp + "embed_tokens.weight", embed_}};
  for (size_t i = 0; i < layers_.size(); ++i) {
    const auto& w = layers_[i];
    const std::string p = mp + "layers." + std::to_string(i) + ".";
    const std::pair<const char*, const ag::Var*> named[] = {{"input_layernorm.weight", &w.attn_norm},
                                                            {"self_attn.q_proj.weight", &w.q},
                                                            {"self_attn.k_proj.weight", &w.k},
                                                            {"self_attn.v_proj.weight", &w.v},
                                                            {"self_attn.o_proj.weight", &w.o},
                                                            {"self_attn.q_proj.bias", &w.q_bias},
                                                            {"self_attn.k_proj.bias", &w.k_bias},
                                                            {"self_attn.v_proj.bias", &w.v_bias},
                                                            {"self_attn.q_norm.weight", &w.q_norm},
                                                            {"self_attn.k_norm.weight", &w.k_norm},
                                                            {"post_attention_layernorm.weight", &w.mlp_norm},
                                                            {"mlp.gate_proj.weight", &w.gate},
                                                            {"mlp.up_proj.weight", &w.up},
                                                            {"mlp.down_proj.weight", &w.down}};
    for (auto& [n, v] : named)
      if (v->defined()) out.push_back({p + n, *v});
  }
  out.push_back({mp + "norm.weight", final_norm_});
  if (score_.defined())
    out.push_back({"score.weight", score_});
  else if (lm_head_.id() != embed_.id())
    out.push_back({"lm_head.weight", lm_head_});
  return out;
}

ag::Var DecoderModel::layer_forward(const ag::Var& x_in, int64_t l, const Batch& batch, KVCache& cache,
                                    const Tensor& cs) const {
  const int64_t hd = cfg_.head_dim;
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  ag::Var x = x_in;
  const LayerWeights& w = layers_[l];
  ag::Var h = ag::rms_norm(x, w.attn_norm, eps);
  // Projections of one input without an adapter run as one op (one pass over the threads).
  auto plain = [&](int a, int b) {
    for (int i = a; i < b; ++i)
      if (w.lora[i].defined() && lora_enabled_) return false;
    return true;
  };
  ag::Var q, k, v;
  if (plain(0, 3)) {
    const ag::Var* W[] = {&w.q, &w.k, &w.v};
    const ag::Var* B[] = {w.q_bias.defined() ? &w.q_bias : nullptr, w.k_bias.defined() ? &w.k_bias : nullptr,
                          w.v_bias.defined() ? &w.v_bias : nullptr};
    ag::Var qkv[3];
    ag::linear_group(h, W, B, qkv);
    q = qkv[0];
    k = qkv[1];
    v = qkv[2];
  } else {
    q = proj(h, w.q, w.q_bias.defined() ? &w.q_bias : nullptr, w.lora[0], l * 8 + 0);
    k = proj(h, w.k, w.k_bias.defined() ? &w.k_bias : nullptr, w.lora[1], l * 8 + 1);
    v = proj(h, w.v, w.v_bias.defined() ? &w.v_bias : nullptr, w.lora[2], l * 8 + 2);
  }
  if (cfg_.qk_norm) {
    q = ag::rms_norm(q, w.q_norm, eps);
    k = ag::rms_norm(k, w.k_norm, eps);
  }
  q = ag::rope(q, cs, hd);
  k = ag::rope(k, cs, hd);
  AttentionShape shape{cfg_.num_heads, cfg_.num_kv_heads, hd, 0};
  if (cfg_.sliding_window && *cfg_.sliding_window > 0 && cfg_.sliding_layers[l]) shape.window = *cfg_.sliding_window;
  ag::Var a = model::attention(q, k, v, batch, cache, l, shape);
  x = ag::add(x, proj(a, w.o, nullptr, w.lora[3], l * 8 + 3));
  h = ag::rms_norm(x, w.mlp_norm, eps);
  ag::Var m;
  if (plain(4, 6)) {
    const ag::Var* W[] = {&w.gate, &w.up};
    const ag::Var* B[] = {nullptr, nullptr};
    ag::Var gu[2];
    ag::linear_group(h, W, B, gu);
    m = ag::swiglu(gu[0], gu[1]);
  } else {
    m = ag::swiglu(proj(h, w.gate, nullptr, w.lora[4], l * 8 + 4), proj(h, w.up, nullptr, w.lora[5], l * 8 + 5));
  }
  x = ag::add(x, proj(m, w.down, nullptr, w.lora[6], l * 8 + 6));
  return x;
}

ag::Var DecoderModel::forward_var(const Batch& batch, KVCache& cache) {
  if (!lm_head_.defined()) [[unlikely]]
    throw Error("this checkpoint is a sequence classifier (reward model): it has scores, not logits");
  return ag::linear(trunk(batch, cache), lm_head_);
}

ag::Var DecoderModel::forward_scores(const Batch& batch, KVCache& cache) {
  if (!score_.defined()) [[unlikely]]
    throw Error("this model has no score head (not a reward model)");
  return ag::linear(trunk(batch, cache), score_);
}

void DecoderModel::add_score_head(int64_t num_labels, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f / static_cast<float>(cfg_.hidden_size + 1));
  Tensor w = Tensor::empty({num_labels, cfg_.hidden_size});
  for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] = nd(rng);
  score_ = ag::Var(w);
  lm_head_ = ag::Var();
  cfg_.sequence_classifier = true;
  cfg_.num_labels = num_labels;
}

ag::Var DecoderModel::trunk(const Batch& batch, KVCache& cache) {
  const int64_t T = static_cast<int64_t>(batch.ids.size());
  if (T == 0 || batch.pos.size() != batch.ids.size() || batch.slot.size() != batch.ids.size()) [[unlikely]]
    throw Error("forward: batch ids, positions and slots must have the same non-zero length");
  const int64_t hd = cfg_.head_dim;
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  int64_t max_pos = 0;
  for (int64_t t = 0; t < T; ++t) {
    if (batch.pos[t] < 0 || batch.pos[t] >= cache.capacity()) [[unlikely]]
      throw Error("position " + std::to_string(batch.pos[t]) + " exceeds the KV cache capacity " +
                  std::to_string(cache.capacity()));
    if (batch.slot[t] < 0 || batch.slot[t] >= cache.slots()) [[unlikely]]
      throw Error("sequence slot out of range");
    max_pos = std::max<int64_t>(max_pos, batch.pos[t]);
  }
  const bool mrope = !batch.mrope_pos.empty();
  if (mrope && (cfg_.rope.mrope_section.empty() || batch.mrope_pos.size() != 3 * batch.ids.size())) [[unlikely]]
    throw Error(cfg_.rope.mrope_section.empty() ? "forward: M-RoPE positions given to a model without M-RoPE"
                                                : "forward: M-RoPE needs 3 positions per token");
  if (mrope)
    for (int32_t p : batch.mrope_pos) max_pos = std::max<int64_t>(max_pos, p);
  const RopeTable& table = rope_.table(max_pos + 1);
  Tensor cs = Tensor::empty({T, hd});  // per token: cos[hd/2] then sin[hd/2]
  for (int64_t t = 0; t < T; ++t) {
    float* row = cs.data<float>() + t * hd;
    if (mrope)
      Rope::angles_mrope(table, cfg_.rope, batch.mrope_pos.data() + 3 * t, row, row + hd / 2);
    else
      Rope::angles(table, batch.pos[t], row, row + hd / 2);
  }
  if (!embed_.device().is_host()) cs = cs.to(embed_.device());

  ag::Var x = ag::embedding(embed_, batch.ids);
  const VisualInput* vis = batch.visual;
  if (vis && !vis->rows.empty()) {
    for (int32_t r : vis->rows)
      if (r < 0 || r >= T) [[unlikely]]
        throw Error("forward: an image row is outside the batch");
    x = ag::put_rows(x, vis->rows, vis->embeds);
  }
  // DeepStack: features added to the image rows after the first decoder layers.
  auto deepstack = [&](int64_t l) {
    if (vis && !vis->rows.empty() && l < static_cast<int64_t>(vis->deepstack.size()))
      x = ag::add_rows(x, vis->rows, vis->deepstack[static_cast<size_t>(l)]);
  };
  std::shared_ptr<Batch> shared_batch;  // kept for the recomputing closures of checkpointing
  for (int64_t l = 0; l < cfg_.num_layers; ++l) {
    ag::Tape* outer = ag::active_tape();
    if (!checkpointing_ || !outer) {
      x = layer_forward(x, l, batch, cache, cs);
      deepstack(l);
      continue;
    }
    if (!shared_batch) shared_batch = std::make_shared<Batch>(batch);
    ag::Var out;
    {
      ag::NoTapeScope off;
      out = layer_forward(x, l, batch, cache, cs);
    }
    ag::Var result(out.value(), true);
    ag::Var in = x;
    KVCache* kv = &cache;
    outer->push([this, result, in, l, shared_batch, cs, kv]() {
      if (!result.has_grad()) return;
      ag::Var x_in(in.value(), true);
      ag::Tape inner;
      ag::Var y;
      {
        ag::TapeScope scope(inner);
        y = layer_forward(x_in, l, *shared_batch, *kv, cs);
      }
      ops::axpy(1.0f, result.grad(), y.grad());
      inner.run();
      if (in.requires_grad()) ops::axpy(1.0f, x_in.grad(), in.grad());
    });
    x = result;
    deepstack(l);
  }
  return ag::rms_norm(ag::gather_rows(x, batch.logits_for), final_norm_, eps);
}

}  // namespace yak::model
