#include "yak/model/lora.h"

#include <algorithm>
#include <cmath>

#include "yak/base/error.h"

namespace yak::model {

const char* proj_name(Proj p) {
  static const char* names[] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  return names[static_cast<int>(p)];
}

double LoraConfig::scale() const {
  return rslora ? alpha / std::sqrt(static_cast<double>(r)) : alpha / static_cast<double>(r);
}

bool LoraConfig::targets(Proj p) const {
  const std::string n = proj_name(p);
  for (auto& t : target_modules)  // PEFT matches a name or a dotted suffix
    if (t == "all-linear" || t == n ||
        (t.size() > n.size() && t.compare(t.size() - n.size() - 1, n.size() + 1, "." + n) == 0))
      return true;
  return false;
}

void LoraConfig::validate(const std::string& where) const {
  if (r <= 0) throw Error(where + ": LoRA rank r must be positive, got " + std::to_string(r));
  if (!(alpha > 0)) throw Error(where + ": lora_alpha must be positive");
  if (!(dropout >= 0 && dropout < 1)) throw Error(where + ": lora_dropout must be in [0, 1)");
  if (target_modules.empty()) throw Error(where + ": target_modules is empty");
  for (auto& t : target_modules) {
    bool known = t == "all-linear";
    for (int k = 0; k < kProjCount; ++k) known |= t == proj_name(static_cast<Proj>(k));
    if (!known)
      throw Error(where + ": unknown target module '" + t +
                  "' (expected q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj or all-linear)");
  }
  for (auto& m : modules_to_save)
    if (m != "embed_tokens" && m != "lm_head" && m != "score")
      throw Error(where + ": modules_to_save supports embed_tokens, lm_head and score, not '" + m + "'");
}

Json LoraConfig::to_peft_json() const {
  std::vector<std::string> targets = target_modules;
  if (std::find(targets.begin(), targets.end(), "all-linear") != targets.end()) {
    targets.clear();
    for (int k = 0; k < kProjCount; ++k) targets.push_back(proj_name(static_cast<Proj>(k)));
  }
  return {{"peft_type", "LORA"},
          // A reward model's adapter carries its score head (PEFT's SEQ_CLS task saves it).
          {"task_type", std::find(modules_to_save.begin(), modules_to_save.end(), "score") != modules_to_save.end()
                            ? "SEQ_CLS"
                            : "CAUSAL_LM"},
          {"r", r},
          {"lora_alpha", alpha},
          {"lora_dropout", dropout},
          {"use_rslora", rslora},
          {"target_modules", targets},
          {"modules_to_save", modules_to_save.empty() ? Json(nullptr) : Json(modules_to_save)},
          {"bias", "none"},
          {"fan_in_fan_out", false},
          {"inference_mode", true},
          {"base_model_name_or_path", base_model}};
}

LoraConfig LoraConfig::from_peft_json(const Json& j, const std::string& where) {
  LoraConfig c;
  const std::string type = json_get_or<std::string>(j, "peft_type", "LORA", where);
  if (type != "LORA") throw Error(where + ": peft_type '" + type + "' is not supported (expected LORA)");
  c.r = json_get<int64_t>(j, "r", where);
  c.alpha = json_get_or<double>(j, "lora_alpha", 8.0, where);
  c.dropout = json_get_or<double>(j, "lora_dropout", 0.0, where);
  c.rslora = json_get_or<bool>(j, "use_rslora", false, where);
  for (const char* off : {"fan_in_fan_out", "use_dora", "lora_bias"})
    if (json_get_or<bool>(j, off, false, where))
      throw Error(where + ": field '" + off + "' is set; yak supports plain LoRA only");
  for (const char* empty : {"rank_pattern", "alpha_pattern"})
    if (auto it = j.find(empty); it != j.end() && it->is_object() && !it->empty())
      throw Error(where + ": field '" + std::string(empty) + "' (per-module ranks) is not supported");
  const std::string bias = json_get_or<std::string>(j, "bias", "none", where);
  if (bias != "none") throw Error(where + ": field 'bias' must be \"none\", got \"" + bias + "\"");
  auto tm = j.find("target_modules");
  if (tm == j.end()) throw Error(where + ": missing field 'target_modules'");
  if (tm->is_string()) {
    c.target_modules.push_back(tm->get<std::string>());
  } else if (tm->is_array()) {
    for (auto& t : *tm) c.target_modules.push_back(t.get<std::string>());
  } else {
    throw Error(where + ": field 'target_modules' must be a list of module names");
  }
  if (auto ms = j.find("modules_to_save"); ms != j.end() && ms->is_array())
    for (auto& m : *ms) c.modules_to_save.push_back(m.get<std::string>());
  c.base_model = json_get_or<std::string>(j, "base_model_name_or_path", "", where);
  c.validate(where);
  return c;
}

}  // namespace yak::model
