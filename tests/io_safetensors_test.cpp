// safetensors and config.json: round trips, and every kind of broken input gives a yak::Error
// that names the file and what was wrong.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "yak/base/error.h"
#include "yak/io/hf_config.h"
#include "yak/io/safetensors.h"

using namespace yak;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir() {
  auto d = fs::temp_directory_path() / ("yak-io-test-" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream o(p, std::ios::binary);
  o << bytes;
}

std::string raw_file(const std::string& header, size_t data_bytes) {
  uint64_t n = header.size();
  std::string s(reinterpret_cast<const char*>(&n), 8);
  return s + header + std::string(data_bytes, '\0');
}

template <typename Fn>
std::string error_of(Fn fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Safetensors, RoundTripAllDtypes) {
  auto dir = temp_dir();
  Tensor a = Tensor::empty({2, 3}, DType::F32);
  for (int i = 0; i < 6; ++i) a.data<float>()[i] = 0.5f * i;
  Tensor b = Tensor::zeros({4}, DType::BF16);
  b.data<uint16_t>()[1] = 0x3f80;  // 1.0
  Tensor c = Tensor::zeros({3}, DType::I64);
  c.data<int64_t>()[2] = -7;
  io::write_safetensors(dir / "t.safetensors", {{"a", a}, {"b", b}, {"c", c}}, {{"format", "pt"}});
  auto f = io::SafetensorsFile::open(dir / "t.safetensors");
  EXPECT_EQ(f->metadata().at("format"), "pt");
  EXPECT_EQ(f->get("a").shape(), (Shape{2, 3}));
  EXPECT_FLOAT_EQ(f->get("a").data<float>()[5], 2.5f);
  EXPECT_FLOAT_EQ(f->get("b").to_f32().data<float>()[1], 1.0f);
  EXPECT_EQ(f->get("c").data<int64_t>()[2], -7);
  EXPECT_FALSE(fs::exists(dir / ("t.safetensors.tmp-" + std::to_string(::getpid()))));
  fs::remove_all(dir);
}

TEST(Safetensors, BrokenFilesNameTheProblem) {
  auto dir = temp_dir();
  auto p = dir / "bad.safetensors";
  const std::string ok = R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})";

  write_bytes(p, "abc");
  EXPECT_NE(error_of([&] { io::SafetensorsFile::open(p); }).find("shorter than the 8-byte header"), std::string::npos);

  write_bytes(p, raw_file(ok, 16).substr(0, 20));  // truncated inside the header
  EXPECT_NE(error_of([&] { io::SafetensorsFile::open(p); }).find("exceeds the file size"), std::string::npos);

  write_bytes(p, raw_file(ok, 8));  // data section too short for the offsets
  std::string e = error_of([&] { io::SafetensorsFile::open(p); });
  EXPECT_NE(e.find("tensor 'w'"), std::string::npos) << e;
  EXPECT_NE(e.find("outside the data section"), std::string::npos) << e;
  EXPECT_NE(e.find(p.string()), std::string::npos) << e;

  write_bytes(p, raw_file(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", 16));
  EXPECT_NE(error_of([&] { io::SafetensorsFile::open(p); }).find("needs 12 bytes"), std::string::npos);

  write_bytes(p, raw_file(R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]})", 16));
  EXPECT_NE(error_of([&] { io::SafetensorsFile::open(p); }).find("not valid JSON"), std::string::npos);

  write_bytes(p, raw_file(R"({"w":{"dtype":"F8","shape":[2],"data_offsets":[0,2]}})", 2));
  EXPECT_NE(error_of([&] { io::SafetensorsFile::open(p); }).find("unsupported dtype"), std::string::npos);

  write_bytes(p, raw_file(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4));
  EXPECT_NE(error_of([&] { io::SafetensorsFile::open(p); }).find("non-negative"), std::string::npos);

  write_bytes(
      p,
      raw_file(
          R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
          12));
  EXPECT_NE(error_of([&] { io::SafetensorsFile::open(p); }).find("overlap"), std::string::npos);

  EXPECT_NE(error_of([&] { io::SafetensorsFile::open(dir / "missing.safetensors"); }).find("cannot open"),
            std::string::npos);
  fs::remove_all(dir);
}

