// DecoderModel's LoRA side: adapters on the projections, PEFT folders in and out, merging.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "yak/autograd/functions.h"
#include "yak/base/error.h"
#include "yak/base/mmap.h"
#include "yak/io/safetensors.h"
#include "yak/model/decoder.h"

namespace yak::model {
namespace fs = std::filesystem;

namespace {

const char* kPeftPrefix = "base_model.model.";

std::string module_path(int64_t layer, Proj p) {
  const bool attn = p == Proj::Q || p == Proj::K || p == Proj::V || p == Proj::O;
  return "model.layers." + std::to_string(layer) + (attn ? ".self_attn." : ".mlp.") + proj_name(p);
}

ag::Var& proj_weight(LayerWeights& w, Proj p) {
  switch (p) {
    case Proj::Q:
      return w.q;
    case Proj::K:
      return w.k;
    case Proj::V:
      return w.v;
    case Proj::O:
      return w.o;
    case Proj::Gate:
      return w.gate;
    case Proj::Up:
      return w.up;
    case Proj::Down:
      return w.down;
  }
  throw Error("bad projection");
}

Tensor f32_copy(const Tensor& t) {
  return t.dtype() == DType::F32 ? t.clone() : t.to_f32();
}

}  // namespace

ag::Var DecoderModel::proj(const ag::Var& x, const ag::Var& w, const ag::Var* bias, const LoraAdapter& lora,
                           uint64_t salt) const {
  ag::Var y = ag::linear(x, w, bias);
  if (!lora.defined() || !lora_enabled_) return y;
  ag::Var in = x;
  if (lora_ && lora_->dropout > 0 && ag::active_tape())
    in = ag::dropout(x, static_cast<float>(lora_->dropout), dropout_seed_ * 0x100000001B3ull + salt);
  return ag::add(y, ag::scale(ag::linear(ag::linear(in, lora.A), lora.B), lora.scale));
}

void DecoderModel::add_lora(const LoraConfig& cfg, uint64_t seed) {
  cfg.validate("LoRA config");
  check(!lora_, "the model already has a LoRA adapter");
  std::mt19937_64 rng(seed);
  for (int64_t l = 0; l < cfg_.num_layers; ++l)
    for (int k = 0; k < kProjCount; ++k) {
      const Proj p = static_cast<Proj>(k);
      if (!cfg.targets(p)) continue;
      const ag::Var& w = proj_weight(layers_[l], p);
      const int64_t out = w.dim(0), in = w.dim(1);
      // PEFT: kaiming_uniform_(A, a=sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)); B = 0.
      std::uniform_real_distribution<float> u(-1.0f / std::sqrt(static_cast<float>(in)),
                                              1.0f / std::sqrt(static_cast<float>(in)));
      Tensor A = Tensor::empty({cfg.r, in});
      for (int64_t i = 0; i < A.numel(); ++i) A.data<float>()[i] = u(rng);
      layers_[l].lora[k] = {ag::Var(A), ag::Var(Tensor::zeros({out, cfg.r})), static_cast<float>(cfg.scale())};
    }
  lora_ = cfg;
  for (auto& m : cfg.modules_to_save) {
    if (m == "embed_tokens") {
      const bool tied = lm_head_.id() == embed_.id();
      embed_ = ag::Var(f32_copy(embed_.value()));
      if (tied) lm_head_ = embed_;
    } else if (m == "lm_head") {
      lm_head_ = ag::Var(f32_copy(lm_head_.value()));
    } else if (m == "score" && score_.defined()) {
      score_ = ag::Var(f32_copy(score_.value()));  // (a head added later is f32 already)
    }
  }
}

std::pair<size_t, size_t> DecoderModel::convert_projections(DType type) {
  size_t before = 0, after = 0;
  for (auto& layer : layers_)
    for (int k = 0; k < kProjCount; ++k) {
      ag::Var& w = proj_weight(layer, static_cast<Proj>(k));
      before += w.value().nbytes();
      const int64_t in = w.value().dim(1);
      const DType t = in % dtype_info(type).block == 0 ? type
                      : in % 32 == 0 && dtype_is_quantized(type) ? DType::Q4_0
                                                                 : w.value().dtype();
      if (t != w.value().dtype()) {
        const Tensor old = w.value();
        w = ag::Var(convert_rows(old, t), false);
        // The original (usually the mapped checkpoint) is not read again: let its pages go now,
        // so the peak holds one projection in both forms, not the whole model.
        if (old.is_host()) advise_cold(old.raw(), old.nbytes());
      }
      after += w.value().nbytes();
    }
  return {before, after};
}

std::vector<NamedParam> DecoderModel::lora_parameters() const {
  std::vector<NamedParam> out;
  if (!lora_) return out;
  for (int64_t l = 0; l < cfg_.num_layers; ++l)
    for (int k = 0; k < kProjCount; ++k) {
      const auto& a = layers_[l].lora[k];
      if (!a.defined()) continue;
      const std::string base = kPeftPrefix + module_path(l, static_cast<Proj>(k));
      out.push_back({base + ".lora_A.weight", a.A});
      out.push_back({base + ".lora_B.weight", a.B});
    }
  for (auto& m : lora_->modules_to_save) {
    if (m == "embed_tokens") out.push_back({std::string(kPeftPrefix) + "model.embed_tokens.weight", embed_});
    if (m == "lm_head" && lm_head_.id() != embed_.id() && lm_head_.defined())
      out.push_back({std::string(kPeftPrefix) + "lm_head.weight", lm_head_});
    if (m == "score" && score_.defined()) out.push_back({std::string(kPeftPrefix) + "score.weight", score_});
  }
  return out;
}

std::vector<NamedParam> DecoderModel::trainable_parameters() const {
  std::vector<NamedParam> out;
  for (auto& p : lora_ ? lora_parameters() : parameters())
    if (p.var.requires_grad()) out.push_back(p);
  return out;
}

void DecoderModel::make_lora_trainable() {
  check(lora_.has_value(), "make_lora_trainable: the model has no LoRA adapter");
  for (auto& p : lora_parameters()) p.var.set_requires_grad(true);
}

void DecoderModel::save_lora(const fs::path& dir) const {
  check(lora_.has_value(), "save_lora: the model has no LoRA adapter");
  fs::create_directories(dir);
  std::vector<std::pair<std::string, Tensor>> ts;
  for (auto& p : lora_parameters()) ts.emplace_back(p.name, p.var.value());
  io::write_safetensors(dir / "adapter_model.safetensors", ts, {{"format", "pt"}});
  io::write_file_atomic(dir / "adapter_config.json", lora_->to_peft_json().dump(2));
}

void DecoderModel::load_lora(const fs::path& dir) {
  const fs::path cfg_path = dir / "adapter_config.json";
  if (!fs::exists(cfg_path)) throw Error(dir.string() + ": no adapter_config.json (is this a PEFT adapter folder?)");
  LoraConfig cfg = LoraConfig::from_peft_json(read_json_file(cfg_path), cfg_path.string());
  // PEFT writes adapter_model.safetensors; older releases (and safe_serialization=False) .bin.
  fs::path weights = dir / "adapter_model.safetensors";
  if (!fs::exists(weights) && fs::exists(dir / "adapter_model.bin")) weights = dir / "adapter_model.bin";
  const io::WeightStore file = io::WeightStore::open_file(weights);
  const std::string where = weights.string();
  // A reward model's adapter over a causal LM base: its score head comes from the adapter.
  const std::string score_name = std::string(kPeftPrefix) + "score.weight";
  if (std::find(cfg.modules_to_save.begin(), cfg.modules_to_save.end(), "score") != cfg.modules_to_save.end() &&
      !score_.defined()) {
    if (!file.has(score_name)) throw Error(where + ": missing tensor '" + score_name + "' that adapter_config.json implies");
    const Tensor t = file.get(score_name);
    if (t.shape().size() != 2 || t.dim(1) != cfg_.hidden_size)
      throw Error(where + ": tensor '" + score_name + "' has shape " + shape_str(t.shape()) + ", expected [labels, " +
                  std::to_string(cfg_.hidden_size) + "]");
    add_score_head(t.dim(0), 0);
  }
  add_lora(cfg, 0);
  size_t used = 0;
  for (auto& p : lora_parameters()) {
    std::string name = p.name;
    if (!file.has(name)) throw Error(where + ": missing tensor '" + name + "' that adapter_config.json implies");
    Tensor t = file.get(name);
    if (t.shape() != p.var.value().shape())
      throw Error(where + ": tensor '" + name + "' has shape " + shape_str(t.shape()) + " but this base model needs " +
                  shape_str(p.var.value().shape()) +
                  (t.shape().size() == 2 && t.dim(0) > p.var.value().dim(0) && t.dim(1) == p.var.value().dim(1)
                       ? " (the adapter has a larger vocabulary, as Chinese-LLaMA-Alpaca-2's do: grow the base first "
                         "with `yak model resize-embeddings -m BASE --tokenizer ADAPTER_DIR --out BASE_ZH`)"
                       : " (an adapter for a different base model?)"));
    Tensor v = f32_copy(t);
    std::memcpy(p.var.value().raw(), v.raw(), v.nbytes());
    ++used;
  }
  if (const auto names = file.names(); used != names.size())
    for (auto& name : names) {
      bool known = false;
      for (auto& p : lora_parameters()) known |= p.name == name;
      if (!known) throw Error(where + ": tensor '" + name + "' does not belong to this base model's modules");
    }
}

void DecoderModel::merge_lora() {
  check(lora_.has_value(), "merge_lora: the model has no LoRA adapter");
  for (auto& layer : layers_)
    for (int k = 0; k < kProjCount; ++k) {
      auto& a = layer.lora[k];
      if (!a.defined()) continue;
      ag::Var& w = proj_weight(layer, static_cast<Proj>(k));
      Tensor merged = f32_copy(w.value());
      const int64_t out = merged.dim(0), in = merged.dim(1), r = a.A.dim(0);
      // W += scale * B A
      float* W = merged.data<float>();
      for (int64_t o = 0; o < out; ++o)
        for (int64_t j = 0; j < r; ++j) {
          const float b = a.B.f32()[o * r + j] * a.scale;
          const float* Arow = a.A.f32() + j * in;
          for (int64_t i = 0; i < in; ++i) W[o * in + i] += b * Arow[i];
        }
      w = ag::Var(merged, w.requires_grad());
      a = LoraAdapter{};
    }
  lora_.reset();
}

}  // namespace yak::model
