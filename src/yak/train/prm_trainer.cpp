#include "yak/train/prm_trainer.h"

#include <cmath>

#include "yak/autograd/functions.h"
#include "yak/base/error.h"
#include "yak/train/pair_trainer.h"

namespace yak::train {

PrmVocab prm_vocab(const tok::Tokenizer& tok, const PrmOptions& o) {
  auto single = [&](const std::string& piece, const char* flag) {
    auto ids = tok.encode(piece, false);
    check(ids.size() == 1, std::string(flag) + " '" + piece + "' must be a single token of the tokenizer (it is " +
                               std::to_string(ids.size()) + " tokens)");
    return ids[0];
  };
  PrmVocab v;
  v.placeholder = single(o.placeholder_token, "--placeholder_token");
  check(o.reward_tokens.size() >= 2, "--reward_tokens: at least two tokens (good first), e.g. + -");
  for (const auto& t : o.reward_tokens) v.reward_ids.push_back(single(t, "--reward_tokens"));
  return v;
}

std::vector<PrmSample> build_prm_samples(std::span<const Record> records, const tok::Tokenizer& tok,
                                         const PrmOptions& o, SkipStats* skipped) {
  SkipStats local;
  SkipStats& sk = skipped ? *skipped : local;
  const PrmVocab v = prm_vocab(tok, o);
  std::vector<PrmSample> out;
  for (const auto& r : records) {
    const std::string text = json_get<std::string>(r.value, o.input_key, r.where);
    check(r.value.contains(o.label_key) && r.value[o.label_key].is_array(),
          r.where + ": key '" + o.label_key + "' must be a list with one label per step");
    const Json& labels = r.value[o.label_key];
    PrmSample s;
    s.where = r.where;
    s.ids = tok.encode(text, true);
    for (size_t t = 0; t < s.ids.size(); ++t)
      if (s.ids[t] == v.placeholder) s.steps.push_back(static_cast<int32_t>(t));
    check(s.steps.size() == labels.size(), r.where + ": " + std::to_string(s.steps.size()) + " placeholders ('" +
                                               o.placeholder_token + "') but " + std::to_string(labels.size()) +
                                               " labels in '" + o.label_key + "'");
    for (const auto& l : labels) {
      if (l.is_string()) {
        const std::string x = l.get<std::string>();
        size_t k = 0;
        while (k < o.reward_tokens.size() && o.reward_tokens[k] != x) ++k;
        check(k < o.reward_tokens.size(), r.where + ": label '" + x + "' is not one of --reward_tokens");
        s.target.push_back(static_cast<int32_t>(k));
        s.positive.push_back(k == 0 ? 1.0f : 0.0f);
      } else {
        check(l.is_number() && l.get<double>() >= 0 && l.get<double>() <= 1 && o.reward_tokens.size() == 2,
              r.where + ": a soft label must be a number in [0, 1] (with exactly two reward tokens), got " + l.dump());
        const float p = l.get<float>();
        s.positive.push_back(p);
        s.target.push_back(p >= 0.5f ? 0 : 1);
      }
    }
    if (s.steps.empty()) {
      ++sk.reasons["no steps"];
      continue;
    }
    if (static_cast<int>(s.ids.size()) > o.max_len) {
      ++sk.reasons["longer than --max_len"];
      continue;
    }
    out.push_back(std::move(s));
  }
  return out;
}

namespace {

// Logits at every placeholder of the samples, [steps, vocab], and the cache they need.
ag::Var step_logits(model::DecoderModel& m, std::span<const PrmSample* const> s, std::unique_ptr<model::KVCache>& c) {
  model::Batch b;
  int64_t longest = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const size_t base = b.ids.size();
    for (size_t t = 0; t < s[i]->ids.size(); ++t) {
      b.ids.push_back(s[i]->ids[t]);
      b.pos.push_back(static_cast<int32_t>(t));
      b.slot.push_back(static_cast<int32_t>(i));
    }
    for (int32_t p : s[i]->steps) b.logits_for.push_back(static_cast<int32_t>(base) + p);
    longest = std::max<int64_t>(longest, static_cast<int64_t>(s[i]->ids.size()));
  }
  c = std::make_unique<model::KVCache>(m.config(), static_cast<int64_t>(s.size()), longest);
  return m.forward_var(b, *c);
}

// Σ over steps of -Σ_k q_k log softmax(logits[reward ids])_k, with q = (p, 1 - p) for two reward
// tokens (or one-hot on the target); also counts steps whose argmax is the target.
ag::Var restricted_ce(const ag::Var& logits, std::span<const PrmSample* const> s, const PrmVocab& v, int* right) {
  const int64_t V = logits.dim(1), K = static_cast<int64_t>(v.reward_ids.size());
  std::vector<double> q, prob;
  double loss = 0;
  int64_t row = 0;
  for (const auto* x : s)
    for (size_t j = 0; j < x->steps.size(); ++j, ++row) {
      std::vector<double> z(static_cast<size_t>(K));
      double mx = -INFINITY;
      for (int64_t k = 0; k < K; ++k) z[k] = logits.f32()[row * V + v.reward_ids[k]], mx = std::max(mx, z[k]);
      double sum = 0;
      for (auto& e : z) sum += std::exp(e - mx);
      int64_t best = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double lp = z[k] - mx - std::log(sum);
        const double qk = K == 2 ? (k == 0 ? x->positive[j] : 1.0 - x->positive[j]) : (k == x->target[j] ? 1.0 : 0.0);
        loss -= qk * lp;
        q.push_back(qk);
        prob.push_back(std::exp(lp));
        if (z[k] > z[best]) best = k;
      }
      if (right) *right += best == x->target[j];
    }
  const bool rec = ag::recording({&logits});
  ag::Var out(Tensor::empty({1}), rec);
  out.f32()[0] = static_cast<float>(loss);
  if (rec) {
    std::vector<int32_t> ids = v.reward_ids;
    ag::active_tape()->push([logits, out, q, prob, ids, V, K]() {
      if (!out.has_grad()) return;
      const float g = out.grad_f32()[0];
      float* gl = logits.grad_f32();
      for (size_t i = 0; i < q.size(); ++i) {
        const int64_t r = static_cast<int64_t>(i) / K, k = static_cast<int64_t>(i) % K;
        gl[r * V + ids[k]] += static_cast<float>(g * (prob[i] - q[i]));  // Σq = 1 per row
      }
    });
  }
  return out;
}

}  // namespace