TEST(Safetensors, ShardIndexErrors) {
  auto dir = temp_dir();
  write_bytes(dir / "model.safetensors.index.json", R"({"weight_map": {"w": "model-00001-of-00002.safetensors"}})");
  std::string e = error_of([&] { io::WeightStore::open_dir(dir); });
  EXPECT_NE(e.find("model-00001-of-00002.safetensors"), std::string::npos) << e;
  write_bytes(dir / "model.safetensors.index.json", R"({"weight_map": {"w": "../escape.safetensors"}})");
  EXPECT_NE(error_of([&] { io::WeightStore::open_dir(dir); }).find("same folder"), std::string::npos);
  write_bytes(dir / "model.safetensors.index.json", R"({"metadata": {}})");
  EXPECT_NE(error_of([&] { io::WeightStore::open_dir(dir); }).find("weight_map"), std::string::npos);
  fs::remove_all(dir);
}

Json base_config() {
  return Json::parse(R"({"architectures":["LlamaForCausalLM"],"vocab_size":32,"hidden_size":16,
    "intermediate_size":32,"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":1})");
}

TEST(HfConfig, ReadsBothRopeSpellings) {
  Json v4 = base_config();
  v4["rope_theta"] = 500000.0;
  v4["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"original_max_position_embeddings", 8192}};
  auto c4 = io::ModelConfig::from_json(v4, "config.json");
  EXPECT_EQ(c4.rope.type, io::RopeType::Llama3);
  EXPECT_DOUBLE_EQ(c4.rope.theta, 500000.0);
  Json v5 = base_config();
  v5["rope_parameters"] = {{"rope_type", "yarn"}, {"factor", 4.0}, {"rope_theta", 1e6}};
  auto c5 = io::ModelConfig::from_json(v5, "config.json");
  EXPECT_EQ(c5.rope.type, io::RopeType::Yarn);
  EXPECT_DOUBLE_EQ(c5.rope.theta, 1e6);
  EXPECT_EQ(c5.head_dim, 8);
  EXPECT_EQ(c5.num_kv_heads, 1);
}

TEST(HfConfig, BadConfigsNameTheField) {
  Json j = base_config();
  j["architectures"] = {"GPT2LMHeadModel"};
  EXPECT_NE(error_of([&] {
              io::ModelConfig::from_json(j, "x/config.json");
            }).find("unsupported architecture 'GPT2LMHeadModel'"),
            std::string::npos);
  j = base_config();
  j["rope_scaling"] = {{"type", "longrope"}, {"factor", 2.0}};
  EXPECT_NE(error_of([&] { io::ModelConfig::from_json(j, "x/config.json"); }).find("unsupported rope type 'longrope'"),
            std::string::npos);
  j = base_config();
  j.erase("hidden_size");
  EXPECT_NE(error_of([&] { io::ModelConfig::from_json(j, "x/config.json"); }).find("missing field 'hidden_size'"),
            std::string::npos);
  j = base_config();
  j["num_key_value_heads"] = 3;
  EXPECT_NE(error_of([&] { io::ModelConfig::from_json(j, "x/config.json"); }).find("multiple of num_key_value_heads"),
            std::string::npos);
  j = base_config();
  j["vocab_size"] = "many";
  EXPECT_NE(error_of([&] { io::ModelConfig::from_json(j, "x/config.json"); }).find("wrong type"), std::string::npos);
  auto dir = temp_dir();
  write_bytes(dir / "config.json", "{\n  \"vocab_size\": 3,\n  oops\n}");
  std::string e = error_of([&] { io::ModelConfig::load(dir); });
  EXPECT_NE(e.find("invalid JSON at line 3"), std::string::npos) << e;
  fs::remove_all(dir);
}

}  // namespace
