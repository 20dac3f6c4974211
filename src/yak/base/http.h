// HTTP/1.1 client and server for the parts of yak that talk over the network (remote reward
// models, `yak serve-rm`). A thin layer over cpp-httplib so no other file includes it.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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

// What a route handler sees of a request.
struct Request {
  std::string method, path, body;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-case
  // The first header of that name (case-insensitive), "" when absent.
  std::string header(const std::string& name) const;
};

// Where a streamed reply writes its body (chunked transfer), from the connection's own thread.
class StreamSink {
 public:
  virtual ~StreamSink() = default;
  // False once the client has gone away (then stop: nobody is reading).
  virtual bool write(std::string_view data) = 0;
  virtual bool alive() = 0;
};

// A route's answer: a whole body, or (when stream is set) a body written piece by piece.
struct Reply {
  Reply() = default;
  Reply(int status_, std::string body_, std::string content_type_ = "application/json")
      : status(status_), body(std::move(body_)), content_type(std::move(content_type_)) {}
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::function<void(StreamSink&)> stream;
};

// A small threaded server: handlers by (method, path); a handler that throws yak::Error answers
// 400 with {"error": message}, any other exception 500.
class Server {
 public:
  using Handler = std::function<Response(const std::string& body)>;
  using Route = std::function<Reply(const Request&)>;
  Server();
  ~Server();
  void post(const std::string& path, Handler h);
  void get(const std::string& path, Handler h);
  // The full form: headers in, status, headers and streaming out. method: GET, POST or OPTIONS.
  void route(const std::string& method, const std::string& path, Route h);
  // Answer for requests no route takes and for errors the server itself detects (404, 405, 413):
  // called with the status, returns the JSON body. Default: {"error": "..."}.
  void set_error_body(std::function<std::string(int status)> f);
  // Largest request body accepted (413 beyond); default 8 MiB.
  void set_max_body_bytes(size_t n);
  // Connections served at once (each streaming reply holds one); default 64.
  void set_threads(int n);
  // Binds (port 0: any free port) and returns the port; throws yak::Error when it cannot.
  int bind(const std::string& host, int port);
  void run();                       // serves until stop(); call after bind
  void wait_until_running() const;  // blocks until run() accepts connections (or ended)
  void stop();                      // from any thread
  // Serves one request given as the bytes a client would send (no socket; for fuzzing and
  // tests) and returns the bytes of the reply, streamed bodies included.
  std::string handle_raw(std::string_view request);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace yak::http