double prm_accuracy(model::DecoderModel& model, std::span<const PrmSample> samples, const PrmVocab& v) {
  if (samples.empty()) return std::nan("");
  int right = 0;
  int64_t steps = 0;
  for (size_t i = 0; i < samples.size(); i += 16) {
    std::vector<const PrmSample*> part;
    for (size_t k = i; k < std::min(samples.size(), i + 16); ++k)
      part.push_back(&samples[k]), steps += samples[k].steps.size();
    std::unique_ptr<model::KVCache> c;
    restricted_ce(step_logits(model, part, c), part, v, &right);
  }
  return static_cast<double>(right) / static_cast<double>(steps);
}

PrmResult train_prm(model::DecoderModel& model, std::span<const PrmSample> train, std::span<const PrmSample> eval,
                    const PrmVocab& v, const LmTrainOptions& o) {
  check(!model.has_score_head(), "a process reward model is a causal LM (no score head)");
  PrmResult res;
  res.accuracy_before = prm_accuracy(model, eval, v);
  // The loss is the mean over every step of the optimizer step's samples.
  auto micro = [&](std::span<const size_t> idx, float share) {
    std::vector<const PrmSample*> s;
    int64_t steps = 0;
    for (size_t k : idx) s.push_back(&train[k]), steps += static_cast<int64_t>(train[k].steps.size());
    PairMicroResult r;
    ag::Tape tape;
    ag::Var l;
    std::unique_ptr<model::KVCache> cache;
    int right = 0;
    {
      ag::TapeScope scope(tape);
      // share / steps: per-micro-batch step mean, weighted as the trainer weights micro-batches
      l = ag::scale(restricted_ce(step_logits(model, s, cache), s, v, &right),
                    share / static_cast<float>(std::max<int64_t>(1, steps)));
    }
    r.sums["acc"] = static_cast<double>(right) * static_cast<double>(idx.size()) / static_cast<double>(steps);
    r.loss = l.f32()[0];
    tape.backward(l);
    return r;
  };
  res.eval_accuracy = std::nan("");
  res.losses = train_on_pairs(model, train.size(), o, micro, [&]() -> std::map<std::string, double> {
    res.eval_accuracy = prm_accuracy(model, eval, v);
    if (eval.empty()) return {};
    return {{"acc", res.eval_accuracy}};
  });
  save_trained(model, o);
  if (!o.plot_path.empty()) plot_losses(o.plot_path, o.label, {{"prm", res.losses}});
  return res;
}

}  // namespace yak::train
