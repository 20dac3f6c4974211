#include "yak/io/staging_dir.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>

#include "yak/base/error.h"

namespace yak::io {

namespace fs = std::filesystem;

void check_output_dir(const fs::path& target) {
  std::error_code ec;
  auto st = fs::symlink_status(target, ec);
  if (fs::exists(st)) {
    if (!fs::is_directory(st))
      throw Error(target.string() + ": output folder exists and is not a folder (expected a new or empty folder)");
    if (!fs::is_empty(target, ec))
      throw Error(target.string() + ": output folder exists and is not empty (expected a new or empty folder)");
  }
  fs::path parent = target.parent_path();
  if (parent.empty()) parent = ".";
  if (!fs::is_directory(parent, ec))
    throw Error(target.string() + ": parent folder " + parent.string() + " does not exist");
}

StagingDir::StagingDir(fs::path target, Existing existing) : target_(std::move(target)), existing_(existing) {
  while (target_.has_filename() == false && target_.has_parent_path() && target_ != target_.root_path())
    target_ = target_.parent_path();  // "out/" -> "out"
  if (existing_ == Existing::Refuse) {
    check_output_dir(target_);
  } else {
    if (fs::exists(target_) && !fs::is_directory(target_))
      throw Error(target_.string() + ": exists and is not a folder; refusing to replace it");
    if (target_.has_parent_path()) fs::create_directories(target_.parent_path());
  }
  fs::path parent = target_.parent_path().empty() ? fs::path(".") : target_.parent_path();
  std::random_device rd;
  for (int attempt = 0;; ++attempt) {
    tmp_ = parent / ("." + target_.filename().string() + ".tmp-" + std::to_string(::getpid()) + "-" +
                     std::to_string(rd() % 1000000));
    std::error_code ec;
    if (fs::create_directory(tmp_, ec)) break;
    if (ec || attempt > 8) throw Error(tmp_.string() + ": cannot create temporary folder: " + ec.message());
  }
}

StagingDir::~StagingDir() {
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(tmp_, ec);
}

void StagingDir::commit() {
  fs::path old;
  if (existing_ == Existing::Replace && fs::exists(target_)) {
    // Move the previous folder aside first; it is deleted only once the new one is in place.
    old = tmp_.string() + ".old";
    fs::rename(target_, old);
  }
  // rename(2) replaces an empty folder and refuses a non-empty one, so a folder filled by someone
  // else in the meantime is never merged into.
  if (::rename(tmp_.c_str(), target_.c_str()) != 0) {
    int e = errno;
    std::error_code ec;
    fs::remove_all(tmp_, ec);
    committed_ = true;
    if (!old.empty()) fs::rename(old, target_, ec);
    throw Error(target_.string() + ": cannot move the output into place: " + std::strerror(e));
  }
  committed_ = true;
  if (!old.empty()) {
    std::error_code ec;
    fs::remove_all(old, ec);
  }
}

}  // namespace yak::io
