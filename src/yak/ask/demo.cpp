#include "yak/ask/demo.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <set>

#include "yak/ask/dates.h"
#include "yak/ask/sqlite_db.h"
#include "yak/base/error.h"

namespace yak::ask {

const char* demo_semantic_yaml_text();  // generated from examples/music/semantic.yaml

namespace {

// splitmix64: the same numbers on every platform, unlike std:: distributions.
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }
  int range(int lo, int hi) { return lo + static_cast<int>(next() % static_cast<uint64_t>(hi - lo + 1)); }
  template <typename T>
  const T& pick(const std::vector<T>& v) {
    return v[next() % v.size()];
  }
};

struct Syllable {
  const char* zh;
  const char* en;
};

const std::vector<Syllable> kSurnames = {
    {"陈", "Chen"},  {"林", "Lin"},   {"周", "Zhou"}, {"王", "Wang"}, {"李", "Li"},  {"张", "Zhang"}, {"刘", "Liu"},
    {"杨", "Yang"},  {"黄", "Huang"}, {"吴", "Wu"},   {"赵", "Zhao"}, {"孙", "Sun"}, {"徐", "Xu"},    {"马", "Ma"},
    {"胡", "Hu"},    {"郭", "Guo"},   {"何", "He"},   {"高", "Gao"},  {"罗", "Luo"}, {"郑", "Zheng"}, {"梁", "Liang"},
    {"谢", "Xie"},   {"宋", "Song"},  {"唐", "Tang"}, {"许", "Xu"},   {"韩", "Han"}, {"冯", "Feng"},  {"邓", "Deng"},
    {"曹", "Cao"},   {"彭", "Peng"},  {"萧", "Xiao"}, {"田", "Tian"}, {"潘", "Pan"}, {"袁", "Yuan"},  {"蔡", "Cai"},
    {"蒋", "Jiang"}, {"叶", "Ye"},    {"苏", "Su"},   {"沈", "Shen"}, {"姚", "Yao"}};
const std::vector<Syllable> kGiven = {
    {"子", "Zi"},   {"雨", "Yu"},  {"晨", "Chen"}, {"思", "Si"},   {"欣", "Xin"},  {"浩", "Hao"},  {"宇", "Yu"},
    {"轩", "Xuan"}, {"梓", "Zi"},  {"涵", "Han"},  {"一", "Yi"},   {"诺", "Nuo"},  {"佳", "Jia"},  {"怡", "Yi"},
    {"俊", "Jun"},  {"杰", "Jie"}, {"婷", "Ting"}, {"嘉", "Jia"},  {"伦", "Lun"},  {"慧", "Hui"},  {"文", "Wen"},
    {"博", "Bo"},   {"安", "An"},  {"然", "Ran"},  {"乐", "Le"},   {"天", "Tian"}, {"明", "Ming"}, {"若", "Ruo"},
    {"青", "Qing"}, {"凡", "Fan"}, {"星", "Xing"}, {"辰", "Chen"}, {"逸", "Yi"},   {"菲", "Fei"},  {"琳", "Lin"},
    {"泽", "Ze"},   {"瑶", "Yao"}, {"峰", "Feng"}, {"薇", "Wei"},  {"航", "Hang"}};
// Song and album titles: two words, never a word that names a metric or dimension.
const std::vector<std::string> kTitleA = {
    "夜空", "晴天", "海风", "月光", "星河", "烟火", "晚霞", "雪落", "山川", "花开", "少年", "远方",
    "微光", "梦境", "春日", "秋叶", "流云", "归途", "灯塔", "雨巷", "长街", "海岸", "旧城", "森林",
    "蝴蝶", "飞鸟", "白昼", "黑夜", "风筝", "晨雾", "落日", "极光", "鲸鱼", "银河", "琥珀", "玫瑰",
    "青柠", "木马", "信笺", "邮差", "列车", "站台", "钟声", "荒原", "溪流", "湖心", "孤岛", "候鸟",
    "纸船", "萤火", "彩虹", "云朵", "星光", "初雪", "海浪", "夏至", "冬至", "霓虹", "沙漏", "指南"};
