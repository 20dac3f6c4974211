// yak's HTTP server without a socket: raw request bytes in, raw reply bytes out (what the HTTP
// fuzz target drives), through routing, the body limit, streaming and the error replies.
#include <gtest/gtest.h>

#include "yak/base/http.h"

using namespace yak;

namespace {
http::Server& server() {
  static http::Server* s = [] {
    auto* srv = new http::Server;
    srv->set_max_body_bytes(64);
    srv->set_error_body([](int status) { return "{\"status\":" + std::to_string(status) + "}"; });
    srv->route("POST", "/echo", [](const http::Request& r) { return http::Reply{200, "got " + r.body, "text/plain"}; });
    srv->route("GET", "/stream", [](const http::Request&) {
      http::Reply out{200, "", "text/event-stream"};
      out.stream = [](http::StreamSink& sink) {
        sink.write("data: 1\n\n");
        sink.write("data: [DONE]\n\n");
      };
      return out;
    });
    return srv;
  }();
  return *s;
}
}  // namespace

TEST(HttpRaw, RoutesBodiesAndErrors) {
  auto& s = server();
  std::string r = s.handle_raw("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
  EXPECT_EQ(r.rfind("HTTP/1.1 200", 0), 0u) << r;
  EXPECT_NE(r.find("\r\n\r\ngot hello"), std::string::npos) << r;
  r = s.handle_raw("GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 404", 0), 0u) << r;
  EXPECT_NE(r.find("{\"status\":404}"), std::string::npos) << r;
  r = s.handle_raw("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + std::string(100, 'a'));
  EXPECT_EQ(r.rfind("HTTP/1.1 413", 0), 0u) << r;
  r = s.handle_raw("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_NE(r.find("data: 1\n\n"), std::string::npos) << r;
  EXPECT_NE(r.find("data: [DONE]"), std::string::npos) << r;
  r = s.handle_raw("NONSENSE\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 400", 0), 0u) << r;
}
