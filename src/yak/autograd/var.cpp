#include "yak/autograd/var.h"

#include <mutex>

#include "yak/base/error.h"
#include "yak/ops/ops.h"

namespace yak::ag {

namespace {
thread_local Tape* g_tape = nullptr;

// Recycled VarData records (never returned to the system).
class VarPool {
 public:
  VarData* get() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (!free_.empty()) {
        VarData* d = free_.back();
        free_.pop_back();
        return new (d) VarData;
      }
    }
    return new (::operator new(sizeof(VarData))) VarData;
  }
  void put(VarData* d) {
    d->~VarData();
    std::lock_guard<std::mutex> lk(mu_);
    free_.push_back(d);
  }

 private:
  std::mutex mu_;
  std::vector<VarData*> free_;
};

VarPool& pool() {
  static VarPool* p = new VarPool;
  return *p;
}
}  // namespace

Var::Var(Tensor value, bool requires_grad) : d_(pool().get()) {
  d_->value = std::move(value);
  d_->requires_grad = requires_grad;
}

void Var::release() {
  if (d_ && d_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) pool().put(d_);
  d_ = nullptr;
}

Tensor& Var::grad() const {
  if (!d_->grad.defined()) {
    d_->grad = Tensor::empty(d_->value.shape(), DType::F32, d_->value.device());
    ops::fill(d_->grad, 0.0f);
  }
  return d_->grad;
}

void Var::zero_grad() const {
  if (d_) d_->grad = Tensor();
}

void Tape::backward(Var& loss, float seed) {
  check(loss.numel() == 1, "backward: the loss must have one element, got " + shape_str(loss.value().shape()));
  Tensor one = Tensor::empty({1});
  one.data<float>()[0] = seed;
  ops::add(loss.grad(), one.to(loss.device()).reshape(loss.grad().shape()), loss.grad());
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
