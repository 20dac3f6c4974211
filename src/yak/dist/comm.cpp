#include "yak/dist/comm.h"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <mutex>

#include "yak/base/error.h"
#include "yak/dist/mpi_api.h"

namespace yak::dist {
namespace {

class Single final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void all_reduce_sum(float*, size_t) override {}
  void all_reduce_sum(double*, size_t) override {}
  void all_reduce_max(double*, size_t) override {}
  void reduce_scatter_sum(const float* send, float* recv, size_t n) override {
    if (send != recv) std::copy(send, send + n, recv);
  }
  void all_gather(const float* send, float* recv, size_t n) override {
    if (send != recv) std::copy(send, send + n, recv);
  }
  void broadcast(void*, size_t, int) override {}
  void barrier() override {}
  [[noreturn]] void abort(int code) override { std::_Exit(code); }
  std::string name() const override { return "single"; }
};

class Mpi final : public Communicator {
 public:
  explicit Mpi(const YakMpiApi* api) : api_(api) {
    if (int rc = api_->init(&rank_, &size_)) throw Error("MPI_Init failed (error " + std::to_string(rc) + ")");
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void all_reduce_sum(float* data, size_t n) override { ok(api_->all_reduce_sum_f32(data, n), "all-reduce"); }
  void all_reduce_sum(double* data, size_t n) override { ok(api_->all_reduce_sum_f64(data, n), "all-reduce"); }
  void all_reduce_max(double* data, size_t n) override { ok(api_->all_reduce_max_f64(data, n), "all-reduce"); }
  void reduce_scatter_sum(const float* send, float* recv, size_t n) override {
    ok(api_->reduce_scatter_sum_f32(send, recv, n), "reduce-scatter");
  }
  void all_gather(const float* send, float* recv, size_t n) override {
    ok(api_->all_gather_f32(send, recv, n), "all-gather");
  }
  void broadcast(void* data, size_t bytes, int root) override { ok(api_->broadcast(data, bytes, root), "broadcast"); }
  void barrier() override { ok(api_->barrier(), "barrier"); }
  [[noreturn]] void abort(int code) override {
    api_->abort(code);
    std::_Exit(code);
  }
  std::string name() const override { return "mpi"; }
  void finalize() { api_->finalize(); }

 private:
  void ok(int rc, const char* what) const {
    if (rc) throw Error("rank " + std::to_string(rank_) + ": MPI " + what + " failed (error " + std::to_string(rc) + ")");
  }
  const YakMpiApi* api_;
  int rank_ = 0, size_ = 1;
};

// Where the plugin may be: $YAK_MPI_PLUGIN, beside the executable, ../lib/yak from it, then the
// loader's own search path.
std::vector<std::string> plugin_candidates() {
  std::vector<std::string> out;
  if (const char* p = std::getenv("YAK_MPI_PLUGIN"); p && *p) out.emplace_back(p);
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    out.push_back((exe.parent_path() / "libyak_mpi.so").string());
    out.push_back((exe.parent_path().parent_path() / "lib" / "yak" / "libyak_mpi.so").string());
  }
  out.emplace_back("libyak_mpi.so");
  return out;
}

const YakMpiApi* load_plugin() {
  std::string tried;
  for (const auto& path : plugin_candidates()) {
    void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
    if (!h) {
      tried += "\n  " + path + ": " + dlerror();
      continue;
    }
    auto fn = reinterpret_cast<YakMpiApiFn>(dlsym(h, kYakMpiApiSymbol));
    const YakMpiApi* api = fn ? fn() : nullptr;
    if (api && api->abi_version == kYakMpiAbi) return api;
    tried += "\n  " + path + ": not a yak MPI plugin of this version";
  }
  throw Error(
      "this process was started by an MPI launcher, but yak's MPI plugin (libyak_mpi.so) could not be loaded; "
      "build yak with Open MPI's development files installed (libopenmpi-dev) or set YAK_MPI_PLUGIN. Tried:" +
      tried);
}

std::mutex g_mu;
std::unique_ptr<Communicator> g_world;
Mpi* g_mpi = nullptr;

}  // namespace

std::unique_ptr<Communicator> make_single() {
  return std::make_unique<Single>();
}

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"})
    if (const char* p = std::getenv(v); p && *p) return true;
  return false;
}

Communicator& world() {
  std::lock_guard<std::mutex> lock(g_mu);
  if (!g_world) {
    if (launched_by_mpi()) {
      auto m = std::make_unique<Mpi>(load_plugin());
      g_mpi = m.get();
      g_world = std::move(m);
      std::atexit(shutdown);
    } else {
      g_world = make_single();
    }
  }
  return *g_world;
}

void shutdown() {
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_mpi) g_mpi->finalize();
  g_mpi = nullptr;
}

std::string rank_prefix() {
  {
    std::lock_guard<std::mutex> lock(g_mu);
    if (!g_world) return "";
  }
  Communicator& w = world();
  return w.size() > 1 ? "rank " + std::to_string(w.rank()) + ": " : "";
}

std::vector<std::string> Communicator::all_gather_bytes(const std::string& mine) {
  std::vector<std::string> out(static_cast<size_t>(size()));
  for (int r = 0; r < size(); ++r) {
    uint64_t n = r == rank() ? mine.size() : 0;
    broadcast(&n, sizeof n, r);
    std::string& s = out[static_cast<size_t>(r)];
    if (r == rank()) {
      s = mine;
    } else {
      s.resize(n);
    }
    if (n) broadcast(s.data(), n, r);
  }
  return out;
}

std::vector<double> sum_over_ranks(Communicator& comm, std::vector<double> values) {
  comm.all_reduce_sum(values.data(), values.size());
  return values;
}

}  // namespace yak::dist
