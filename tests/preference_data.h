// Generated preference records shared by the reward-model and DPO tests: polite answers are
// preferred over rude ones; the filler words are shared, so only the tone counts.
#pragma once
#include <random>
#include <string>
#include <vector>

#include "yak/base/json.h"
#include "yak/train/data_source.h"

namespace yak::testdata {

inline std::vector<train::Record> preferences(int n, uint64_t seed) {
  std::mt19937 rng(static_cast<uint32_t>(seed));
  const char* filler[] = {"the", "yak", "grass", "water", "hill", "snow", "road", "light"};
  const char* good[] = {"thank you", "please", "kindly"};
  const char* rude[] = {"go away", "shut up", "stupid"};
  std::vector<train::Record> out;
  for (int i = 0; i < n; ++i) {
    std::string words;
    for (int k = 0; k < 4; ++k) words += std::string(" ") + filler[rng() % 8];
    Json j = {{"prompt", "Say something about" + words + "."},
              {"chosen", std::string(good[rng() % 3]) + "," + words},
              {"rejected", std::string(rude[rng() % 3]) + "," + words}};
    out.push_back({j, "generated:" + std::to_string(i + 1)});
  }
  return out;
}

}  // namespace yak::testdata
