// Reverse-mode autodiff: a Var is a tensor with an optional gradient; ops record their backward on
// the active Tape while one is open and an input requires grad. With no tape the same ops are plain
// inference: the model is written once and trained by opening a tape around its forward.
// Var handles are reference counted in place and their records are recycled, so creating Vars in a
// steady loop costs no heap allocation.
#pragma once
#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "yak/tensor/tensor.h"

namespace yak::ag {

struct VarData {
  std::atomic<int32_t> refs{1};
  Tensor value;
  Tensor grad;  // f32, same shape and device as value; allocated on first use
  bool requires_grad = false;
};

class Var {
 public:
  Var() = default;
  explicit Var(Tensor value, bool requires_grad = false);
  Var(const Var& o) : d_(o.d_) {
    if (d_) d_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  Var(Var&& o) noexcept : d_(o.d_) { o.d_ = nullptr; }
  Var& operator=(Var o) noexcept {
    std::swap(d_, o.d_);
    return *this;
  }
  ~Var() { release(); }

  bool defined() const { return d_ != nullptr; }
  // Var is a handle (like shared_ptr): const handles still reach mutable data.
  Tensor& value() const { return d_->value; }
  // The value as host f32 (checked: throws yak::Error for another dtype or device).
  float* f32() const { return d_->value.data<float>(); }
  int64_t dim(int i) const { return d_->value.dim(i); }
  int64_t numel() const { return d_->value.numel(); }
  Device device() const { return d_->value.device(); }

  bool requires_grad() const { return d_ && d_->requires_grad; }
  void set_requires_grad(bool r) { d_->requires_grad = r; }
  bool has_grad() const { return d_ && d_->grad.defined(); }
  // The gradient buffer, created as zeros on first use.
  Tensor& grad() const;
  float* grad_f32() const { return grad().data<float>(); }
  void zero_grad() const;  // drops the buffer
  const VarData* id() const { return d_; }

 private:
  void release();
  VarData* d_ = nullptr;
};

// Records backward closures; backward() runs them newest first and empties the tape.
class Tape {
 public:
  void push(std::function<void()> fn) { fns_.push_back(std::move(fn)); }
  // Seeds d(loss)/d(loss) = seed (loss must be a one-element Var) and runs every closure.
  void backward(Var& loss, float seed = 1.0f);
  // Runs every closure newest first (the caller has seeded the output gradients) and empties the tape.
  void run();
  size_t size() const { return fns_.size(); }
  void clear() { fns_.clear(); }

 private:
  std::vector<std::function<void()>> fns_;
};

// Makes `tape` the active tape of this thread for the scope's lifetime.
class TapeScope {
 public:
  explicit TapeScope(Tape& tape);
  ~TapeScope();
  TapeScope(const TapeScope&) = delete;
  TapeScope& operator=(const TapeScope&) = delete;

 private:
  Tape* prev_;
};

// Suspends recording for the scope (no tape is active inside).
class NoTapeScope {
 public:
  NoTapeScope();
  ~NoTapeScope();
  NoTapeScope(const NoTapeScope&) = delete;
  NoTapeScope& operator=(const NoTapeScope&) = delete;

 private:
  Tape* prev_;
};

Tape* active_tape();
// True when a tape is active and any of the inputs requires grad: the op must record.
bool recording(std::initializer_list<const Var*> inputs);

}  // namespace yak::ag
