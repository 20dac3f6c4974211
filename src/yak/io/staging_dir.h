// Writing a whole output folder atomically: files go into a hidden temporary folder beside the
// target, which is renamed into place only when everything was written.
#pragma once
#include <filesystem>

namespace yak::io {

class StagingDir {
 public:
  // Refuse: the target must be absent or an empty folder (outputs a user names).
  // Replace: an existing target folder is swapped out at commit (re-saved training outputs).
  enum class Existing { Refuse, Replace };
  // Checks that `target` can be created — per `existing`, with an existing parent — and makes the
  // temporary folder. Throws yak::Error naming `target` otherwise; nothing is written then.
  explicit StagingDir(std::filesystem::path target, Existing existing = Existing::Refuse);
  ~StagingDir();  // removes the temporary folder unless commit() succeeded
  StagingDir(const StagingDir&) = delete;
  StagingDir& operator=(const StagingDir&) = delete;

  const std::filesystem::path& path() const { return tmp_; }  // write the files here
  const std::filesystem::path& target() const { return target_; }
  // Renames the temporary folder to the target. A target folder that became non-empty meanwhile
  // is never merged into: commit throws and the temporary folder is removed.
  void commit();

 private:
  std::filesystem::path target_, tmp_;
  Existing existing_;
  bool committed_ = false;
};

// Throws yak::Error unless `target` is absent or an empty folder and its parent folder exists.
void check_output_dir(const std::filesystem::path& target);

}  // namespace yak::io
