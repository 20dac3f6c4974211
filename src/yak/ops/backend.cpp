// The registry and the host fallback every backend inherits: operands on another device are
// copied to the host, the CPU backend computes, and written or accumulated results go back.
#include "yak/ops/backend.h"

#include <array>
#include <deque>
#include <mutex>

#include "yak/base/error.h"
#include "yak/ops/cpu/cpu_backend.h"

namespace yak::ops {

const char* op_name(Op op) {
  static const char* names[] = {"linear",
                                "linear_group",
                                "linear_backward",
                                "embedding",
                                "embedding_backward",
                                "rms_norm",
                                "rms_norm_backward",
                                "rope",
                                "rope_backward",
                                "swiglu",
                                "swiglu_backward",
                                "layer_norm",
                                "layer_norm_backward",
                                "gelu",
                                "gelu_backward",
                                "kv_write",
                                "attention",
                                "attention_backward",
                                "softmax",
                                "softmax_backward",
                                "token_logprobs",
                                "token_logprobs_backward",
                                "entropy",
                                "entropy_backward",
                                "add",
                                "scale",
                                "axpy",
                                "mul",
                                "fill",
                                "convert",
                                "gather_rows",
                                "scatter_add_rows",
                                "segment_sum",
                                "dropout",
                                "sum_squares",
                                "adamw"};
  static_assert(sizeof(names) / sizeof(names[0]) == static_cast<size_t>(Op::Count));
  return names[static_cast<int>(op)];
}

namespace {

std::mutex g_mu;
std::array<std::unique_ptr<Backend>, kDeviceTypeCount>& registry() {
  static auto* r = [] {
    auto* a = new std::array<std::unique_ptr<Backend>, kDeviceTypeCount>;
    (*a)[static_cast<int>(DeviceType::CPU)] = std::make_unique<cpu::CpuBackend>();
    return a;
  }();
  return *r;
}

// Host copies of a fallback's operands; outputs are copied back by commit().
class HostStage {
 public:
  const Tensor& in(const Tensor& t) {
    if (!t.defined() || t.is_host()) return t;
    return held_.emplace_back(t.to(cpu_device()));
  }
  const Tensor* in(const Tensor* t) { return t ? &in(*t) : nullptr; }
  // An output (or accumulated gradient): its current contents on the host.
  Tensor& out(Tensor& t) {
    if (t.is_host()) return t;
    outs_.push_back({&t, t.to(cpu_device())});
    return outs_.back().host;
  }
  Tensor* out(Tensor* t) { return t ? &out(*t) : nullptr; }
  KvPages in(const KvPages& c) { return {in(c.k), in(c.v), in(c.page_table), c.page_size}; }
  void commit() {
    for (auto& o : outs_) o.dev->copy_from(o.host);
  }

