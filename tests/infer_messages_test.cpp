// The chat messages parser shared by `yak generate --messages` and `yak serve`, and base64 for
// data: URLs (RFC 4648's test vectors).
#include <gtest/gtest.h>

#include "yak/base/base64.h"
#include "yak/infer/messages.h"

using namespace yak;

namespace {

std::string as_text(const std::vector<uint8_t>& b) {
  return {b.begin(), b.end()};
}

infer::ParsedMessages parse(const std::string& json, bool files = true) {
  return infer::parse_messages(Json::parse(json), {.base_dir = "/data/set", .allow_files = files});
}

std::string field_of(const std::string& json, bool files = true) {
  try {
    parse(json, files);
  } catch (const infer::MessagesError& e) {
    return e.field + ": " + e.what();
  }
  return "accepted";
}

}  // namespace

TEST(Base64, Rfc4648Vectors) {
  const std::pair<const char*, const char*> v[] = {{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
                                                   {"foo", "Zm9v"},  {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="},
                                                   {"foobar", "Zm9vYmFy"}};
  for (auto [plain, coded] : v) {
    auto d = base64::decode(coded);
    ASSERT_TRUE(d.has_value()) << coded;
    EXPECT_EQ(as_text(*d), plain) << coded;
  }
  EXPECT_EQ(as_text(*base64::decode("Zm9v\nYmFy")), "foobar");  // line breaks are skipped
  for (const char* bad : {"Zg=", "Zg===", "Zh==", "Zm9v!", "Zg==Zg==", "Z", "Zm9=v"})
    EXPECT_FALSE(base64::decode(bad).has_value()) << bad;
}

TEST(Messages, PartsBecomeTextAndImageMarkers) {
  auto p = parse(R"([
    {"role": "developer", "content": "Be brief."},
    {"role": "user", "content": [{"type": "text", "text": "First"}, {"type": "text", "text": "second"},
                                 {"type": "image_url", "image_url": {"url": "pics/a.png"}},
                                 {"type": "image", "image": "file:///abs/b.jpg"},
                                 {"type": "image_url", "image_url": "data:image/png;base64,Zm9v"},
                                 {"type": "text", "text": "Compare."}]},
    {"role": "assistant", "content": null,
     "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{\"a\": 1}"}}]}])");
  ASSERT_EQ(p.messages.size(), 3u);
  EXPECT_EQ(p.messages[0].role, "system");
  EXPECT_EQ(p.messages[1].content, "First\nsecond<image><image><image>Compare.");
  ASSERT_EQ(p.messages[2].tool_calls.size(), 1u);
  EXPECT_EQ(p.messages[2].tool_calls[0].name, "f");
  ASSERT_EQ(p.images.size(), 3u);
  EXPECT_EQ(p.images[0].path, "/data/set/pics/a.png");  // relative to the messages file
  EXPECT_EQ(p.images[1].path, "/abs/b.jpg");
  EXPECT_EQ(as_text(p.images[2].bytes), "foo");
  EXPECT_EQ(p.images[2].where, "messages[1].content[4]");
}

TEST(Messages, BadInputNamesTheField) {
  EXPECT_EQ(field_of("{}"), "messages: 'messages' must be a non-empty array");
  EXPECT_NE(field_of(R"([{"role": "robot", "content": "x"}])").find("messages[0].role"), std::string::npos);
  EXPECT_NE(field_of(R"([{"role": "user"}])").find("messages[0].content"), std::string::npos);
  EXPECT_NE(field_of(R"([{"role": "user", "content": [{"type": "image_url"}]}])").find("messages[0].content[0]"),
            std::string::npos);
  EXPECT_NE(field_of(R"([{"role": "user", "content": [{"type": "image", "image": "https://h/x.png"}]}])")
                .find("not fetched over the network"),
            std::string::npos);
  EXPECT_NE(field_of(R"([{"role": "user", "content": [{"type": "image", "image": "file://rel.png"}]}])")
                .find("absolute path"),
            std::string::npos);
  // A server reads no local files: data: URLs only.
  EXPECT_NE(field_of(R"([{"role": "user", "content": [{"type": "image", "image": "/etc/passwd"}]}])", false)
                .find("reads no local files"),
            std::string::npos);
  EXPECT_NE(field_of(R"([{"role": "user", "content": [{"type": "image", "image": "data:text/plain;base64,Zm9v"}]}])")
                .find("data:image/"),
            std::string::npos);
  EXPECT_NE(field_of(R"([{"role": "user", "content": "x", "tool_calls": []}])").find("tool_calls"), std::string::npos);
}
