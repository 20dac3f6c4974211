// The CPU backend: the reference every other backend is tested against and falls back to. Its
// kernels (kernels.h) are chosen per instruction set at run time; matrix products of many rows
// go through OpenBLAS or the 16-bit tile path (gemm.cpp), attention is tiled flash-style
// (attention.cpp). Work is spread over the thread pool (thread_pool.h).
#pragma once
#include "yak/ops/backend.h"

namespace yak::ops::cpu {

class CpuBackend final : public Backend {
 public:
  const char* name() const override { return "cpu"; }
  DeviceType device_type() const override { return DeviceType::CPU; }
  bool supports(Op op, DType dtype) const override;

  void linear(const Tensor& x, const Tensor& W, const Tensor* b, Tensor& y) override;
  void linear_group(const Tensor& x, std::span<const LinearTarget> targets) override;
  void linear_backward(const Tensor& dy, const Tensor& x, const Tensor& W, Tensor* dx, Tensor* dW, Tensor* db) override;
  void embedding(const Tensor& E, std::span<const int32_t> ids, Tensor& out) override;
  void embedding_backward(const Tensor& dout, std::span<const int32_t> ids, Tensor& dE) override;
  void rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& out) override;
  void rms_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, float eps, Tensor* dx,
                         Tensor* dw) override;
  void rope(const Tensor& x, const Tensor& cs, int64_t head_dim, Tensor& out) override;
  void rope_backward(const Tensor& dy, const Tensor& cs, int64_t head_dim, Tensor& dx) override;
  void swiglu(const Tensor& gate, const Tensor& up, Tensor& out) override;
  void swiglu_backward(const Tensor& dout, const Tensor& gate, const Tensor& up, Tensor* dgate, Tensor* dup) override;
  void layer_norm(const Tensor& x, const Tensor& w, const Tensor* b, float eps, Tensor& out) override;
  void layer_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, float eps, Tensor* dx, Tensor* dw,
                           Tensor* db) override;
  void gelu(const Tensor& x, GeluKind kind, Tensor& out) override;
  void gelu_backward(const Tensor& dout, const Tensor& x, GeluKind kind, Tensor& dx) override;
  void kv_write(const Tensor& k, const Tensor& v, const AttentionArgs& a, KvPages& cache) override;
  void attention(const Tensor& q, const KvPages& cache, const AttentionArgs& a, Tensor& out, Tensor* lse) override;
  void attention_backward(const Tensor& dout, const Tensor& q, const Tensor& out, const Tensor& lse,
                          const KvPages& cache, const AttentionArgs& a, Tensor* dq, Tensor* dk, Tensor* dv) override;
  void softmax(const Tensor& x, Tensor& out) override;
  void softmax_backward(const Tensor& dy, const Tensor& y, Tensor& dx) override;
  void token_logprobs(const Tensor& logits, std::span<const int32_t> targets, int32_t ignore, Tensor& lp,
                      Tensor& lse) override;
  void token_logprobs_backward(const Tensor& dlp, const Tensor& logits, const Tensor& lse,
                               std::span<const int32_t> targets, int32_t ignore, Tensor& dlogits) override;
  void entropy(const Tensor& logits, Tensor& H, Tensor& lse) override;
  void entropy_backward(const Tensor& dH, const Tensor& logits, const Tensor& lse, const Tensor& H,
                        Tensor& dlogits) override;
  void add(const Tensor& a, const Tensor& b, Tensor& out) override;
  void scale(const Tensor& x, float s, Tensor& out) override;
  void axpy(float alpha, const Tensor& x, Tensor& y) override;
  void mul(const Tensor& a, const Tensor& b, Tensor& out) override;
  void fill(Tensor& t, float value) override;
  void convert(const Tensor& src, Tensor& dst) override;
  void gather_rows(const Tensor& x, std::span<const int32_t> rows, Tensor& out) override;
  void scatter_add_rows(const Tensor& d, std::span<const int32_t> rows, Tensor& dx) override;
  void segment_sum(const Tensor& x, std::span<const int32_t> segment, Tensor& out) override;
  void dropout(const Tensor& x, float p, uint64_t seed, Tensor& out) override;
  double sum_squares(const Tensor& x) override;
  void adamw(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const AdamWArgs& a) override;
};

}  // namespace yak::ops::cpu