 private:
  struct Out {
    Tensor* dev;
    Tensor host;
  };
  std::deque<Tensor> held_;
  std::deque<Out> outs_;
};

Backend& host() {
  return cpu_backend();
}

}  // namespace

void register_backend(std::unique_ptr<Backend> backend) {
  std::lock_guard<std::mutex> lk(g_mu);
  auto& r = registry()[static_cast<int>(backend->device_type())];
  r = std::move(backend);
}

Backend& backend_for(Device device) {
  Backend* b = registry()[static_cast<int>(device.type)].get();
  if (!b) throw Error("device " + device.str() + " has no backend in this build");
  return *b;
}

Backend& cpu_backend() {
  return *registry()[static_cast<int>(DeviceType::CPU)];
}

std::vector<Backend*> backends() {
  std::vector<Backend*> out;
  for (auto& b : registry())
    if (b) out.push_back(b.get());
  return out;
}

void Backend::linear(const Tensor& x, const Tensor& W, const Tensor* b, Tensor& y) {
  HostStage s;
  host().linear(s.in(x), s.in(W), s.in(b), s.out(y));
  s.commit();
}
void Backend::linear_group(const Tensor& x, std::span<const LinearTarget> targets) {
  for (const LinearTarget& t : targets) linear(x, *t.W, t.b, *t.y);
}
void Backend::linear_backward(const Tensor& dy, const Tensor& x, const Tensor& W, Tensor* dx, Tensor* dW, Tensor* db) {
  HostStage s;
  host().linear_backward(s.in(dy), s.in(x), s.in(W), s.out(dx), s.out(dW), s.out(db));
  s.commit();
}
void Backend::embedding(const Tensor& E, std::span<const int32_t> ids, Tensor& out) {
  HostStage s;
  host().embedding(s.in(E), ids, s.out(out));
  s.commit();
}
void Backend::embedding_backward(const Tensor& dout, std::span<const int32_t> ids, Tensor& dE) {
  HostStage s;
  host().embedding_backward(s.in(dout), ids, s.out(dE));
  s.commit();
}
void Backend::rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& out) {
  HostStage s;
  host().rms_norm(s.in(x), s.in(w), eps, s.out(out));
  s.commit();
}
void Backend::rms_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, float eps, Tensor* dx, Tensor* dw) {
  HostStage s;
  host().rms_norm_backward(s.in(dy), s.in(x), s.in(w), eps, s.out(dx), s.out(dw));
  s.commit();
}
void Backend::rope(const Tensor& x, const Tensor& cs, int64_t head_dim, Tensor& out) {
  HostStage s;
  host().rope(s.in(x), s.in(cs), head_dim, s.out(out));
  s.commit();
}
void Backend::rope_backward(const Tensor& dy, const Tensor& cs, int64_t head_dim, Tensor& dx) {
  HostStage s;
  host().rope_backward(s.in(dy), s.in(cs), head_dim, s.out(dx));
  s.commit();
}
void Backend::swiglu(const Tensor& gate, const Tensor& up, Tensor& out) {
  HostStage s;
  host().swiglu(s.in(gate), s.in(up), s.out(out));
  s.commit();
}
void Backend::swiglu_backward(const Tensor& dout, const Tensor& gate, const Tensor& up, Tensor* dgate, Tensor* dup) {
  HostStage s;
  host().swiglu_backward(s.in(dout), s.in(gate), s.in(up), s.out(dgate), s.out(dup));
  s.commit();
}
void Backend::layer_norm(const Tensor& x, const Tensor& w, const Tensor* b, float eps, Tensor& out) {
  HostStage s;
  host().layer_norm(s.in(x), s.in(w), s.in(b), eps, s.out(out));
  s.commit();
}
void Backend::layer_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, float eps, Tensor* dx,
                                  Tensor* dw, Tensor* db) {
  HostStage s;
  host().layer_norm_backward(s.in(dy), s.in(x), s.in(w), eps, s.out(dx), s.out(dw), s.out(db));
  s.commit();
}
void Backend::gelu(const Tensor& x, GeluKind kind, Tensor& out) {
  HostStage s;
  host().gelu(s.in(x), kind, s.out(out));
  s.commit();
}
void Backend::gelu_backward(const Tensor& dout, const Tensor& x, GeluKind kind, Tensor& dx) {
  HostStage s;
  host().gelu_backward(s.in(dout), s.in(x), kind, s.out(dx));
  s.commit();
}
void Backend::kv_write(const Tensor& k, const Tensor& v, const AttentionArgs& a, KvPages& cache) {
  HostStage s;
  KvPages h{s.out(cache.k), s.out(cache.v), s.in(cache.page_table), cache.page_size};
  host().kv_write(s.in(k), s.in(v), a, h);
  s.commit();
}
void Backend::attention(const Tensor& q, const KvPages& cache, const AttentionArgs& a, Tensor& out, Tensor* lse) {
  HostStage s;
  host().attention(s.in(q), s.in(cache), a, s.out(out), s.out(lse));
  s.commit();
}
void Backend::attention_backward(const Tensor& dout, const Tensor& q, const Tensor& out, const Tensor& lse,
                                 const KvPages& cache, const AttentionArgs& a, Tensor* dq, Tensor* dk, Tensor* dv) {
  HostStage s;
  host().attention_backward(s.in(dout), s.in(q), s.in(out), s.in(lse), s.in(cache), a, s.out(dq), s.out(dk), s.out(dv));
  s.commit();
}
void Backend::softmax(const Tensor& x, Tensor& out) {
  HostStage s;
  host().softmax(s.in(x), s.out(out));
  s.commit();
}
void Backend::softmax_backward(const Tensor& dy, const Tensor& y, Tensor& dx) {
  HostStage s;
  host().softmax_backward(s.in(dy), s.in(y), s.out(dx));
  s.commit();
}
void Backend::token_logprobs(const Tensor& logits, std::span<const int32_t> targets, int32_t ignore, Tensor& lp,
                             Tensor& lse) {
  HostStage s;
  host().token_logprobs(s.in(logits), targets, ignore, s.out(lp), s.out(lse));
  s.commit();
}
void Backend::token_logprobs_backward(const Tensor& dlp, const Tensor& logits, const Tensor& lse,
                                      std::span<const int32_t> targets, int32_t ignore, Tensor& dlogits) {
  HostStage s;
  host().token_logprobs_backward(s.in(dlp), s.in(logits), s.in(lse), targets, ignore, s.out(dlogits));
  s.commit();
}
void Backend::entropy(const Tensor& logits, Tensor& H, Tensor& lse) {
  HostStage s;
  host().entropy(s.in(logits), s.out(H), s.out(lse));
  s.commit();
}
void Backend::entropy_backward(const Tensor& dH, const Tensor& logits, const Tensor& lse, const Tensor& H,
                               Tensor& dlogits) {
  HostStage s;
  host().entropy_backward(s.in(dH), s.in(logits), s.in(lse), s.in(H), s.out(dlogits));
  s.commit();
}
void Backend::add(const Tensor& a, const Tensor& b, Tensor& out) {
  HostStage s;
  host().add(s.in(a), s.in(b), s.out(out));
  s.commit();
}
void Backend::scale(const Tensor& x, float f, Tensor& out) {
  HostStage s;
  host().scale(s.in(x), f, s.out(out));
  s.commit();
}
void Backend::axpy(float alpha, const Tensor& x, Tensor& y) {
  HostStage s;
  host().axpy(alpha, s.in(x), s.out(y));
  s.commit();
}
void Backend::mul(const Tensor& a, const Tensor& b, Tensor& out) {
  HostStage s;
  host().mul(s.in(a), s.in(b), s.out(out));
  s.commit();
}
void Backend::fill(Tensor& t, float value) {
  HostStage s;
  host().fill(s.out(t), value);
  s.commit();
}
void Backend::convert(const Tensor& src, Tensor& dst) {
  HostStage s;
  host().convert(s.in(src), s.out(dst));
  s.commit();
}
void Backend::gather_rows(const Tensor& x, std::span<const int32_t> rows, Tensor& out) {
  HostStage s;
  host().gather_rows(s.in(x), rows, s.out(out));
  s.commit();
}
void Backend::scatter_add_rows(const Tensor& d, std::span<const int32_t> rows, Tensor& dx) {
  HostStage s;
  host().scatter_add_rows(s.in(d), rows, s.out(dx));
  s.commit();
}
void Backend::segment_sum(const Tensor& x, std::span<const int32_t> segment, Tensor& out) {
  HostStage s;
  host().segment_sum(s.in(x), segment, s.out(out));
  s.commit();
}
void Backend::dropout(const Tensor& x, float p, uint64_t seed, Tensor& out) {
  HostStage s;
  host().dropout(s.in(x), p, seed, s.out(out));
  s.commit();
}
double Backend::sum_squares(const Tensor& x) {
  HostStage s;
  return host().sum_squares(s.in(x));
}
void Backend::adamw(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const AdamWArgs& a) {
  HostStage s;
  host().adamw(s.out(param), s.in(grad), s.out(m), s.out(v), a);
  s.commit();
}

}  // namespace yak::ops
