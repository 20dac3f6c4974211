#include "yak/tensor/storage.h"

#include <array>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "yak/base/error.h"

namespace yak {
namespace {

// Host memory: a caching pool of size classes (64-byte steps to 1 KiB, then four steps per power
// of two), so a loop that allocates the same shapes every iteration reaches malloc only while it
// warms up. Blocks above kMaxPooled and anything beyond kMaxCached go back to the system.
constexpr size_t kAlign = 64;
constexpr size_t kMaxPooled = size_t{1} << 30;
constexpr size_t kMaxCached = size_t{4} << 30;
constexpr int kClasses = 16 + 4 * 40;

int size_class(size_t bytes, size_t* rounded) {
  if (bytes <= 1024) {
    size_t r = std::max<size_t>(kAlign, (bytes + kAlign - 1) / kAlign * kAlign);
    *rounded = r;
    return static_cast<int>(r / kAlign) - 1;
  }
  int e = 63 - __builtin_clzll(bytes - 1);  // 2^e < bytes <= 2^(e+1)
  const size_t base = size_t{1} << e, step = base / 4;
  const size_t k = (bytes - base + step - 1) / step;  // 1..4
  *rounded = base + k * step;
  return 16 + (e - 10) * 4 + static_cast<int>(k) - 1;
}

class HostAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes, Device) override {
    size_t rounded = 0;
    const int c = bytes <= kMaxPooled ? size_class(bytes, &rounded) : -1;
    if (c < 0) rounded = (bytes + kAlign - 1) / kAlign * kAlign;
    {
      std::lock_guard<std::mutex> lk(mu_);
      ++stats_.allocations;
      stats_.in_use += rounded;
      stats_.peak = std::max(stats_.peak, stats_.in_use);
      if (c >= 0 && !free_[c].empty()) {
        void* p = free_[c].back();
        free_[c].pop_back();
        stats_.cached -= rounded;
        return p;
      }
      ++stats_.fresh;
    }
    void* p = std::aligned_alloc(kAlign, rounded ? rounded : kAlign);
    if (!p) {
      std::lock_guard<std::mutex> lk(mu_);
      stats_.in_use -= rounded;
      throw Error("out of memory allocating " + std::to_string(bytes) + " bytes");
    }
    return p;
  }
  void deallocate(void* p, size_t bytes, Device) override {
    size_t rounded = 0;
    const int c = bytes <= kMaxPooled ? size_class(bytes, &rounded) : -1;
    if (c < 0) rounded = (bytes + kAlign - 1) / kAlign * kAlign;
    {
      std::lock_guard<std::mutex> lk(mu_);
      stats_.in_use -= rounded;
      if (c >= 0 && stats_.cached + rounded <= kMaxCached) {
        free_[c].push_back(p);
        stats_.cached += rounded;
        return;
      }
    }
    std::free(p);
  }
  void copy(void* dst, Device, const void* src, Device, size_t bytes) override {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  HostMemoryStats stats() {
    std::lock_guard<std::mutex> lk(mu_);
    return stats_;
  }
  void reset_peak() {
    std::lock_guard<std::mutex> lk(mu_);
    stats_.peak = stats_.in_use;
  }
  void release() {
    std::lock_guard<std::mutex> lk(mu_);
    for (auto& list : free_) {
      for (void* p : list) std::free(p);
      list.clear();
      list.shrink_to_fit();
    }
    stats_.cached = 0;
  }

 private:
  std::mutex mu_;
  std::array<std::vector<void*>, kClasses> free_;
  HostMemoryStats stats_;
};

HostAllocator& host_allocator() {
  static HostAllocator* a = new HostAllocator;  // never destroyed: buffers may outlive statics
  return *a;
}

std::array<Allocator*, kDeviceTypeCount>& allocators() {
  static std::array<Allocator*, kDeviceTypeCount> a = {&host_allocator(), nullptr};
  return a;
}

// Buffer headers are recycled too, so a BufferRef::allocate from the pool costs no malloc.
class HeaderPool {
 public:
  Buffer* get() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (!free_.empty()) {
        Buffer* b = free_.back();
        free_.pop_back();
        return new (b) Buffer;
      }
    }
    return new (::operator new(sizeof(Buffer))) Buffer;
  }
  void put(Buffer* b) {
    b->~Buffer();
    std::lock_guard<std::mutex> lk(mu_);
    free_.push_back(b);
  }

 private:
  std::mutex mu_;
  std::vector<Buffer*> free_;
};

HeaderPool& headers() {
  static HeaderPool* p = new HeaderPool;
  return *p;
}

}  // namespace

std::string Device::str() const {
  switch (type) {
    case DeviceType::CPU:
      return "cpu";
    case DeviceType::CUDA:
      return "cuda:" + std::to_string(index);
  }
  return "?";
}

Device Device::parse(std::string_view s, const std::string& what) {
  if (s == "cpu") return {};
  if (s == "cuda") return {DeviceType::CUDA, 0};
  if (s.substr(0, 5) == "cuda:" && s.size() > 5) {
    int n = -1;
    auto [end, ec] = std::from_chars(s.data() + 5, s.data() + s.size(), n);
    if (ec == std::errc() && end == s.data() + s.size() && n >= 0) return {DeviceType::CUDA, n};
  }
  throw Error(what + ": unknown device '" + std::string(s) + "' (expected cpu, cuda or cuda:N)");
}

Allocator& allocator_for(Device device) {
  Allocator* a = allocators()[static_cast<int>(device.type)];
  if (!a) throw Error("device " + device.str() + " is not available in this build (no backend registered for it)");
  return *a;
}

void register_allocator(DeviceType type, Allocator* allocator) {
  allocators()[static_cast<int>(type)] = allocator;
}

HostMemoryStats host_memory_stats() {
  return host_allocator().stats();
}
void reset_host_memory_peak() {
  host_allocator().reset_peak();
}
void release_cached_host_memory() {
  host_allocator().release();
}

void BufferRef::reset() {
  if (!b_) return;
  if (b_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    if (b_->owner) b_->owner->deallocate(b_->data, b_->bytes, b_->device);
    headers().put(b_);
  }
  b_ = nullptr;
}

BufferRef BufferRef::allocate(size_t bytes, Device device) {
  Allocator& a = allocator_for(device);
  void* p = a.allocate(bytes, device);
  BufferRef r;
  r.b_ = headers().get();
  r.b_->data = static_cast<uint8_t*>(p);
  r.b_->bytes = bytes;
  r.b_->device = device;
  r.b_->owner = &a;
  return r;
}

BufferRef BufferRef::external(void* data, size_t bytes, std::shared_ptr<const void> holder) {
  BufferRef r;
  r.b_ = headers().get();
  r.b_->data = static_cast<uint8_t*>(data);
  r.b_->bytes = bytes;
  r.b_->owner = nullptr;
  r.b_->holder = std::move(holder);
  return r;
}

}  // namespace yak