const std::vector<std::string> kTitleB = {
    "之歌", "物语", "来信", "旅人", "回声", "独白", "序曲", "告白", "日记", "心事", "约定", "故事",
    "漫游", "尽头", "边境", "秘密", "守望", "重逢", "远行", "梦想", "时光", "温柔", "倒影", "轨迹",
    "默契", "呼吸", "心跳", "晚安", "流浪", "奔跑", "未眠", "花园", "小镇", "星球", "信仰", "光年",
    "角落", "天空", "诗篇", "余温", "潮汐", "篝火", "风景", "对白", "空白", "留声", "慢歌", "情书",
    "航线", "夜曲", "童话", "拼图", "唱片", "约会", "告别", "追光", "微风", "回忆", "来电", "边缘"};
const std::vector<std::string> kLabels = {"星海唱片", "华音娱乐", "青木音乐",   "银河传媒", "北辰文化", "南风唱片",
                                          "时代音像", "乐动传媒", "金曲工作室", "云端音乐", "蓝鲸娱乐", "晨光唱片"};
const std::vector<std::string> kGenres = {"流行", "摇滚", "民谣", "说唱", "电子", "R&B", "古风", "爵士"};
const std::vector<std::string> kPlatforms = {"酷我音乐", "QQ音乐", "酷狗音乐", "全民K歌"};
const std::array<double, 4> kPlatformScale = {0.6, 1.0, 0.9, 0.3};
const std::array<double, 4> kRevenuePerPlay = {0.0021, 0.0034, 0.0027, 0.0048};

struct RegionSpec {
  const char* region;
  double weight;
  const char* langs[2];  // main language, second language
};
const std::vector<RegionSpec> kRegions = {{"中国内地", 0.55, {"zh", "zh"}},  {"中国台湾", 0.15, {"zh", "zh"}},
                                          {"中国香港", 0.12, {"yue", "zh"}}, {"欧美", 0.10, {"en", "en"}},
                                          {"日本", 0.04, {"ja", "en"}},      {"韩国", 0.04, {"ko", "en"}}};

std::string capitalize_join(const std::vector<const char*>& parts) {
  std::string s;
  for (size_t i = 0; i < parts.size(); ++i) {
    std::string p = parts[i];
    if (i > 0) {
      for (auto& c : p) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    s += p;
  }
  return s;
}

}  // namespace

const std::string& demo_semantic_yaml() {
  static const std::string s = demo_semantic_yaml_text();
  return s;
}

const std::vector<DemoRollup>& demo_rollups() {
  static const std::vector<DemoRollup> r = {{"plays_platform_month", "month", ""},
                                            {"plays_artist_year", "year", "artist_id"},
                                            {"plays_song_year", "year", "song_id"},
                                            {"plays_artist_month", "month", "artist_id"},
                                            {"plays_song_month", "month", "song_id"}};
  return r;
}

std::vector<std::string> demo_questions() {
  return {"2024年QQ音乐的播放量",
          "去年各平台的播放量",
          "去年QQ音乐播放量最高的10位歌手",
          "2024年每月播放量趋势",
          "近7天各平台的收入",
          "How many artists are there in each region?",
          "top 5 songs by likes last month",
          "列出2024年发行的华语歌曲"};
}

