// Every differentiable op's backward against central finite differences of its forward.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

#include "yak/autograd/functions.h"

using namespace yak;
using namespace yak::ag;

namespace {

Var rand_var(Shape shape, std::mt19937& rng, float sd = 1.0f, float mean = 0.0f) {
  Tensor t = Tensor::empty(std::move(shape));
  std::normal_distribution<float> nd(mean, sd);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = nd(rng);
  return Var(t, true);
}

// loss = Σ out ⊙ R for a fixed random R; compares tape gradients of every input with central
// differences (h = 1e-2 in f32, accumulated in double).
void check_grads(const std::function<Var()>& f, std::vector<Var> inputs, float rtol = 2e-2f, float atol = 2e-3f) {
  Var probe = f();
  std::mt19937 rng(99);
  std::normal_distribution<float> nd;
  std::vector<float> R(static_cast<size_t>(probe.numel()));
  for (auto& r : R) r = nd(rng);
  auto loss_of = [&](const Var& out) {
    double s = 0;
    for (int64_t i = 0; i < out.numel(); ++i) s += static_cast<double>(out.f32()[i]) * R[i];
    return s;
  };
  for (auto& v : inputs) v.zero_grad();
  Tape tape;
  {
    TapeScope scope(tape);
    Var out = f();
    Var seed(Tensor::empty({1}), false);
    // backward of Σ out ⊙ R: seed out.grad directly
    float* g = out.grad_f32();
    for (int64_t i = 0; i < out.numel(); ++i) g[i] = R[i];
  }
  // The tape holds the closures; run them by a dummy backward on a one-element var.
  Var one(Tensor::zeros({1}), true);
  tape.backward(one, 0.0f);
  const float h = 1e-2f;
  for (size_t k = 0; k < inputs.size(); ++k) {
    Var& v = inputs[k];
    ASSERT_TRUE(v.has_grad()) << "input " << k << " got no gradient";
    for (int64_t i = 0; i < v.numel(); ++i) {
      float keep = v.f32()[i];
      v.f32()[i] = keep + h;
      double lp = loss_of(f());
      v.f32()[i] = keep - h;
      double lm = loss_of(f());
      v.f32()[i] = keep;
      double num = (lp - lm) / (2 * h);
      double ana = v.grad_f32()[i];
      ASSERT_NEAR(ana, num, atol + rtol * std::fabs(num)) << "input " << k << " element " << i;
    }
  }
}

TEST(AutogradOps, Linear) {
  std::mt19937 rng(1);
  Var x = rand_var({3, 5}, rng), W = rand_var({4, 5}, rng), b = rand_var({4}, rng);
  check_grads([&] { return linear(x, W, &b); }, {x, W, b});
}

TEST(AutogradOps, Embedding) {
  std::mt19937 rng(2);
  Var E = rand_var({6, 4}, rng);
  std::vector<int32_t> ids = {1, 3, 1, 5};
  check_grads([&] { return embedding(E, ids); }, {E});
}

TEST(AutogradOps, RmsNormRowsAndHeads) {
  std::mt19937 rng(3);
  Var x = rand_var({3, 8}, rng), w = rand_var({8}, rng, 0.3f, 1.0f), wh = rand_var({4}, rng, 0.3f, 1.0f);
  check_grads([&] { return rms_norm(x, w, 1e-6f); }, {x, w});
  check_grads([&] { return rms_norm(x, wh, 1e-6f); }, {x, wh});  // per-head groups of 4
}

TEST(AutogradOps, LayerNormAndGelu) {
  std::mt19937 rng(13);
  Var x = rand_var({3, 8}, rng), w = rand_var({8}, rng, 0.3f, 1.0f), b = rand_var({8}, rng);
  check_grads([&] { return layer_norm(x, w, &b, 1e-6f); }, {x, w, b});
  check_grads([&] { return layer_norm(x, w, nullptr, 1e-6f); }, {x, w});
  check_grads([&] { return gelu(x, ops::GeluKind::Erf); }, {x});
  check_grads([&] { return gelu(x, ops::GeluKind::Tanh); }, {x});
}

TEST(AutogradOps, RowsPutAddScaleReshape) {
  std::mt19937 rng(14);
  Var x = rand_var({5, 4}, rng), v = rand_var({2, 4}, rng);
  std::vector<int32_t> rows = {3, 1};
  check_grads([&] { return put_rows(x, rows, v); }, {x, v});
  check_grads([&] { return add_rows(x, rows, v); }, {x, v});
  Tensor c = Tensor::empty({5, 4});
  for (int64_t i = 0; i < c.numel(); ++i) c.data<float>()[i] = 0.25f * static_cast<float>(i % 7) - 0.5f;
  check_grads([&] { return mul_by(x, c); }, {x});
  check_grads([&] { return reshape(x, {10, 2}); }, {x});
  // put_rows replaces the rows exactly and leaves the others alone.
  Var y = put_rows(x, rows, v);
  for (int64_t r = 0; r < 5; ++r)
    for (int64_t i = 0; i < 4; ++i) {
      const float want = r == 3 ? v.value().data<float>()[i] : r == 1 ? v.value().data<float>()[4 + i]
                                                                      : x.value().data<float>()[r * 4 + i];
      EXPECT_EQ(y.value().data<float>()[r * 4 + i], want) << r << "," << i;
    }
}

TEST(AutogradOps, Rope) {
  std::mt19937 rng(4);
  const int64_t T = 3, hd = 4;
  Var x = rand_var({T, 2 * hd}, rng);
  Tensor cs = Tensor::empty({T, hd});
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < hd / 2; ++i) {
      cs.data<float>()[t * hd + i] = std::cos(0.7f * (t + 1) * (i + 1));
      cs.data<float>()[t * hd + hd / 2 + i] = std::sin(0.7f * (t + 1) * (i + 1));
    }
  check_grads([&] { return rope(x, cs, hd); }, {x});
}

