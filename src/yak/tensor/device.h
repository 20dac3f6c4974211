// Where a tensor's memory lives: the host (the CPU backend reads it directly) or an accelerator.
// Backends register an allocator for their device type; the host's is built in.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace yak {

enum class DeviceType : uint8_t { CPU, CUDA };
constexpr int kDeviceTypeCount = 2;

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  bool is_host() const { return type == DeviceType::CPU; }
  bool operator==(const Device&) const = default;
  std::string str() const;  // "cpu", "cuda:0"
  // "cpu", "cuda", "cuda:N"; throws yak::Error naming `what` for anything else.
  static Device parse(std::string_view s, const std::string& what = "--device");
};

inline Device cpu_device() {
  return {};
}

}  // namespace yak
