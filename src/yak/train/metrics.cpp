#include "yak/train/metrics.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>

#include "yak/base/error.h"
#include "yak/base/json.h"

namespace yak::train {
namespace fs = std::filesystem;

uint32_t crc32c(const void* data, size_t n) {
  static uint32_t table[256];
  static bool init = [] {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      table[i] = c;
    }
    return true;
  }();
  (void)init;
  uint32_t c = 0xFFFFFFFFu;
  auto p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

namespace {

uint32_t masked_crc(const void* data, size_t n) {
  uint32_t c = crc32c(data, n);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

void varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}
void tag(std::string& out, int field, int wire) {
  varint(out, static_cast<uint64_t>(field) << 3 | wire);
}
void bytes_field(std::string& out, int field, const std::string& b) {
  tag(out, field, 2);
  varint(out, b.size());
  out += b;
}
template <typename T>
void fixed_field(std::string& out, int field, T v) {
  tag(out, field, sizeof(T) == 8 ? 1 : 5);
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));
  out.append(buf, sizeof(T));
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

TensorBoardWriter::TensorBoardWriter(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(dir.string() + ": cannot create the TensorBoard folder: " + ec.message());
  path_ = dir / ("events.out.tfevents." + std::to_string(static_cast<long long>(now_seconds())) + ".yak");
  f_ = std::fopen(path_.c_str(), "ab");
  if (!f_) throw Error(path_.string() + ": cannot write");
  std::string ev;  // Event{wall_time = 1, file_version = 3}
  fixed_field(ev, 1, now_seconds());
  bytes_field(ev, 3, "brain.Event:2");
  record(ev);
}

TensorBoardWriter::~TensorBoardWriter() {
  if (f_) std::fclose(f_);
}

void TensorBoardWriter::record(const std::string& data) {
  const uint64_t len = data.size();
  const uint32_t len_crc = masked_crc(&len, 8), data_crc = masked_crc(data.data(), data.size());
  std::fwrite(&len, 8, 1, f_);
  std::fwrite(&len_crc, 4, 1, f_);
  std::fwrite(data.data(), 1, data.size(), f_);
  std::fwrite(&data_crc, 4, 1, f_);
}

void TensorBoardWriter::scalar(const std::string& name, double value, int64_t step) {
  std::string val;  // Summary.Value{tag = 1, simple_value = 2}
  bytes_field(val, 1, name);
  fixed_field(val, 2, static_cast<float>(value));
  std::string summary;  // Summary{value = 1}
  bytes_field(summary, 1, val);
  std::string ev;  // Event{wall_time = 1, step = 2, summary = 5}
  fixed_field(ev, 1, now_seconds());
  tag(ev, 2, 0);
  varint(ev, static_cast<uint64_t>(step));
  bytes_field(ev, 5, summary);
  record(ev);
}

void TensorBoardWriter::flush() {
  std::fflush(f_);
}

MetricsLog::MetricsLog(const fs::path& jsonl, const fs::path& tensorboard_dir, bool append) {
  if (!jsonl.empty()) {
    if (jsonl.has_parent_path()) fs::create_directories(jsonl.parent_path());
    jsonl_ = std::fopen(jsonl.c_str(), append ? "a" : "w");
    if (!jsonl_) throw Error(jsonl.string() + ": cannot write the metrics log");
  }
  if (!tensorboard_dir.empty()) tb_ = std::make_unique<TensorBoardWriter>(tensorboard_dir);
}

MetricsLog::~MetricsLog() {
  if (jsonl_) std::fclose(jsonl_);
}

void MetricsLog::log(int64_t step, const std::map<std::string, double>& values, const std::string& split) {
  Json j = {{"step", step}, {"split", split}};
  for (auto& [k, v] : values) j[k] = std::isfinite(v) ? Json(v) : Json(nullptr);
  if (jsonl_) {
    std::fprintf(jsonl_, "%s\n", j.dump().c_str());
    std::fflush(jsonl_);
  }
  if (tb_) {
    for (auto& [k, v] : values) tb_->scalar(split + "/" + k, v, step);
    tb_->flush();
  }
}

}  // namespace yak::train