TEST(AutogradOps, SwigluAddScaleGather) {
  std::mt19937 rng(5);
  Var g = rand_var({2, 6}, rng), u = rand_var({2, 6}, rng), a = rand_var({3, 2}, rng), b = rand_var({3, 2}, rng);
  check_grads([&] { return swiglu(g, u); }, {g, u});
  check_grads([&] { return scale(add(a, b), 0.5f); }, {a, b});
  std::vector<int32_t> rows = {2, 0, 2};
  check_grads([&] { return gather_rows(a, rows); }, {a});
}

TEST(AutogradOps, CrossEntropyAndLogprobs) {
  std::mt19937 rng(6);
  Var logits = rand_var({4, 7}, rng, 2.0f);
  std::vector<int32_t> targets = {3, -100, 0, 6};
  check_grads([&] { return cross_entropy_sum(logits, targets); }, {logits});
  check_grads([&] { return token_logprobs(logits, targets); }, {logits});
  check_grads([&] { return token_entropy(logits); }, {logits});
  // entropy of a uniform row is log V; of a near one-hot row, near 0
  Var two(Tensor::zeros({2, 5}), false);
  two.f32()[5] = 40.0f;
  Var h = token_entropy(two);
  EXPECT_NEAR(h.f32()[0], std::log(5.0), 1e-6);
  EXPECT_NEAR(h.f32()[1], 0.0, 1e-6);
  // value: Σ over counted rows of logsumexp - logit[target]
  Var ce = cross_entropy_sum(logits, targets);
  double want = 0;
  for (int r : {0, 2, 3}) {
    double s = 0;
    for (int j = 0; j < 7; ++j) s += std::exp(static_cast<double>(logits.f32()[r * 7 + j]));
    want += std::log(s) - logits.f32()[r * 7 + targets[r]];
  }
  EXPECT_NEAR(ce.f32()[0], want, 1e-4);
}

TEST(AutogradOps, NoTapeNoRecording) {
  std::mt19937 rng(7);
  Var x = rand_var({2, 3}, rng), W = rand_var({4, 3}, rng);
  Var y = linear(x, W);
  EXPECT_FALSE(y.requires_grad());
  Tape tape;
  TapeScope scope(tape);
  Var frozen_x(x.value(), false), frozen_w(W.value(), false);
  linear(frozen_x, frozen_w);
  EXPECT_EQ(tape.size(), 0u);
  linear(x, frozen_w);
  EXPECT_EQ(tape.size(), 1u);
}

}  // namespace

namespace {

TEST(AutogradOps, SegmentSum) {
  std::mt19937 rng(8);
  Var x = rand_var({6}, rng);
  std::vector<int32_t> seg = {0, 0, 2, 1, 2, 2};
  check_grads([&] { return segment_sum(x, seg, 3); }, {x});
  Var s = segment_sum(x, seg, 3);
  EXPECT_FLOAT_EQ(s.f32()[1], x.f32()[3]);
}

}  // namespace
