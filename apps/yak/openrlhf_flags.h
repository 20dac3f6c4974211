// OpenRLHF's command lines as yak reads them: the dotted spelling of OpenRLHF 0.10.2+
// (--data.max_len, --train.batch_size, --ds.zero_stage, --actor.adam.lr...) is rewritten to the
// flat spelling of the releases before it, which `yak train` and `yak serve` take; flags that
// mean something here are translated (--bf16 and --param_dtype bf16 -> bf16 matmuls over f32
// master weights, --max_new_tokens -> --generate_max_len, serve_rm's --reward_pretrain -> -m);
// flags about the cluster, DeepSpeed, vLLM or Ray (--zero_stage, --adam_offload, --vllm_*,
// --*_num_nodes, --colocate_*...) are accepted and dropped with one notice line naming them; and
// features yak does not have are dropped with a second notice line that says so (--use_wandb,
// --aux_loss_coef...). Everything else reaches the subcommand's parser unchanged.
#pragma once
#include <string>
#include <vector>

namespace yak::cli {

struct OpenRlhfArgs {
  std::vector<std::string> args;                      // argv after rewriting (argv[0] included)
  std::vector<std::string> not_applicable, unsupported;  // what was dropped, as given
};

// Rewrites argv for `yak train ...`, `yak rejection-sample`, `yak serve` and `yak serve-rm`;
// other commands pass through unchanged.
OpenRlhfArgs rewrite_openrlhf_args(const std::vector<std::string>& argv);
// The notice lines for what was dropped (empty when nothing was).
std::vector<std::string> openrlhf_notices(const OpenRlhfArgs& a);

}  // namespace yak::cli
