// Buffers that tensors refer to: a block of memory on a device, reference counted without a
// heap allocation per reference. Owned buffers come from the device's allocator (on the host a
// caching pool, so steady-state loops never reach malloc); external buffers (a mapped checkpoint)
// are kept alive by a holder.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "yak/tensor/device.h"

namespace yak {

// One per device type. Copies may cross between the host and the allocator's device.
class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t bytes, Device device) = 0;
  virtual void deallocate(void* p, size_t bytes, Device device) = 0;
  virtual void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) = 0;
};

// The allocator registered for a device type (the host's is always there); throws yak::Error
// naming the device when none is registered (e.g. a build without CUDA).
Allocator& allocator_for(Device device);
void register_allocator(DeviceType type, Allocator* allocator);

// Bytes of owned host buffers in use now and at most since the last reset, and what the pool
// keeps cached for reuse. A training step reports its peak through this.
struct HostMemoryStats {
  size_t in_use = 0, peak = 0, cached = 0;
  uint64_t allocations = 0;  // buffers handed out (from the pool or fresh)
  uint64_t fresh = 0;        // of which came from the system (malloc), not from the pool
};
HostMemoryStats host_memory_stats();
void reset_host_memory_peak();
// Returns every cached block to the system.
void release_cached_host_memory();

struct Buffer {
  std::atomic<int32_t> refs{1};
  uint8_t* data = nullptr;
  size_t bytes = 0;
  Device device;
  Allocator* owner = nullptr;          // null: external memory
  std::shared_ptr<const void> holder;  // keeps external memory alive
};

// Intrusive reference to a Buffer (copying it never allocates).
class BufferRef {
 public:
  BufferRef() = default;
  BufferRef(const BufferRef& o) : b_(o.b_) {
    if (b_) b_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  BufferRef(BufferRef&& o) noexcept : b_(o.b_) { o.b_ = nullptr; }
  BufferRef& operator=(BufferRef o) noexcept {
    std::swap(b_, o.b_);
    return *this;
  }
  ~BufferRef() { reset(); }
  void reset();
  Buffer* get() const { return b_; }
  Buffer* operator->() const { return b_; }
  explicit operator bool() const { return b_ != nullptr; }

  // A new owned buffer of `bytes` on `device` (64-byte aligned).
  static BufferRef allocate(size_t bytes, Device device);
  // A buffer over memory owned by someone else (host), alive as long as `holder`.
  static BufferRef external(void* data, size_t bytes, std::shared_ptr<const void> holder);

 private:
  Buffer* b_ = nullptr;
};

}  // namespace yak
