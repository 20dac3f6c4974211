// libFuzzer target: bytes as a whole HTTP request (request line, headers, body) through yak's
// HTTP server (cpp-httplib's parser, yak's routing, body limit and error replies) to the OpenAI
// request parser, as yak serve routes them, with a streamed route beside. Nothing may crash;
// every reply must be an HTTP status line.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "yak/base/http.h"
#include "fuzz_model_context.h"
#include "yak/serve/openai.h"

namespace {

const yak::serve::ModelContext& context() { return fuzz_model_context(); }

yak::http::Reply answer(const yak::http::Request& req, yak::serve::Endpoint e) {
  try {
    const auto j = yak::serve::parse_body(req.body);
    auto r = e == yak::serve::Endpoint::Chat ? yak::serve::parse_chat_request(j, context(), req.body)
                                             : yak::serve::parse_completion_request(j, context(), req.body);
    if (r.stream) {
      yak::http::Reply out{200, "", "text/event-stream"};
      out.stream = [](yak::http::StreamSink& sink) { sink.write("data: [DONE]\n\n"); };
      return out;
    }
    return {200, yak::serve::completion_reply(r, context(), "id", 0, {}).dump()};
  } catch (const yak::serve::ApiError& ex) {
    return {ex.status, yak::serve::error_body(ex)};
  }
}

yak::http::Server& server() {
  static yak::http::Server* s = [] {
    auto* srv_ptr = new yak::http::Server;
    auto& srv = *srv_ptr;
    srv.set_max_body_bytes(1 << 16);
    srv.set_error_body([](int status) { return yak::serve::error_body(status, "refused"); });
    srv.route("POST", "/v1/chat/completions", [](const yak::http::Request& r) { return answer(r, yak::serve::Endpoint::Chat); });
    srv.route("POST", "/v1/completions", [](const yak::http::Request& r) { return answer(r, yak::serve::Endpoint::Completion); });
    srv.route("GET", "/health", [](const yak::http::Request&) { return yak::http::Reply{200, "{}"}; });
    srv.route("OPTIONS", R"(/.*)", [](const yak::http::Request&) { return yak::http::Reply{204, ""}; });
    return srv_ptr;
  }();
  return *s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string reply = server().handle_raw(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!reply.empty() && reply.compare(0, 5, "HTTP/") != 0) std::abort();
  return 0;
}
