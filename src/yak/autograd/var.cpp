#include "yak/autograd/var.h"

#include <cstring>

#include "yak/base/error.h"

namespace yak::ag {

namespace {
thread_local Tape* g_tape = nullptr;
}

Var::Var(Tensor value, bool requires_grad) : d_(std::make_shared<VarData>()) {
  d_->value = std::move(value);
  d_->requires_grad = requires_grad;
}

Tensor& Var::grad() const {
  if (d_->grad.raw() == nullptr) d_->grad = Tensor::zeros(d_->value.shape());
  return d_->grad;
}

void Var::zero_grad() const {
  if (d_) d_->grad = Tensor();
}

void Tape::backward(Var& loss, float seed) {
  check(loss.numel() == 1, "backward: the loss must have one element, got " + shape_str(loss.value().shape()));
  loss.grad().data<float>()[0] += seed;
  run();
}

void Tape::run() {
  for (auto it = fns_.rbegin(); it != fns_.rend(); ++it) (*it)();
  fns_.clear();
}

NoTapeScope::NoTapeScope() : prev_(g_tape) {
  g_tape = nullptr;
}
NoTapeScope::~NoTapeScope() {
  g_tape = prev_;
}

TapeScope::TapeScope(Tape& tape) : prev_(g_tape) {
  g_tape = &tape;
}
TapeScope::~TapeScope() {
  g_tape = prev_;
}

Tape* active_tape() {
  return g_tape;
}

bool recording(std::initializer_list<const Var*> inputs) {
  if (!g_tape) return false;
  for (const Var* v : inputs)
    if (v && v->requires_grad()) return true;
  return false;
}

}  // namespace yak::ag
