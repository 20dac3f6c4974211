#include "yak/infer/perplexity.h"

#include <algorithm>
#include <cmath>

#include "yak/base/error.h"

namespace yak::infer {
namespace {

// log Σ exp over one row, in double.
double log_sum_exp(const float* v, int64_t n, int64_t* argmax) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (v[i] > v[best]) best = i;
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(static_cast<double>(v[i]) - v[best]);
  *argmax = best;
  return v[best] + std::log(s);
}

// Feeds ids[begin, end) to a fresh cache in segments; calls row(t, logits) for every target t in
// [first, end) with the logits predicting it (from position t - 1).
template <typename Row>
void window_logits(model::DecoderModel& m, const std::vector<int32_t>& ids, int64_t begin, int64_t end, int64_t first,
                   int64_t segment, Row&& row) {
  const int64_t len = end - begin;
  model::KVCache cache(m.config(), 1, len);
  for (int64_t s0 = 0; s0 < len; s0 += segment) {
    const int64_t s1 = std::min(len, s0 + segment);
    model::Batch b;
    for (int64_t p = s0; p < s1; ++p) {
      b.ids.push_back(ids[begin + p]);
      b.pos.push_back(static_cast<int32_t>(p));
      b.slot.push_back(0);
      const int64_t target = begin + p + 1;
      if (target >= first && target < end) b.logits_for.push_back(static_cast<int32_t>(p - s0));
    }
    if (b.logits_for.empty()) b.logits_for.push_back(0);  // the forward still fills the cache
    Tensor lg = m.forward(b, cache);
    const int64_t V = lg.dim(1);
    for (size_t i = 0; i < b.logits_for.size(); ++i) {
      const int64_t target = begin + s0 + b.logits_for[i] + 1;
      if (target >= first && target < end) row(target, lg.data<float>() + static_cast<int64_t>(i) * V, V);
    }
  }
}

}  // namespace

PerplexityResult perplexity(model::DecoderModel& model, const std::vector<int32_t>& ids, const PerplexityOptions& opt,
                            model::DecoderModel* reference, const std::function<void(int64_t, int64_t)>& progress) {
  const auto n = static_cast<int64_t>(ids.size());
  if (n < 2) throw Error("perplexity: the text has " + std::to_string(n) + " tokens (need at least 2)");
  if (opt.ctx < 2) throw Error("perplexity: --ctx must be at least 2");
  if (opt.stride < 1 || opt.stride > opt.ctx) throw Error("perplexity: --stride must be in [1, --ctx]");
  const int64_t V = model.config().vocab_size;
  if (reference && reference->config().vocab_size != V)
    throw Error("perplexity: the reference model's vocabulary (" + std::to_string(reference->config().vocab_size) +
                ") differs from the model's (" + std::to_string(V) + ")");
  for (int32_t id : ids)
    if (id < 0 || id >= V) throw Error("perplexity: token id " + std::to_string(id) + " is outside the vocabulary");
  PerplexityResult r;
  r.has_reference = reference != nullptr;
  double kl = 0, ref_nll = 0;
  int64_t agree = 0;
  int64_t prev_end = 0;
  std::vector<float> ref_rows;  // reference log-probs of a window's targets, vocabulary-wide
  for (int64_t begin = 0;; begin += opt.stride) {
    const int64_t end = std::min(begin + opt.ctx, n);
    const int64_t first = std::max(prev_end, begin + 1);  // the first token this window scores
    PerplexityWindow w{begin, end, end - first, 0.0};
    if (reference) {  // the reference's log-probs first (one window of them in memory)
      ref_rows.assign(static_cast<size_t>(w.scored * V), 0.f);
      window_logits(*reference, ids, begin, end, first, opt.segment, [&](int64_t t, const float* v, int64_t) {
        int64_t am;
        const double lse = log_sum_exp(v, V, &am);
        float* out = ref_rows.data() + (t - first) * V;
        for (int64_t i = 0; i < V; ++i) out[i] = static_cast<float>(v[i] - lse);
        ref_nll -= out[ids[t]];
      });
    }
    window_logits(model, ids, begin, end, first, opt.segment, [&](int64_t t, const float* v, int64_t) {
      int64_t am;
      const double lse = log_sum_exp(v, V, &am);
      w.nll += lse - v[ids[t]];
      if (reference) {
        const float* lp = ref_rows.data() + (t - first) * V;
        double k = 0;
        int64_t ref_best = 0;
        for (int64_t i = 0; i < V; ++i) {
          const double p = std::exp(static_cast<double>(lp[i]));
          k += p * (lp[i] - (v[i] - lse));
          if (lp[i] > lp[ref_best]) ref_best = i;
        }
        kl += k;
        agree += ref_best == am;
      }
      ++r.scored;
      if (progress) progress(r.scored, n - 1);
    });
    r.nll_sum += w.nll;
    r.windows.push_back(w);
    prev_end = end;
    if (end == n) break;
  }
  r.ppl = std::exp(r.nll_sum / static_cast<double>(r.scored));
  if (reference) {
    r.kl_mean = kl / static_cast<double>(r.scored);
    r.top1_agreement = static_cast<double>(agree) / static_cast<double>(r.scored);
    r.reference_ppl = std::exp(ref_nll / static_cast<double>(r.scored));
  }
  return r;
}

}  // namespace yak::infer
