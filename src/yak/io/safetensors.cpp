#include "yak/io/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <set>

#include "yak/base/error.h"
#include "yak/base/json.h"
#include "yak/io/torch_pickle.h"

namespace yak::io {
namespace fs = std::filesystem;

namespace {
constexpr uint64_t kMaxHeader = 100ull << 20;  // what the reference implementation allows
}

std::map<std::string, TensorEntry> SafetensorsFile::parse_header(const uint8_t* data, size_t size,
                                                                 const std::string& where,
                                                                 std::map<std::string, std::string>* metadata) {
  if (size < 8) throw Error(where + ": not a safetensors file (shorter than the 8-byte header length)");
  uint64_t n = 0;
  std::memcpy(&n, data, 8);
  if (n > kMaxHeader || n > size - 8)
    throw Error(where + ": header length " + std::to_string(n) + " exceeds the file size " + std::to_string(size) +
                " (truncated or not safetensors)");
  const size_t data_size = size - 8 - n;
  Json header;
  try {
    header = Json::parse(reinterpret_cast<const char*>(data) + 8, reinterpret_cast<const char*>(data) + 8 + n);
  } catch (const nlohmann::json::exception&) {
    throw Error(where + ": header is not valid JSON");
  }
  if (!header.is_object()) throw Error(where + ": header is not a JSON object");
  std::map<std::string, TensorEntry> out;
  std::vector<std::pair<size_t, size_t>> ranges;
  for (auto& [name, v] : header.items()) {
    if (name == "__metadata__") {
      if (metadata && v.is_object())
        for (auto& [k, mv] : v.items())
          if (mv.is_string()) (*metadata)[k] = mv.get<std::string>();
      continue;
    }
    const std::string field = where + ": tensor '" + name + "'";
    if (!v.is_object()) throw Error(field + " is not an object");
    auto dt = v.find("dtype");
    auto sh = v.find("shape");
    auto off = v.find("data_offsets");
    if (dt == v.end() || !dt->is_string()) throw Error(field + ": missing string field 'dtype'");
    if (sh == v.end() || !sh->is_array()) throw Error(field + ": missing array field 'shape'");
    if (off == v.end() || !off->is_array() || off->size() != 2)
      throw Error(field + ": 'data_offsets' must be [begin, end]");
    auto dtype = dtype_from_safetensors(dt->get<std::string>());
    if (!dtype) throw Error(field + ": unsupported dtype '" + dt->get<std::string>() + "'");
    TensorEntry e;
    e.dtype = *dtype;
    uint64_t numel = 1;
    for (auto& d : *sh) {
      if (!d.is_number_unsigned()) throw Error(field + ": shape entries must be non-negative integers");
      uint64_t dim = d.get<uint64_t>();
      if (dim != 0 && numel > (1ull << 50) / dim) throw Error(field + ": shape is too large");
      numel *= dim;
      e.shape.push_back(static_cast<int64_t>(dim));
    }
    if (!(*off)[0].is_number_unsigned() || !(*off)[1].is_number_unsigned())
      throw Error(field + ": 'data_offsets' must be non-negative integers");
    uint64_t b = (*off)[0].get<uint64_t>(), en = (*off)[1].get<uint64_t>();
    if (b > en || en > data_size)
      throw Error(field + ": data_offsets [" + std::to_string(b) + ", " + std::to_string(en) +
                  "] lie outside the data section of " + std::to_string(data_size) + " bytes");
    uint64_t want = dtype_bytes(e.dtype, static_cast<int64_t>(numel));
    if (en - b != want)
      throw Error(field + ": shape " + shape_str(e.shape) + " of " + dtype_name(e.dtype) + " needs " +
                  std::to_string(want) + " bytes but data_offsets span " + std::to_string(en - b));
    e.begin = b;
    e.end = en;
    if (en > b) ranges.emplace_back(b, en);
    out.emplace(name, std::move(e));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second) throw Error(where + ": tensors overlap in the data section");
  return out;
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const fs::path& path) {
  auto f = std::unique_ptr<SafetensorsFile>(new SafetensorsFile());
  f->file_ = MappedFile::open(path);
  f->entries_ = parse_header(f->file_->data(), f->file_->size(), path.string(), &f->metadata_);
  uint64_t n;
  std::memcpy(&n, f->file_->data(), 8);
  f->data_start_ = 8 + n;
  return f;
}

Tensor SafetensorsFile::get(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) throw Error(path().string() + ": no tensor named '" + name + "'");
  const auto& e = it->second;
  return Tensor::view(e.shape, e.dtype, file_->data() + data_start_ + e.begin, file_);
}

WeightStore WeightStore::open_file(const fs::path& file) {
  if (file.extension() == ".bin" || file.extension() == ".pt" || file.extension() == ".pth")
    return of_tensors(file, read_torch_file(file));
  WeightStore s;
  s.source_ = file;
  s.files_.push_back(SafetensorsFile::open(file));
  for (auto& [name, e] : s.files_[0]->entries()) s.where_[name] = 0;
  return s;
}

