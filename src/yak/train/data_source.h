// Training records from disk: JSON array / JSONL / plain-text files and json@DIR split folders, and
// the blend of several datasets with probabilities (OpenRLHF's blending_datasets over HF datasets).
#pragma once
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "yak/base/json.h"

namespace yak::train {

// One raw example. A .txt line becomes {"text": line}, as HF's "text" loader makes it.
struct Record {
  Json value;
  std::string where;  // "FILE:LINE" (1-based line where the object starts), used in every error
};

// HF interleave_datasets' stopping strategies. OpenRLHF's blending_datasets passes all_exhausted
// (oversampling: stop once every dataset has been seen in full, cycling the exhausted ones);
// first_exhausted stops when any one dataset runs out (older OpenRLHF releases).
enum class StoppingStrategy { AllExhausted, FirstExhausted };

struct ReadOptions {
  std::string split = "train";  // --dataset_split: which split a folder contributes
  // --max_samples: OpenRLHF keeps the first N records of each dataset, then the first N of the
  // blend (before any filtering by SftDataset). The CLI's default is OpenRLHF's 1e6.
  size_t max_samples = std::numeric_limits<size_t>::max();
  bool skip_bad_lines = false;  // JSONL lines that do not parse (or are not objects) are counted and skipped
  uint64_t seed = 42;           // --seed: the blend's source draws
  StoppingStrategy stopping = StoppingStrategy::AllExhausted;
};

struct ReadStats {
  size_t bad_lines = 0;                // skipped with skip_bad_lines
  std::vector<size_t> records;         // per dataset, after max_samples
  std::vector<size_t> blended_counts;  // per dataset: records of it in the blend (with repeats)
};

// One dataset spec: FILE.jsonl / FILE.json (JSON array or JSON lines, sniffed from the first
// character) / FILE.txt, or a folder: DIR or json@DIR. A folder contributes the files of
// options.split (HF's split naming: train*.jsonl, data/train-00000-of-00001.json, test.jsonl,
// validation/dev/eval...); a folder whose files name no split is all "train".
// Throws yak::Error naming the file (and line) for missing paths, unknown types, broken JSON.
std::vector<Record> read_dataset(const std::string& spec, const ReadOptions& options, ReadStats* stats = nullptr);

// --dataset a,b --dataset_probs pa,pb. Without probs (empty string) the datasets are concatenated.
// With probs: HF interleave_datasets' map-style algorithm (draw a source with probability p_i,
// take that source's next record, wrap it when it runs out, stop per the strategy), with our own
// seeded RNG: deterministic for a seed, but not numpy's PCG64 stream, so not the same order as
// OpenRLHF for the same seed. Probabilities must be > 0 and sum to 1 (numpy's rule).
std::vector<Record> blend_datasets(const std::string& datasets, const std::string& probs, const ReadOptions& options,
                                   ReadStats* stats = nullptr);

// The index sequence of the blend: entries are (dataset, record) pairs encoded as offsets into
// the concatenation of the datasets, as HF's select() indices are.
std::vector<size_t> interleave_indices(std::span<const size_t> lengths, std::span<const double> probs, uint64_t seed,
                                       StoppingStrategy stopping);

// Small deterministic RNG (splitmix64-seeded xoshiro256**) used for blending and shuffling, so
// orders never depend on the standard library's distributions.
class DataRng {
 public:
  explicit DataRng(uint64_t seed);
  uint64_t next();
  double uniform();                // [0, 1), 53 bits
  uint64_t below(uint64_t bound);  // unbiased [0, bound)
  // The generator's state, for checkpoints (four words).
  std::vector<uint64_t> state() const { return {s_[0], s_[1], s_[2], s_[3]}; }
  void set_state(const std::vector<uint64_t>& s);

 private:
  uint64_t s_[4];
};

}  // namespace yak::train
