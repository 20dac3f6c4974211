// HTTP/1.1 client and server for the parts of yak that talk over the network (remote reward
// models, `yak serve-rm`). A thin layer over cpp-httplib so no other file includes it.
#pragma once
#include <functional>
#include <memory>
#include <string>

namespace yak::http {

struct Response {
  int status = 0;
  std::string body;
  std::string content_type = "application/json";
};

// Parsed "http://host[:port][/path]" (https is refused: yak speaks plain HTTP on trusted links).
struct Url {
  std::string host, path = "/";
  int port = 80;
};
Url parse_url(const std::string& url);  // throws yak::Error naming the URL

// POST `body` to `url`; throws yak::Error naming the URL when it cannot connect or times out.
// A non-2xx status is returned, not thrown.
Response post(const std::string& url, const std::string& body, const std::string& content_type, double timeout_seconds);
Response get(const std::string& url, double timeout_seconds);

// A small threaded server: handlers by (method, path); a handler that throws yak::Error answers
// 400 with {"error": message}, any other exception 500.
class Server {
 public:
  using Handler = std::function<Response(const std::string& body)>;
  Server();
  ~Server();
  void post(const std::string& path, Handler h);
  void get(const std::string& path, Handler h);
  // Binds (port 0: any free port) and returns the port; throws yak::Error when it cannot.
  int bind(const std::string& host, int port);
  void run();                       // serves until stop(); call after bind
  void wait_until_running() const;  // blocks until run() accepts connections (or ended)
  void stop();                      // from any thread

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace yak::http