DemoStats write_demo_database(const std::filesystem::path& path, const DemoOptions& opt) {
  const auto start = Date::parse(opt.start), end = Date::parse(opt.end);
  check(start && end && start->days() <= end->days(), "demo: dates should be YYYY-MM-DD with start <= end");
  check(opt.artists > 0 && opt.albums >= opt.artists && opt.songs >= opt.albums && opt.songs_per_day > 0,
        "demo: need artists > 0, albums >= artists, songs >= albums, songs_per_day > 0");
  check(static_cast<size_t>(opt.songs) <= kTitleA.size() * kTitleB.size(),
        "demo: at most " + std::to_string(kTitleA.size() * kTitleB.size()) + " songs");
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  const auto tmp = path.string() + ".tmp";
  std::filesystem::remove(tmp);
  DemoStats st;
  {
    SqliteDb db(tmp, /*writable=*/true);
    db.exec("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;");
    db.exec(R"sql(
CREATE TABLE labels (label_id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE artists (artist_id INTEGER PRIMARY KEY, name TEXT NOT NULL, name_en TEXT NOT NULL, gender TEXT NOT NULL,
  region TEXT NOT NULL, genre TEXT NOT NULL, label_id INTEGER REFERENCES labels(label_id), debut_year INTEGER);
CREATE TABLE albums (album_id INTEGER PRIMARY KEY, title TEXT NOT NULL, artist_id INTEGER REFERENCES artists(artist_id),
  release_date TEXT NOT NULL);
CREATE TABLE songs (song_id INTEGER PRIMARY KEY, title TEXT NOT NULL, artist_id INTEGER REFERENCES artists(artist_id),
  album_id INTEGER REFERENCES albums(album_id), language TEXT NOT NULL, duration_sec INTEGER NOT NULL,
  release_date TEXT NOT NULL);
CREATE TABLE daily_plays (dt TEXT NOT NULL, platform TEXT NOT NULL, song_id INTEGER NOT NULL REFERENCES songs(song_id),
  plays INTEGER NOT NULL, likes INTEGER NOT NULL, shares INTEGER NOT NULL, listeners INTEGER NOT NULL,
  PRIMARY KEY (dt, platform, song_id)) WITHOUT ROWID;
CREATE TABLE daily_revenue (dt TEXT NOT NULL, platform TEXT NOT NULL, revenue_cny REAL NOT NULL,
  PRIMARY KEY (dt, platform));
)sql");
    db.exec("BEGIN");
    Rng rng{opt.seed};
    {
      auto ins = db.inserter("INSERT INTO labels VALUES (?, ?)");
      for (size_t i = 0; i < kLabels.size(); ++i)
        ins->row({Value::integer(static_cast<int64_t>(i) + 1), Value::text(kLabels[i])});
    }
    // Artists: unique Chinese names with pinyin English names; popularity falls off as 1/rank.
    struct Artist {
      std::string region_lang[2];
      double popularity;
    };
    std::vector<Artist> artists;
    {
      auto ins = db.inserter("INSERT INTO artists VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
      std::set<std::string> used;
      for (int a = 1; a <= opt.artists; ++a) {
        std::string name, en;
        for (;;) {
          const auto& s = rng.pick(kSurnames);
          const auto& g1 = rng.pick(kGiven);
          const bool two = rng.uniform() < 0.7;
          const auto& g2 = rng.pick(kGiven);
          name = std::string(s.zh) + g1.zh + (two ? g2.zh : "");
          en = (two ? capitalize_join({g1.en, g2.en}) : std::string(g1.en)) + " " + s.en;
          if (used.insert(name).second && used.insert(en).second) break;
        }
        double u = rng.uniform(), acc = 0;
        const RegionSpec* region = &kRegions.back();
        for (auto& r : kRegions)
          if ((acc += r.weight) > u) {
            region = &r;
            break;
          }
        const double g = rng.uniform();
        const char* gender = g < 0.45 ? "男" : g < 0.9 ? "女" : "组合";
        ins->row({Value::integer(a), Value::text(name), Value::text(en), Value::text(gender),
                  Value::text(region->region), Value::text(rng.pick(kGenres)),
                  Value::integer(rng.range(1, static_cast<int>(kLabels.size()))),
                  Value::integer(rng.range(1995, 2022))});
        artists.push_back({{region->langs[0], region->langs[1]}, 1.0 / (a + 3)});
      }
    }
    // Titles: distinct two-word combinations, songs "AB" and albums "BA", so no album shares a
    // song's title.
    std::vector<std::string> titles, album_titles;
    std::set<std::string> song_set;
    for (auto& a : kTitleA)
      for (auto& b : kTitleB) titles.push_back(a + b), song_set.insert(a + b);
    for (auto& a : kTitleA)
      for (auto& b : kTitleB)
        if (!song_set.count(b + a)) album_titles.push_back(b + a);
    check(static_cast<size_t>(opt.albums) <= album_titles.size(),
          "demo: at most " + std::to_string(album_titles.size()) + " albums");
    for (size_t i = titles.size() - 1; i > 0; --i) std::swap(titles[i], titles[rng.next() % (i + 1)]);
    for (size_t i = album_titles.size() - 1; i > 0; --i) std::swap(album_titles[i], album_titles[rng.next() % (i + 1)]);
    size_t next_title = 0;
    // Albums: every artist has one, the rest go to random artists.
    struct Album {
      int artist;
      Date release;
    };
    std::vector<Album> albums;
    const int first_day = Date{2015, 1, 1}.days(), last_day = end->days() - 10;
    {
      auto ins = db.inserter("INSERT INTO albums VALUES (?, ?, ?, ?)");
      for (int al = 1; al <= opt.albums; ++al) {
        const int artist = al <= opt.artists ? al : rng.range(1, opt.artists);
        const Date rel = Date::from_days(rng.range(first_day, last_day));
        ins->row(
            {Value::integer(al), Value::text(album_titles[al - 1]), Value::integer(artist), Value::text(rel.str())});
        albums.push_back({artist, rel});
      }
    }
    // Songs: every album has one, the rest go to random albums; popularity from the artist.
    std::vector<double> pop(opt.songs);
    std::vector<int> release(opt.songs);
    {
      auto ins = db.inserter("INSERT INTO songs VALUES (?, ?, ?, ?, ?, ?, ?)");
      for (int s = 1; s <= opt.songs; ++s) {
        const int al = s <= opt.albums ? s : rng.range(1, opt.albums);
        const auto& album = albums[al - 1];
        const auto& artist = artists[album.artist - 1];
        const std::string lang = rng.uniform() < 0.85 ? artist.region_lang[0] : artist.region_lang[1];
        ins->row({Value::integer(s), Value::text(titles[next_title++]), Value::integer(album.artist),
                  Value::integer(al), Value::text(lang), Value::integer(rng.range(150, 330)),
                  Value::text(album.release.str())});
        // Newer songs are hotter; a few songs are hits.
        const double hit = rng.uniform() < 0.03 ? 8.0 : 1.0;
        pop[s - 1] = artist.popularity * (0.3 + rng.uniform()) * hit;
        release[s - 1] = album.release.days();
      }
    }
    std::vector<double> cdf(opt.songs);
    double total = 0;
    for (int s = 0; s < opt.songs; ++s) cdf[s] = total += pop[s];
    st.artists = opt.artists, st.albums = opt.albums, st.songs = opt.songs;
    // Daily plays: each platform has a sample of released songs each day, drawn by popularity.
    auto plays_ins = db.inserter("INSERT INTO daily_plays VALUES (?, ?, ?, ?, ?, ?, ?)");
    auto rev_ins = db.inserter("INSERT INTO daily_revenue VALUES (?, ?, ?)");
    const int d0 = start->days(), d1 = end->days();
    std::vector<int> chosen;
    std::vector<char> taken(opt.songs, 0);
    for (int day = d0; day <= d1; ++day) {
      const Date date = Date::from_days(day);
      const std::string dt = date.str();
      const double weekend = date.weekday() >= 5 ? 1.25 : 1.0;
      const double growth = 1.0 + 0.35 * (day - d0) / std::max(1, d1 - d0);
      const double season = (date.m == 12 || date.m == 1 || date.m == 2) ? 1.15
                            : (date.m >= 6 && date.m <= 8)               ? 1.1
                                                                         : 1.0;
      for (size_t p = 0; p < kPlatforms.size(); ++p) {
        chosen.clear();
        for (int tries = 0; static_cast<int>(chosen.size()) < opt.songs_per_day && tries < opt.songs_per_day * 50;
             ++tries) {
          const double u = rng.uniform() * total;
          int s = static_cast<int>(std::upper_bound(cdf.begin(), cdf.end(), u) - cdf.begin());
          if (s >= opt.songs) s = opt.songs - 1;
          if (taken[s] || release[s] > day) continue;
          taken[s] = 1;
          chosen.push_back(s);
        }
        int64_t day_plays = 0;
        std::sort(chosen.begin(), chosen.end());
        for (int s : chosen) {
          taken[s] = 0;
          const double base = 400000.0 * pop[s] * kPlatformScale[p] * weekend * growth * season;
          const int64_t plays = 50 + static_cast<int64_t>(base * (0.6 + 0.8 * rng.uniform()));
          const int64_t likes = static_cast<int64_t>(plays * (0.02 + 0.06 * rng.uniform()));
          const int64_t shares = static_cast<int64_t>(plays * (0.002 + 0.008 * rng.uniform()));
          const int64_t listeners = static_cast<int64_t>(plays * (0.35 + 0.35 * rng.uniform()));
          plays_ins->row({Value::text(dt), Value::text(kPlatforms[p]), Value::integer(s + 1), Value::integer(plays),
                          Value::integer(likes), Value::integer(shares), Value::integer(listeners)});
          day_plays += plays;
          ++st.daily_plays;
        }
        const double revenue =
            std::round(day_plays * kRevenuePerPlay[p] * (0.9 + 0.2 * rng.uniform()) * 100.0 + 500000.0) / 100.0;
        rev_ins->row({Value::text(dt), Value::text(kPlatforms[p]), Value::real(revenue)});
        ++st.daily_revenue;
      }
    }
    plays_ins.reset();
    rev_ins.reset();
    db.exec("COMMIT");
    db.exec(
        "CREATE INDEX songs_artist ON songs(artist_id);"
        "CREATE INDEX albums_artist ON albums(artist_id);");
    // Rollups of daily_plays (declared in semantic.yaml): the first day of each month or year,
    // clustered by the key they join on so that a join probes one contiguous range.
    for (auto& r : demo_rollups()) {
      const std::string period = r.grain == "year" ? "substr(p.dt, 1, 4) || '-01-01'" : "substr(p.dt, 1, 7) || '-01'";
      const std::string key = r.key.empty() ? "" : r.key + " INTEGER NOT NULL, ";
      const std::string pk = r.key.empty() ? "dt, platform" : r.key + ", dt, platform";
      const std::string key_expr = r.key.empty() ? "" : (r.key == "artist_id" ? "s.artist_id, " : "p.song_id, ");
      const std::string join = r.key == "artist_id" ? " JOIN songs s ON s.song_id = p.song_id" : "";
      db.exec("CREATE TABLE " + r.table + " (dt TEXT NOT NULL, platform TEXT NOT NULL, " + key +
              "plays INTEGER NOT NULL, likes INTEGER NOT NULL, shares INTEGER NOT NULL, listeners INTEGER NOT NULL, "
              "PRIMARY KEY (" +
              pk +
              ")) WITHOUT ROWID;"
              "INSERT INTO " +
              r.table + " (dt, platform, " + (r.key.empty() ? "" : r.key + ", ") +
              "plays, likes, shares, listeners) SELECT " + period + ", p.platform, " + key_expr +
              "SUM(p.plays), SUM(p.likes), SUM(p.shares), SUM(p.listeners) FROM daily_plays p" + join +
              " GROUP BY 1, 2" + (r.key.empty() ? "" : ", 3") + ";");
    }
    db.exec("ANALYZE;");
  }
  std::filesystem::rename(tmp, path);
  st.bytes = std::filesystem::file_size(path);
  return st;
}

}  // namespace yak::ask
