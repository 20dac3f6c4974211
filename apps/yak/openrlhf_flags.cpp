#include "openrlhf_flags.h"

#include <algorithm>
#include <array>
#include <string_view>
#include <utility>

#include "yak/base/error.h"

namespace yak::cli {

namespace {

// OpenRLHF 0.10.2+'s dotted names and the flat names of the releases before (read off the ten
// example scripts that exist in both spellings, and OpenRLHF's argument definitions).
constexpr std::array<std::pair<std::string_view, std::string_view>, 84> kDotted = {{
    {"--actor.adam.lr", "--actor_learning_rate"},
    {"--actor.eps_clip_low_high", "--eps_clip_low_high"},
    {"--actor.eps_clip", "--eps_clip"},
    {"--actor.freeze_visual_encoder", "--freeze_visual_encoder"},
    {"--actor.gradient_checkpointing_enable", "--gradient_checkpointing"},
    {"--actor.model_name_or_path", "--pretrain"},
    {"--actor.num_gpus_per_node", "--actor_num_gpus_per_node"},
    {"--actor.num_nodes", "--actor_num_nodes"},
    {"--adam.lr", "--learning_rate"},
    {"--adam.betas", "--adam_betas"},
    {"--adam.weight_decay", "--l2"},
    {"--algo.advantage.estimator", "--advantage_estimator"},
    {"--algo.advantage.gamma", "--gamma"},
    {"--algo.advantage.lambd", "--lambd"},
    {"--algo.advantage.is_correction_enable", "--enable_vllm_is_correction"},
    {"--algo.dynamic_filtering_enable", "--dynamic_filtering"},
    {"--algo.dynamic_filtering_range", "--dynamic_filtering_reward_range"},
    {"--algo.kl.estimator", "--kl_estimator"},
    {"--algo.kl.init_coef", "--init_kl_coef"},
    {"--algo.kl.use_loss", "--use_kl_loss"},
    {"--algo.kl.target", "--kl_target"},
    {"--ckpt.load_enable", "--load_checkpoint"},
    {"--ckpt.output_dir", "--save_path"},
    {"--ckpt.path", "--ckpt_path"},
    {"--ckpt.save_hf", "--save_hf_ckpt"},
    {"--ckpt.save_steps", "--save_steps"},
    {"--ckpt.max_num", "--max_ckpt_num"},
    {"--critic.adam.lr", "--critic_learning_rate"},
    {"--critic.model_name_or_path", "--critic_pretrain"},
    {"--critic.num_gpus_per_node", "--critic_num_gpus_per_node"},
    {"--critic.num_nodes", "--critic_num_nodes"},
    {"--data.apply_chat_template", "--apply_chat_template"},
    {"--data.chosen_key", "--chosen_key"},
    {"--data.dataset", "--dataset"},
    {"--data.dataset_probs", "--dataset_probs"},
    {"--data.image_key", "--image_key"},
    {"--data.input_key", "--input_key"},
    {"--data.input_template", "--input_template"},
    {"--data.label_key", "--label_key"},
    {"--data.max_images_per_prompt", "--max_images_per_prompt"},
    {"--data.max_len", "--max_len"},
    {"--data.max_samples", "--max_samples"},
    {"--data.output_key", "--output_key"},
    {"--data.prompt_dataset", "--prompt_data"},
    {"--data.prompt_max_len", "--prompt_max_len"},
    {"--data.rejected_key", "--rejected_key"},
    {"--data.tokenizer_chat_template", "--tokenizer_chat_template"},
    {"--ds.adam_offload", "--adam_offload"},
    {"--ds.attn_implementation", "--attn_implementation"},
    {"--ds.enable_sleep", "--deepspeed_enable_sleep"},
    {"--ds.lora.alpha", "--lora_alpha"},
    {"--ds.lora.dropout", "--lora_dropout"},
    {"--ds.lora.rank", "--lora_rank"},
    {"--ds.lora.target_modules", "--target_modules"},
    {"--ds.packing_samples", "--packing_samples"},
    {"--ds.param_dtype", "--param_dtype"},
    {"--ds.zero_stage", "--zero_stage"},
    {"--eval.dataset", "--eval_dataset"},
    {"--eval.steps", "--eval_steps"},
    {"--logger.logging_steps", "--logging_steps"},
    {"--logger.tensorboard_dir", "--use_tensorboard"},
    {"--logger.wandb.key", "--use_wandb"},
    {"--model.aux_loss_coef", "--aux_loss_coef"},
    {"--model.beta", "--beta"},
    {"--model.gradient_checkpointing_enable", "--gradient_checkpointing"},
    {"--model.model_name_or_path", "--pretrain"},
    {"--ref.model_name_or_path", "--ref_pretrain"},
    {"--ref.num_gpus_per_node", "--ref_num_gpus_per_node"},
    {"--ref.num_nodes", "--ref_num_nodes"},
    {"--reward.model_name_or_path", "--reward_pretrain"},
    {"--reward.normalize_enable", "--normalize_reward"},
    {"--reward.num_gpus_per_node", "--reward_num_gpus_per_node"},
    {"--reward.num_nodes", "--reward_num_nodes"},
    {"--reward.remote_url", "--remote_rm_url"},
    {"--rollout.batch_size", "--rollout_batch_size"},
    {"--rollout.max_new_tokens", "--generate_max_len"},
    {"--rollout.micro_batch_size", "--micro_rollout_batch_size"},
    {"--rollout.n_samples_per_prompt", "--n_samples_per_prompt"},
    {"--train.batch_size", "--train_batch_size"},
    {"--train.max_epochs", "--max_epochs"},
    {"--train.micro_batch_size", "--micro_train_batch_size"},
    {"--train.num_episodes", "--num_episodes"},
    {"--train.seed", "--seed"},
    {"--train.max_norm", "--max_norm"},
}};

// Flags about placement, DeepSpeed, vLLM and Ray: one process on this machine has nothing to do
// with them (yak's attention is already fused, rollouts come from the actor's own weights, so
// vLLM's importance-sampling correction has no mismatch to correct).
bool not_applicable(std::string_view f) {
  static constexpr std::array<std::string_view, 23> exact = {
      "--adam_offload", "--flash_attn", "--attn_implementation", "--deepspeed_enable_sleep",
      "--enforce_eager", "--teacher_offload", "--ref_reward_offload", "--use_dynamic_batch",
      "--train_max_tokens_per_gpu", "--rollout_max_tokens_per_gpu", "--enable_vllm_is_correction",
      "--local_rank", "--overlap_comm", "--zpg", "--grad_accum_dtype", "--disable_fast_tokenizer",
      "--ds_tensor_parallel_size", "--ds_param_dtype", "--train.colocate_all", "--train.colocate_actor_ref",
      "--train.colocate_critic_reward", "--train.dynamic_batch_enable", "--train.max_tokens_per_gpu"};
  if (std::find(exact.begin(), exact.end(), f) != exact.end()) return true;
  auto starts = [&](std::string_view p) { return f.substr(0, p.size()) == p; };
  auto ends = [&](std::string_view s) { return f.size() >= s.size() && f.substr(f.size() - s.size()) == s; };
  return starts("--vllm_") || starts("--vllm.") || starts("--colocate_") || starts("--ring_") ||
         starts("--algo.advantage.is_correction_") || starts("--vllm_enable_is_correction") ||
         ends("_num_nodes") || ends("_num_gpus_per_node");
}

// Features of OpenRLHF that yak does not have: accepted, dropped, and said so.
bool unsupported(std::string_view f) {
  static constexpr std::array<std::string_view, 11> names = {
      "--use_wandb",     "--wandb_org",        "--wandb_group", "--wandb_project", "--wandb_run_name",
      "--aux_loss_coef", "--eval.temperature", "--eval.n_samples_per_prompt", "--reward.stop_properly_penalty_coef",
      "--eval_temperature", "--eval_n_samples_per_prompt"};
  return std::find(names.begin(), names.end(), f) != names.end();
}

bool is_flag(const std::string& s) { return s.size() > 2 && s[0] == '-' && s[1] == '-'; }

}  // namespace

OpenRlhfArgs rewrite_openrlhf_args(const std::vector<std::string>& argv) {
  OpenRlhfArgs out;
  if (argv.size() < 2) {
    out.args = argv;
    return out;
  }
  const std::string& cmd = argv[1];
  const bool train = cmd == "train" || cmd == "rejection-sample";
  const bool serve_rm = cmd == "serve-rm";
  if (!train && !serve_rm) {
    out.args = argv;
    return out;
  }
  bool precision_given = false, bf16 = false;
  for (const auto& a : argv) precision_given = precision_given || a.rfind("--matmul-precision", 0) == 0;
  for (size_t i = 0; i < argv.size(); ++i) {
    std::string a = argv[i];
    if (i < 2 || !is_flag(a)) {
      out.args.push_back(a);
      continue;
    }
    std::string value_inline;
    if (auto eq = a.find('='); eq != std::string::npos) value_inline = a.substr(eq), a.resize(eq);
    for (const auto& [d, flat] : kDotted)
      if (a == d) a = std::string(flat);
    // The values that follow a flag (several for ranges such as --eps_clip_low_high 0.2 0.27).
    auto values = [&] {
      std::vector<std::string> v;
      if (!value_inline.empty()) v.push_back(value_inline.substr(1));
      while (i + 1 < argv.size() && !is_flag(argv[i + 1])) v.push_back(argv[++i]);
      return v;
    };
    auto drop_into = [&](std::vector<std::string>& list) {
      std::string shown = a;
      for (const auto& v : values()) shown += " " + v;
      list.push_back(shown);
    };
    if (a == "--image_key" || a == "--max_images_per_prompt" || a == "--freeze_visual_encoder")
      throw Error(a + ": vision-language training is not supported yet (text models only)");
    if (a == "--policy_loss_type") {
      const auto v = values();
      if (!v.empty() && v[0] != "ppo")
        throw Error("--policy_loss_type " + v[0] + ": not supported (yak's policy loss is PPO's token-level clip)");
      continue;
    }
    if (a == "--bf16") {
      bf16 = true;
      continue;
    }
    if (a == "--param_dtype") {
      const auto v = values();
      if (v.empty() || (v[0] != "bf16" && v[0] != "fp32"))
        throw Error("--param_dtype " + (v.empty() ? std::string("(none)") : v[0]) +
                    ": expected bf16 or fp32 (yak computes in f32, or bf16 matmuls over f32 weights)");
      bf16 = bf16 || v[0] == "bf16";
      continue;
    }
    if (a == "--save_hf_ckpt") continue;  // yak's checkpoints are Hugging Face folders already
    if (a == "--max_new_tokens" && train) a = "--generate_max_len";
    if (not_applicable(a)) {
      drop_into(out.not_applicable);
      continue;
    }
    if (unsupported(a)) {
      drop_into(out.unsupported);
      continue;
    }
    out.args.push_back(a + value_inline);
  }
  if (bf16 && !precision_given) {
    out.args.push_back("--matmul-precision");
    out.args.push_back("medium");
  }
  return out;
}

std::vector<std::string> openrlhf_notices(const OpenRlhfArgs& a) {
  std::vector<std::string> lines;
  auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
  };
  if (!a.not_applicable.empty())
    lines.push_back("yak: accepted, not applicable to one process here (DeepSpeed/vLLM/Ray placement): " +
                    join(a.not_applicable));
  if (!a.unsupported.empty()) {
    std::string hint;
    for (const auto& u : a.unsupported)
      if (u.rfind("--use_wandb", 0) == 0 || u.rfind("--wandb", 0) == 0) hint = " (no Weights & Biases here: --use_tensorboard DIR writes TensorBoard logs)";
    lines.push_back("yak: accepted but not supported, ignored: " + join(a.unsupported) + hint);
  }
  return lines;
}

}  // namespace yak::cli
