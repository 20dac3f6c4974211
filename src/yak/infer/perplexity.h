// Sliding-window perplexity, with transformers' window scheme: windows of `ctx` tokens start every
// `stride` tokens (the last one ends at the text's end); each window scores the tokens no earlier
// window reached, each predicted from everything before it in the window (a window's own first
// token has no context and is not scored). With stride < ctx every token but the text's first is
// scored exactly once; with stride == ctx the first token of each window is not. ppl =
// exp(Σ nll / N) over the N scored tokens. (transformers' documented recipe weights each
// window's mean loss by its label count minus one, an approximation; yak sums the exact
// per-token losses.)
//
// With a reference model (the same vocabulary), the same positions also give the mean KL
// divergence KL(reference || model) of the next-token distributions and how often both put the
// same token first, as llama.cpp's --kl-divergence reports them.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "yak/model/decoder.h"

namespace yak::infer {

struct PerplexityOptions {
  int64_t ctx = 2048;
  int64_t stride = 512;
  int64_t segment = 256;  // positions whose logits exist at once (memory: segment x vocab floats)
};

struct PerplexityWindow {
  int64_t begin = 0, end = 0;  // token range fed to the model
  int64_t scored = 0;          // tokens scored in this window (the last `scored` of it)
  double nll = 0;              // their summed negative log-likelihood (nats)
};

struct PerplexityResult {
  double ppl = 0, nll_sum = 0;
  int64_t scored = 0;
  std::vector<PerplexityWindow> windows;
  bool has_reference = false;
  double kl_mean = 0, top1_agreement = 0;  // against the reference, over the scored tokens
  double reference_ppl = 0;
};

// Throws yak::Error for fewer than two tokens, ctx < 2, stride not in [1, ctx], or a reference
// with another vocabulary size. `progress(done, total)` counts scored tokens.
PerplexityResult perplexity(model::DecoderModel& model, const std::vector<int32_t>& ids, const PerplexityOptions& opt,
                            model::DecoderModel* reference = nullptr,
                            const std::function<void(int64_t, int64_t)>& progress = nullptr);

}  // namespace yak::infer
