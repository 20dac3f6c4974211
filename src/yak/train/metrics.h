// Training metrics: one JSON object per line (metrics.jsonl) and TensorBoard event files
// (TFRecord framing with masked CRC-32C, Event/Summary protobufs written by hand).
#pragma once
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

namespace yak::train {

uint32_t crc32c(const void* data, size_t n);

class TensorBoardWriter {
 public:
  // Creates DIR/events.out.tfevents.<time>.yak; throws yak::Error naming DIR on failure.
  explicit TensorBoardWriter(const std::filesystem::path& dir);
  ~TensorBoardWriter();
  void scalar(const std::string& tag, double value, int64_t step);
  void flush();
  const std::filesystem::path& path() const { return path_; }

 private:
  void record(const std::string& event);
  std::filesystem::path path_;
  std::FILE* f_ = nullptr;
};

class MetricsLog {
 public:
  // jsonl may be empty (no file); tensorboard_dir may be empty (no events).
  MetricsLog(const std::filesystem::path& jsonl, const std::filesystem::path& tensorboard_dir, bool append);
  ~MetricsLog();
  void log(int64_t step, const std::map<std::string, double>& values, const std::string& split = "train");

 private:
  std::FILE* jsonl_ = nullptr;
  std::unique_ptr<TensorBoardWriter> tb_;
};

}  // namespace yak::train
