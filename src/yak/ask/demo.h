// The music demo: a seeded, deterministic generator for a music-platform warehouse in SQLite
// (artists, labels, albums, songs, daily plays per platform, daily revenue) and its semantic model.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace yak::ask {

struct DemoOptions {
  uint64_t seed = 20240101;
  int artists = 300;
  int albums = 1000;
  int songs = 3000;
  int songs_per_day = 60;  // rows per platform per day in daily_plays
  std::string start = "2023-01-01", end = "2024-12-31";
};

struct DemoStats {
  int64_t artists = 0, albums = 0, songs = 0, daily_plays = 0, daily_revenue = 0;
  uintmax_t bytes = 0;
};

// Writes the database to `path` (through a temporary file and a rename); same options, same bytes
// of data.
DemoStats write_demo_database(const std::filesystem::path& path, const DemoOptions& opt = {});

// The rollups of daily_plays the demo database holds (semantic.yaml declares them): per platform
// and month, and per platform, period and artist or song.
struct DemoRollup {
  std::string table, grain, key;  // key: "", artist_id or song_id
};
const std::vector<DemoRollup>& demo_rollups();

// examples/music/semantic.yaml, compiled into the library.
const std::string& demo_semantic_yaml();

// A few questions `yak ask demo` answers, Chinese and English.
std::vector<std::string> demo_questions();
// The `today` the demo questions are asked on.
inline constexpr const char* kDemoToday = "2024-12-31";

}  // namespace yak::ask
