#include "yak/autograd/functions.h"

#include "yak/base/error.h"
#include "yak/ops/ops.h"

namespace yak::ag {

namespace {

Tensor new_like(const Shape& shape, const Var& on) {
  return Tensor::empty(shape, DType::F32, on.device());
}
Var make_out(const Shape& shape, const Var& on, bool rec) {
  return Var(new_like(shape, on), rec);
}
Tensor* grad_of(const Var& v) {
  return v.defined() && v.requires_grad() ? &v.grad() : nullptr;
}
std::vector<int32_t> copy_ids(std::span<const int32_t> ids) {
  return {ids.begin(), ids.end()};
}

}  // namespace

Var embedding(const Var& E, std::span<const int32_t> ids) {
  const bool rec = recording({&E});
  Var out = make_out({static_cast<int64_t>(ids.size()), E.dim(1)}, E, rec);
  ops::embedding(E.value(), ids, out.value());
  if (rec)
    active_tape()->push([E, out, keep = copy_ids(ids)]() {
      if (out.has_grad()) ops::embedding_backward(out.grad(), keep, E.grad());
    });
  return out;
}

Var linear(const Var& x, const Var& W, const Var* bias) {
  const bool rec = recording({&x, &W, bias});
  Var out = make_out({x.dim(0), W.dim(0)}, x, rec);
  ops::linear(x.value(), W.value(), bias ? &bias->value() : nullptr, out.value());
  if (rec) {
    Var b = bias ? *bias : Var();
    active_tape()->push([x, W, b, out]() {
      if (!out.has_grad()) return;
      if (!(!W.requires_grad() || W.value().dtype() == DType::F32)) [[unlikely]]
        throw Error("linear: a trained weight must be f32 (master weights)");
      ops::linear_backward(out.grad(), x.value(), W.value(), grad_of(x), grad_of(W), grad_of(b));
    });
  }
  return out;
}

void linear_group(const Var& x, std::span<const Var* const> W, std::span<const Var* const> b, std::span<Var> out) {
  bool rec = recording({&x});
  for (size_t i = 0; i < W.size(); ++i) rec = rec || recording({W[i], b[i]});
  if (rec || W.size() > 4) {
    for (size_t i = 0; i < W.size(); ++i) out[i] = linear(x, *W[i], b[i]);
    return;
  }
  ops::LinearTarget targets[4];
  for (size_t i = 0; i < W.size(); ++i) {
    out[i] = make_out({x.dim(0), W[i]->dim(0)}, x, false);
    targets[i] = {&W[i]->value(), b[i] ? &b[i]->value() : nullptr, &out[i].value()};
  }
  ops::linear_group(x.value(), std::span<const ops::LinearTarget>(targets, W.size()));
}

Var rms_norm(const Var& x, const Var& w, float eps) {
  const bool rec = recording({&x, &w});
  Var out = make_out(x.value().shape(), x, rec);
  ops::rms_norm(x.value(), w.value(), eps, out.value());
  if (rec)
    active_tape()->push([x, w, out, eps]() {
      if (out.has_grad()) ops::rms_norm_backward(out.grad(), x.value(), w.value(), eps, grad_of(x), grad_of(w));
    });
  return out;
}

Var layer_norm(const Var& x, const Var& w, const Var* bias, float eps) {
  const bool rec = recording({&x, &w, bias});
  Var out = make_out(x.value().shape(), x, rec);
  ops::layer_norm(x.value(), w.value(), bias ? &bias->value() : nullptr, eps, out.value());
  if (rec) {
    Var b = bias ? *bias : Var();
    active_tape()->push([x, w, b, out, eps]() {
      if (out.has_grad())
        ops::layer_norm_backward(out.grad(), x.value(), w.value(), eps, grad_of(x), grad_of(w), grad_of(b));
    });
  }
  return out;
}

Var gelu(const Var& x, ops::GeluKind kind) {
  const bool rec = recording({&x});
  Var out = make_out(x.value().shape(), x, rec);
  ops::gelu(x.value(), kind, out.value());
  if (rec)
    active_tape()->push([x, out, kind]() {
      if (out.has_grad() && x.requires_grad()) ops::gelu_backward(out.grad(), x.value(), kind, x.grad());
    });
  return out;
}

Var add_rows(const Var& x, std::span<const int32_t> rows, const Var& v) {
  const bool rec = recording({&x, &v});
  Var out = make_out(x.value().shape(), x, rec);
  ops::convert(x.value(), out.value());
  ops::scatter_add_rows(v.value(), rows, out.value());
  if (rec)
    active_tape()->push([x, v, out, keep = copy_ids(rows)]() {
      if (!out.has_grad()) return;
      if (x.requires_grad()) ops::axpy(1.0f, out.grad(), x.grad());
      if (v.requires_grad()) {
        Tensor g = new_like(v.value().shape(), v);
        ops::gather_rows(out.grad(), keep, g);
        ops::axpy(1.0f, g, v.grad());
      }
    });
  return out;
}

namespace {
// t with rows `rows` set to exactly zero (x + (-x) is +0 for every finite x).
void zero_rows(Tensor& t, std::span<const int32_t> rows) {
  Tensor g = Tensor::empty({static_cast<int64_t>(rows.size()), t.dim(1)}, DType::F32, t.device());
  ops::gather_rows(t, rows, g);
  ops::scale(g, -1.0f, g);
  ops::scatter_add_rows(g, rows, t);
}
}  // namespace

Var put_rows(const Var& x, std::span<const int32_t> rows, const Var& v) {
  const bool rec = recording({&x, &v});
  Var out = make_out(x.value().shape(), x, rec);
  ops::convert(x.value(), out.value());
  zero_rows(out.value(), rows);
  ops::scatter_add_rows(v.value(), rows, out.value());
  if (rec)
    active_tape()->push([x, v, out, keep = copy_ids(rows)]() {
      if (!out.has_grad()) return;
      if (x.requires_grad()) {
        Tensor d = new_like(out.value().shape(), out);
        ops::convert(out.grad(), d);
        zero_rows(d, keep);
        ops::axpy(1.0f, d, x.grad());
      }
      if (v.requires_grad()) {
        Tensor g = new_like(v.value().shape(), v);
        ops::gather_rows(out.grad(), keep, g);
        ops::axpy(1.0f, g, v.grad());
      }
    });
  return out;
}

Var mul_by(const Var& x, const Tensor& c) {
  const bool rec = recording({&x});
  Var out = make_out(x.value().shape(), x, rec);
  ops::mul(x.value(), c, out.value());
  if (rec)
    active_tape()->push([x, out, c]() {
      if (!out.has_grad() || !x.requires_grad()) return;
      Tensor g = new_like(x.value().shape(), x);
      ops::mul(out.grad(), c, g);
      ops::axpy(1.0f, g, x.grad());
    });
  return out;
}

Var reshape(const Var& x, const Shape& shape) {
  if (!x.value().is_contiguous()) [[unlikely]]
    throw Error("reshape: the tensor must be contiguous");
  const bool rec = recording({&x});
  if (!rec) return Var(x.value().reshape(shape));
  Var out = make_out(shape, x, true);
  ops::convert(x.value().reshape(shape), out.value());
  active_tape()->push([x, out]() {
    if (out.has_grad() && x.requires_grad()) ops::axpy(1.0f, out.grad().reshape(x.value().shape()), x.grad());
  });
  return out;
}

Var rope(const Var& x, const Tensor& cs, int64_t hd) {
  const bool rec = recording({&x});
  Var out = make_out(x.value().shape(), x, rec);
  ops::rope(x.value(), cs, hd, out.value());
  if (rec)
    active_tape()->push([x, out, cs, hd]() {
      if (out.has_grad() && x.requires_grad()) ops::rope_backward(out.grad(), cs, hd, x.grad());
    });
  return out;
}

Var swiglu(const Var& gate, const Var& up) {
  const bool rec = recording({&gate, &up});
  Var out = make_out(gate.value().shape(), gate, rec);
  ops::swiglu(gate.value(), up.value(), out.value());
  if (rec)
    active_tape()->push([gate, up, out]() {
      if (out.has_grad()) ops::swiglu_backward(out.grad(), gate.value(), up.value(), grad_of(gate), grad_of(up));
    });
  return out;
}

Var add(const Var& a, const Var& b) {
  const bool rec = recording({&a, &b});
  Var out = make_out(a.value().shape(), a, rec);
  ops::add(a.value(), b.value(), out.value());
  if (rec)
    active_tape()->push([a, b, out]() {
      if (!out.has_grad()) return;
      for (const Var* v : {&a, &b})
        if (v->requires_grad()) ops::axpy(1.0f, out.grad(), v->grad());
    });
  return out;
}

Var scale(const Var& x, float s) {
  const bool rec = recording({&x});
  Var out = make_out(x.value().shape(), x, rec);
  ops::scale(x.value(), s, out.value());
  if (rec)
    active_tape()->push([x, out, s]() {
      if (out.has_grad() && x.requires_grad()) ops::axpy(s, out.grad(), x.grad());
    });
  return out;
}

Var segment_sum(const Var& x, std::span<const int32_t> segment, int64_t n) {
  const bool rec = recording({&x});
  Var out = make_out({n}, x, rec);
  ops::fill(out.value(), 0.0f);
  ops::segment_sum(x.value(), segment, out.value());
  if (rec)
    active_tape()->push([x, out, seg = copy_ids(segment)]() {
      if (!out.has_grad() || !x.requires_grad()) return;
      Tensor g = new_like({static_cast<int64_t>(seg.size())}, x);  // g[i] = d[seg[i]]
      ops::gather_rows(out.grad(), seg, g);
      ops::axpy(1.0f, g, x.grad());
    });
  return out;
}

Var dropout(const Var& x, float p, uint64_t seed) {
  if (p <= 0.0f) return x;
  const bool rec = recording({&x});
  Var out = make_out(x.value().shape(), x, rec);
  ops::dropout(x.value(), p, seed, out.value());
  if (rec)
    active_tape()->push([x, out, p, seed]() {
      if (!out.has_grad() || !x.requires_grad()) return;
      Tensor g = new_like(x.value().shape(), x);  // the same mask applied to the gradient
      ops::dropout(out.grad(), p, seed, g);
      ops::axpy(1.0f, g, x.grad());
    });
  return out;
}

Var gather_rows(const Var& x, std::span<const int32_t> rows) {
  const bool flat = x.value().ndim() == 1;  // a vector: rows are its elements
  const int64_t n = static_cast<int64_t>(rows.size());
  const bool rec = recording({&x});
  Var out = make_out(flat ? Shape{n} : Shape{n, x.dim(1)}, x, rec);
  ops::gather_rows(x.value(), rows, out.value());
  if (rec)
    active_tape()->push([x, out, keep = copy_ids(rows)]() {
      if (out.has_grad() && x.requires_grad()) ops::scatter_add_rows(out.grad(), keep, x.grad());
    });
  return out;
}

namespace {

// Σ of a small per-row vector in double, read on the host.
double host_sum(const Tensor& t) {
  const Tensor h = t.to(cpu_device());
  const float* p = h.data<float>();
  double s = 0;
  for (int64_t i = 0; i < h.numel(); ++i) s += p[i];
  return s;
}

Tensor host_scalar(float v, Device d) {
  Tensor t = Tensor::empty({1});
  t.data<float>()[0] = v;
  return t.to(d);
}

}  // namespace

Var cross_entropy_sum(const Var& logits, std::span<const int32_t> targets, int32_t ignore_index) {
  const int64_t n = logits.dim(0);
  const bool rec = recording({&logits});
  Tensor lp = new_like({n}, logits), lse = new_like({n}, logits);
  ops::token_logprobs(logits.value(), targets, ignore_index, lp, lse);
  Var out(host_scalar(static_cast<float>(-host_sum(lp)), logits.device()), rec);
  if (rec)
    active_tape()->push([logits, out, lse, tg = copy_ids(targets), ignore_index]() {
      if (!out.has_grad()) return;
      const float g = out.grad().to(cpu_device()).data<float>()[0];
      Tensor d = new_like({static_cast<int64_t>(tg.size())}, logits);
      ops::fill(d, -g);  // d(-Σ lp)/d lp = -1; ignored rows are skipped by the backward
      ops::token_logprobs_backward(d, logits.value(), lse, tg, ignore_index, logits.grad());
    });
  return out;
}

Var token_logprobs(const Var& logits, std::span<const int32_t> targets, int32_t ignore_index) {
  const int64_t n = logits.dim(0);
  const bool rec = recording({&logits});
  Var out = make_out({n}, logits, rec);
  Tensor lse = new_like({n}, logits);
  ops::token_logprobs(logits.value(), targets, ignore_index, out.value(), lse);
  if (rec)
    active_tape()->push([logits, out, lse, tg = copy_ids(targets), ignore_index]() {
      if (out.has_grad())
        ops::token_logprobs_backward(out.grad(), logits.value(), lse, tg, ignore_index, logits.grad());
    });
  return out;
}

Var token_entropy(const Var& logits) {
  const int64_t n = logits.dim(0);
  const bool rec = recording({&logits});
  Var out = make_out({n}, logits, rec);
  Tensor lse = new_like({n}, logits);
  ops::entropy(logits.value(), out.value(), lse);
  if (rec)
    active_tape()->push([logits, out, lse]() {
      if (out.has_grad()) ops::entropy_backward(out.grad(), logits.value(), lse, out.value(), logits.grad());
    });
  return out;
}

}  // namespace yak::ag
