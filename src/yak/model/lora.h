// LoRA adapters in PEFT's layout (adapter_config.json + adapter_model.safetensors): y = x W^T +
// scale * (x A^T) B^T on the targeted projections, with scale = alpha / r (alpha / sqrt(r) with
// rsLoRA). modules_to_save (embed_tokens, lm_head, a reward model's score) are trained as full copies.
#pragma once
#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "yak/autograd/var.h"
#include "yak/base/json.h"

namespace yak::model {

// The seven projections of a decoder layer, in PEFT's module names.
enum class Proj { Q, K, V, O, Gate, Up, Down };
constexpr int kProjCount = 7;
const char* proj_name(Proj p);  // "q_proj", ...

struct LoraConfig {
  int64_t r = 8;
  double alpha = 16;
  double dropout = 0;
  bool rslora = false;
  std::vector<std::string> target_modules;   // subset of q_proj..down_proj, or {"all-linear"}
  std::vector<std::string> modules_to_save;  // embed_tokens, lm_head, score
  std::string base_model;                    // informational (base_model_name_or_path)
  double scale() const;
  bool targets(Proj p) const;
  // Throws yak::Error naming `where` for unknown modules or bad values.
  void validate(const std::string& where) const;
  Json to_peft_json() const;
  static LoraConfig from_peft_json(const Json& j, const std::string& where);
};

struct LoraAdapter {
  ag::Var A, B;  // A [r, in], B [out, r]
  float scale = 0;
  bool defined() const { return A.defined(); }
};

}  // namespace yak::model