namespace {

// The shard names an index file lists (model.safetensors.index.json, pytorch_model.bin.index.json).
std::vector<fs::path> shards_of_index(const fs::path& index) {
  Json j = read_json_file(index);
  auto wm = j.find("weight_map");
  if (wm == j.end() || !wm->is_object()) throw Error(index.string() + ": missing object field 'weight_map'");
  std::set<std::string> shard_names;
  for (auto& [name, f] : wm->items()) {
    if (!f.is_string()) throw Error(index.string() + ": weight_map['" + name + "'] must be a file name");
    shard_names.insert(f.get<std::string>());
  }
  std::vector<fs::path> files;
  for (auto& n : shard_names) {
    if (n.find('/') != std::string::npos || n == "..")
      throw Error(index.string() + ": shard name '" + n + "' must be a file in the same folder");
    files.push_back(index.parent_path() / n);
  }
  return files;
}

// A PyTorch checkpoint folder (pytorch_model.bin, or shards with pytorch_model.bin.index.json):
// every tensor read through the restricted unpickler.
WeightStore open_torch_dir(const fs::path& dir) {
  std::vector<fs::path> files;
  if (fs::exists(dir / "pytorch_model.bin.index.json"))
    files = shards_of_index(dir / "pytorch_model.bin.index.json");
  else
    files.push_back(dir / "pytorch_model.bin");
  std::map<std::string, Tensor> all;
  for (auto& f : files)
    for (auto& [name, t] : read_torch_file(f))
      if (!all.emplace(name, t).second) throw Error(f.string() + ": tensor '" + name + "' also appears in another shard");
  return WeightStore::of_tensors(dir, std::move(all));
}

}  // namespace

bool is_torch_checkpoint_dir(const fs::path& dir) {
  if (fs::exists(dir / "model.safetensors.index.json") || fs::exists(dir / "model.safetensors")) return false;
  if (fs::is_directory(dir))
    for (auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".safetensors") return false;
  return fs::exists(dir / "pytorch_model.bin") || fs::exists(dir / "pytorch_model.bin.index.json");
}

WeightStore WeightStore::open_dir(const fs::path& dir) {
  WeightStore s;
  s.source_ = dir;
  std::vector<fs::path> files;
  fs::path index = dir / "model.safetensors.index.json";
  if (fs::exists(index)) {
    files = shards_of_index(index);
  } else if (fs::exists(dir / "model.safetensors")) {
    files.push_back(dir / "model.safetensors");
  } else {
    if (fs::is_directory(dir))
      for (auto& e : fs::directory_iterator(dir))
        if (e.path().extension() == ".safetensors") files.push_back(e.path());
    std::sort(files.begin(), files.end());
  }
  if (files.empty() && is_torch_checkpoint_dir(dir)) return open_torch_dir(dir);
  if (files.empty())
    throw Error(dir.string() + ": no model.safetensors or pytorch_model.bin (or shards with an index) found");
  for (auto& f : files) {
    s.files_.push_back(SafetensorsFile::open(f));
    for (auto& [name, e] : s.files_.back()->entries()) {
      if (s.where_.count(name)) throw Error(f.string() + ": tensor '" + name + "' also appears in another shard");
      s.where_[name] = s.files_.size() - 1;
    }
  }
  return s;
}

WeightStore WeightStore::of_tensors(fs::path source, std::map<std::string, Tensor> tensors) {
  WeightStore s;
  s.source_ = std::move(source);
  for (auto& [name, t] : tensors) s.own_entries_[name] = {t.dtype(), t.shape(), 0, t.nbytes()};
  s.own_ = std::move(tensors);
  return s;
}

Tensor WeightStore::get(const std::string& name) const {
  if (auto o = own_.find(name); o != own_.end()) return o->second;
  auto it = where_.find(name);
  if (it == where_.end()) throw Error(source_.string() + ": checkpoint has no tensor '" + name + "'");
  return files_[it->second]->get(name);
}

const TensorEntry& WeightStore::entry(const std::string& name) const {
  if (auto o = own_entries_.find(name); o != own_entries_.end()) return o->second;
  auto it = where_.find(name);
  if (it == where_.end()) throw Error(source_.string() + ": checkpoint has no tensor '" + name + "'");
  return files_[it->second]->entries().at(name);
}

std::vector<std::string> WeightStore::names() const {
  std::vector<std::string> out;
  for (auto& [n, t] : own_) out.push_back(n);
  for (auto& [n, i] : where_) out.push_back(n);
  return out;
}

void write_all_atomic(const fs::path& path, const std::vector<std::pair<const void*, size_t>>& parts) {
  fs::path tmp = path;
  tmp += ".tmp-" + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(path.string() + ": cannot write: " + std::strerror(errno));
  for (auto& [p, n] : parts) {
    auto c = static_cast<const char*>(p);
    size_t done = 0;
    while (done < n) {
      ssize_t w = ::write(fd, c + done, n - done);
      if (w < 0) {
        int e = errno;
        ::close(fd);
        fs::remove(tmp);
        throw Error(path.string() + ": write failed: " + std::strerror(e));
      }
      done += static_cast<size_t>(w);
    }
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    fs::remove(tmp);
    throw Error(path.string() + ": write failed: " + std::strerror(errno));
  }
  fs::rename(tmp, path);
}

void write_file_atomic(const fs::path& path, const std::string& content) {
  write_all_atomic(path, {{content.data(), content.size()}});
}

void write_safetensors(const fs::path& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  Json header = Json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t offset = 0;
  for (auto& [name, t] : tensors) {
    size_t n = t.nbytes();
    header[name] = {
        {"dtype", dtype_to_safetensors(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string h = header.dump();
  while ((h.size() + 8) % 8) h += ' ';  // align the data section to 8 bytes
  uint64_t hn = h.size();
  std::vector<std::pair<const void*, size_t>> parts = {{&hn, 8}, {h.data(), h.size()}};
  for (auto& [name, t] : tensors) parts.emplace_back(t.raw(), t.nbytes());
  write_all_atomic(path, parts);
}

}  // namespace yak::io
