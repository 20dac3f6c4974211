#include "yak/ops/cpu/thread_pool.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "yak/base/error.h"

namespace yak::ops::cpu {
namespace {

// A block of per-thread scratch that only grows.
struct Scratch {
  void* p = nullptr;
  size_t bytes = 0;
  void ensure(size_t n) {
    if (n <= bytes) return;
    std::free(p);
    bytes = (n + 63) / 64 * 64;
    p = std::aligned_alloc(64, bytes);
    if (!p) throw Error("out of memory allocating " + std::to_string(n) + " bytes of kernel scratch");
  }
  ~Scratch() { std::free(p); }
};

// The calling thread's own scratch (any thread may call parallel_for).
Scratch& caller_scratch() {
  thread_local Scratch s;
  return s;
}

using ScratchFn = FunctionRef<void(int64_t, int64_t, void*)>;

class Pool {
 public:
  explicit Pool(int n) : n_(n), scratch_(static_cast<size_t>(n)) {
    for (int i = 1; i < n_; ++i) workers_.emplace_back([this, i] { loop(i); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_.store(true);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  int size() const { return n_; }

  void run(int64_t n, int64_t grain, size_t scratch_bytes, ScratchFn fn) {
    thread_local bool inside = false;
    int64_t chunks = std::min<int64_t>(n_, (n + grain - 1) / std::max<int64_t>(grain, 1));
    if (chunks <= 1 || inside) {
      Scratch& s = caller_scratch();
      s.ensure(scratch_bytes);
      fn(0, n, s.p);
      return;
    }
    std::unique_lock<std::mutex> call_lock(call_mu_);
    // Every thread's scratch is grown here, on the calling thread, before any work starts:
    // which worker takes which chunk varies from call to call, the sizes never do.
    caller_scratch().ensure(scratch_bytes);
    for (int i = 1; i < n_; ++i) scratch_[static_cast<size_t>(i)].ensure(scratch_bytes);
    fn_ = &fn;
    total_ = n;
    chunks_ = chunks;
    // pending_ before next_, and next_ with release: a worker still leaving the previous call
    // that grabs a chunk of this one through next_ sees this call's fn_, sizes and count.
    pending_.store(static_cast<int>(chunks - 1), std::memory_order_relaxed);
    call_ += 1;
    next_.store(ticket(call_, chunks, 1), std::memory_order_release);
    {
      std::lock_guard<std::mutex> lk(mu_);  // a sleeping worker sees the new generation under the lock
      generation_.fetch_add(1, std::memory_order_release);
    }
    if (sleepers_.load(std::memory_order_acquire) > 0) cv_.notify_all();
    inside = true;
    run_chunk(0, caller_scratch().p);
    // Help with remaining chunks instead of idling.
    for (int64_t c; (c = claim()) >= 0;) run_chunk_counted(c, caller_scratch().p);
    inside = false;
    // Decode runs hundreds of short ops per token: wait by spinning first, then sleep.
    for (int spin = 0; pending_.load(std::memory_order_acquire) != 0; ++spin) {
      if (spin < kSpins) {
        cpu_relax();
      } else {
        std::unique_lock<std::mutex> lk(mu_);
        done_cv_.wait(lk, [this] { return pending_.load(std::memory_order_acquire) == 0; });
      }
    }
    fn_ = nullptr;
  }

 private:
  // Spin about 1 ms (a pause is ~40-140 cycles) before blocking: the ops of a decode step follow
  // each other by microseconds, and a sleeping worker takes tens of them to wake. (OpenBLAS runs
  // single-threaded inside our chunks, so no other pool competes for the cores.)
  static constexpr int kSpins = 20000;

  static void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
  }
  // next_ packs (call, chunks, next index): a thread claims a chunk by one fetch_add and judges
  // it against the chunk count of the same call. (Reading chunks_ separately let a worker that
  // was late leaving one call count its past-the-end index against the next call's larger
  // count, run a chunk twice and let that call return while the chunk still ran.)
  static uint64_t ticket(uint64_t call, int64_t chunks, int64_t index) {
    return (call << 40) | (static_cast<uint64_t>(chunks) << 20) | static_cast<uint64_t>(index);
  }
  int64_t claim() {
    const uint64_t v = next_.fetch_add(1, std::memory_order_acq_rel);
    const auto index = static_cast<int64_t>(v & 0xFFFFF), chunks = static_cast<int64_t>((v >> 20) & 0xFFFFF);
    return index < chunks ? index : -1;
  }
  void run_chunk(int64_t c, void* scratch) {
    int64_t b = total_ * c / chunks_, e = total_ * (c + 1) / chunks_;
    if (b < e) (*fn_)(b, e, scratch);
  }
  void run_chunk_counted(int64_t c, void* scratch) {
    run_chunk(c, scratch);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lk(mu_);
      done_cv_.notify_one();
    }
  }
  void loop(int index) {
    uint64_t seen = 0;
    for (;;) {
      // Spin for new work for a while, then sleep until notified.
      uint64_t g = generation_.load(std::memory_order_acquire);
      for (int spin = 0; g == seen && spin < kSpins && !stop_.load(std::memory_order_relaxed); ++spin) {
        cpu_relax();
        g = generation_.load(std::memory_order_acquire);
      }
      if (g == seen) {
        std::unique_lock<std::mutex> lk(mu_);
        sleepers_.fetch_add(1, std::memory_order_acq_rel);
        cv_.wait(lk, [&] { return stop_.load() || generation_.load(std::memory_order_acquire) != seen; });
        sleepers_.fetch_sub(1, std::memory_order_acq_rel);
        g = generation_.load(std::memory_order_acquire);
      }
      if (stop_.load()) return;
      seen = g;
      // The scratch pointer is read after each claim: a chunk claimed from the next call may
      // come after that call's caller grew (reallocated) this worker's scratch.
      for (int64_t c; (c = claim()) >= 0;) run_chunk_counted(c, scratch_[static_cast<size_t>(index)].p);
    }
  }

  int n_;
  std::vector<Scratch> scratch_;  // [0] unused: the caller brings its own
  std::vector<std::thread> workers_;
  std::mutex mu_, call_mu_;
  std::condition_variable cv_, done_cv_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> sleepers_{0};
  const ScratchFn* fn_ = nullptr;
  int64_t total_ = 0, chunks_ = 0;
  std::atomic<uint64_t> next_{0};
  uint64_t call_ = 0;  // calls so far (the caller's side only)
  std::atomic<int> pending_{0};
};

std::mutex g_pool_mu;
std::unique_ptr<Pool> g_pool;

// The default thread count: the cores, shared by the ranks an MPI launcher put on this node (its
// local-size variable), so `mpirun -np 2` on two cores runs one thread per rank.
int default_threads() {
  int n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (const char* v : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"})
    if (const char* p = std::getenv(v); p && std::atoi(p) > 1) return std::max(1, n / std::atoi(p));
  return n;
}

Pool& pool() {
  std::lock_guard<std::mutex> lk(g_pool_mu);
  if (!g_pool) {
    g_pool = std::make_unique<Pool>(default_threads());
    openblas_set_num_threads(1);  // the pool splits matrix products itself (gemm.cpp)
  }
  return *g_pool;
}

}  // namespace

void set_num_threads(int n) {
  if (n <= 0) n = default_threads();
  std::lock_guard<std::mutex> lk(g_pool_mu);
  if (g_pool && g_pool->size() == n) return;
  g_pool.reset();
  g_pool = std::make_unique<Pool>(n);
  openblas_set_num_threads(1);
}

int num_threads() {
  return pool().size();
}

void parallel_for(int64_t n, int64_t grain, FunctionRef<void(int64_t, int64_t)> fn) {
  if (n <= 0) return;
  auto plain = [&](int64_t b, int64_t e, void*) { fn(b, e); };
  pool().run(n, grain, 0, plain);
}

void parallel_for_scratch(int64_t n, int64_t grain, size_t scratch_bytes,
                          FunctionRef<void(int64_t, int64_t, void*)> fn) {
  if (n <= 0) return;
  pool().run(n, grain, scratch_bytes, fn);
}

}  // namespace yak::ops::cpu
