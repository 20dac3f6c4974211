#include "yak/ops/cpu/thread_pool.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace yak::ops::cpu {
namespace {

class Pool {
 public:
  explicit Pool(int n) : n_(n) {
    for (int i = 1; i < n_; ++i) workers_.emplace_back([this, i] { loop(i); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  int size() const { return n_; }

  void run(int64_t n, int64_t grain, FunctionRef<void(int64_t, int64_t)> fn) {
    thread_local bool inside = false;
    int64_t chunks = std::min<int64_t>(n_, (n + grain - 1) / std::max<int64_t>(grain, 1));
    if (chunks <= 1 || inside) {
      fn(0, n);
      return;
    }
    std::unique_lock<std::mutex> call_lock(call_mu_);
    {
      std::lock_guard<std::mutex> lk(mu_);
      fn_ = &fn;
      total_ = n;
      chunks_ = chunks;
      next_.store(1);
      pending_ = static_cast<int>(chunks - 1);
      ++generation_;
    }
    cv_.notify_all();
    inside = true;
    run_chunk(0);
    // Help with remaining chunks instead of idling.
    for (int64_t c; (c = next_.fetch_add(1)) < chunks_;) run_chunk_counted(c);
    inside = false;
    std::unique_lock<std::mutex> lk(mu_);
    done_cv_.wait(lk, [this] { return pending_ == 0; });
    fn_ = nullptr;
  }

 private:
  void run_chunk(int64_t c) {
    int64_t b = total_ * c / chunks_, e = total_ * (c + 1) / chunks_;
    if (b < e) (*fn_)(b, e);
  }
  void run_chunk_counted(int64_t c) {
    run_chunk(c);
    std::lock_guard<std::mutex> lk(mu_);
    if (--pending_ == 0) done_cv_.notify_one();
  }
  void loop(int) {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
      }
      for (int64_t c; (c = next_.fetch_add(1)) < chunks_;) run_chunk_counted(c);
    }
  }

  int n_;
  std::vector<std::thread> workers_;
  std::mutex mu_, call_mu_;
  std::condition_variable cv_, done_cv_;
  bool stop_ = false;
  uint64_t generation_ = 0;
  const FunctionRef<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t total_ = 0, chunks_ = 0;
  std::atomic<int64_t> next_{0};
  int pending_ = 0;
};

std::mutex g_pool_mu;
std::unique_ptr<Pool> g_pool;

Pool& pool() {
  std::lock_guard<std::mutex> lk(g_pool_mu);
  if (!g_pool) {
    int n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    g_pool = std::make_unique<Pool>(n);
    openblas_set_num_threads(n);
  }
  return *g_pool;
}

}  // namespace

void set_num_threads(int n) {
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::lock_guard<std::mutex> lk(g_pool_mu);
  if (g_pool && g_pool->size() == n) return;
  g_pool.reset();
  g_pool = std::make_unique<Pool>(n);
  openblas_set_num_threads(n);
}

int num_threads() {
  return pool().size();
}

void parallel_for(int64_t n, int64_t grain, FunctionRef<void(int64_t, int64_t)> fn) {
  if (n <= 0) return;
  pool().run(n, grain, fn);
}

}  // namespace yak::ops::cpu
