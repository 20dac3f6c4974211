#include "yak/base/http.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <thread>

#include "yak/base/error.h"
#include "yak/base/json.h"

namespace yak::http {

Url parse_url(const std::string& url) {
  const std::string scheme = "http://";
  check(url.rfind(scheme, 0) == 0, "URL '" + url + "': expected http://host[:port][/path]");
  Url u;
  std::string rest = url.substr(scheme.size());
  const size_t slash = rest.find('/');
  if (slash != std::string::npos) u.path = rest.substr(slash), rest.resize(slash);
  const size_t colon = rest.rfind(':');
  if (colon != std::string::npos) {
    const std::string port = rest.substr(colon + 1);
    check(!port.empty() && port.size() <= 5 && port.find_first_not_of("0123456789") == std::string::npos,
          "URL '" + url + "': the port must be a number");
    u.port = std::stoi(port);
    check(u.port > 0 && u.port < 65536, "URL '" + url + "': the port must be in 1..65535");
    rest.resize(colon);
  }
  check(!rest.empty(), "URL '" + url + "': no host");
  u.host = rest;
  return u;
}

namespace {

httplib::Client client_for(const Url& u, double timeout_seconds) {
  httplib::Client c(u.host, u.port);
  const double t = std::max(0.001, timeout_seconds);
  const auto sec = static_cast<time_t>(t);
  const auto usec = static_cast<time_t>((t - static_cast<double>(sec)) * 1e6);
  c.set_connection_timeout(sec, usec);
  c.set_read_timeout(sec, usec);
  c.set_write_timeout(sec, usec);
  return c;
}

Response convert(const httplib::Result& r, const std::string& url, double timeout_seconds) {
  if (!r) {
    const auto e = r.error();
    const std::string why = e == httplib::Error::Read || e == httplib::Error::ConnectionTimeout
                                ? "no answer within " + std::to_string(timeout_seconds) + " s"
                                : httplib::to_string(e);
    throw Error("HTTP request to " + url + " failed: " + why);
  }
  Response out;
  out.status = r->status;
  out.body = r->body;
  out.content_type = r->get_header_value("Content-Type");
  return out;
}

}  // namespace

Response post(const std::string& url, const std::string& body, const std::string& content_type,
              double timeout_seconds) {
  const Url u = parse_url(url);
  auto c = client_for(u, timeout_seconds);
  return convert(c.Post(u.path, body, content_type), url, timeout_seconds);
}

Response get(const std::string& url, double timeout_seconds) {
  const Url u = parse_url(url);
  auto c = client_for(u, timeout_seconds);
  return convert(c.Get(u.path), url, timeout_seconds);
}

std::string Request::header(const std::string& name) const {
  std::string want = name;
  for (auto& c : want) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (auto& [k, v] : headers)
    if (k == want) return v;
  return "";
}

namespace {
// httplib's server with its request processing reachable for handle_raw.
struct RawServer : httplib::Server {
  // Streamed bodies stop when httplib believes the server is shutting down (no listening
  // socket): outside listen(), a placeholder stands in for one while the request is served.
  void process(httplib::Stream& strm) {
    const bool unbound = svr_sock_ == INVALID_SOCKET;
    if (unbound) svr_sock_ = 0;
    bool closed = false;
    process_request(strm, true, closed, [](httplib::Request&) {});
    if (unbound) svr_sock_ = INVALID_SOCKET;
  }
};

// A connection that is a byte string: the request to read, the reply written after it.
class MemoryStream final : public httplib::Stream {
 public:
  explicit MemoryStream(std::string_view in) : in_(in) {}
  bool is_readable() const override { return true; }
  bool is_writable() const override { return true; }
  ssize_t read(char* ptr, size_t size) override {
    const size_t n = std::min(size, in_.size() - at_);
    std::copy_n(in_.data() + at_, n, ptr);
    at_ += n;
    return static_cast<ssize_t>(n);
  }
  ssize_t write(const char* ptr, size_t size) override {
    out_.append(ptr, size);
    return static_cast<ssize_t>(size);
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override { ip = "127.0.0.1", port = 1; }
  void get_local_ip_and_port(std::string& ip, int& port) const override { ip = "127.0.0.1", port = 2; }
  socket_t socket() const override { return INVALID_SOCKET; }
  std::string out_;

 private:
  std::string_view in_;
  size_t at_ = 0;
};
}  // namespace

struct Server::Impl {
  RawServer srv;
  std::atomic<bool> started{false}, finished{false};
  std::function<std::string(int)> error_body;
  int threads = 64;
};

Server::Server() : impl_(std::make_unique<Impl>()) {
  impl_->srv.set_payload_max_length(8u << 20);
  impl_->srv.new_task_queue = [impl = impl_.get()] { return new httplib::ThreadPool(static_cast<size_t>(impl->threads)); };
  impl_->srv.set_error_handler([impl = impl_.get()](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    const std::string why = res.status == 404   ? "no such route"
                            : res.status == 413 ? "request body too large"
                            : res.status == 405 ? "method not allowed"
                                                : "request refused";
    res.set_content(impl->error_body ? impl->error_body(res.status) : Json{{"error", why}}.dump(), "application/json");
  });
}
Server::~Server() {
  stop();
}

namespace {

httplib::Server::Handler wrap(Server::Handler h) {
  return [h](const httplib::Request& req, httplib::Response& res) {
    Response out;
    try {
      out = h(req.body);
    } catch (const Error& e) {
      out = {400, Json{{"error", e.what()}}.dump(), "application/json"};
    } catch (const std::exception& e) {
      out = {500, Json{{"error", std::string("internal error: ") + e.what()}}.dump(), "application/json"};
    }
    res.status = out.status;
    res.set_content(out.body, out.content_type.c_str());
  };
}

}  // namespace

namespace {

class HttplibSink final : public StreamSink {
 public:
  explicit HttplibSink(httplib::DataSink& s) : s_(s) {}
  bool write(std::string_view data) override {
    if (!ok_) return false;
    if (!data.empty()) ok_ = s_.write(data.data(), data.size());
    return ok_;
  }
  bool alive() override { return ok_ && (!s_.is_writable || s_.is_writable()); }

 private:
  httplib::DataSink& s_;
  bool ok_ = true;
};

}  // namespace

void Server::route(const std::string& method, const std::string& path, Route h) {
  auto handler = [h](const httplib::Request& req, httplib::Response& res) {
    Request in;
    in.method = req.method;
    in.path = req.path;
    in.body = req.body;
    for (auto& [k, v] : req.headers) {
      std::string key = k;
      for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      in.headers.emplace_back(std::move(key), v);
    }
    Reply out;
    try {
      out = h(in);
    } catch (const Error& e) {
      out = {400, Json{{"error", e.what()}}.dump()};
    } catch (const std::exception& e) {
      out = {500, Json{{"error", std::string("internal error: ") + e.what()}}.dump()};
    }
    res.status = out.status;
    for (auto& [k, v] : out.headers) res.set_header(k.c_str(), v);
    if (out.stream) {
      auto body = std::move(out.stream);
      res.set_chunked_content_provider(out.content_type, [body](size_t, httplib::DataSink& sink) {
        HttplibSink s(sink);
        try {
          body(s);
        } catch (const std::exception&) {
          // The stream's own errors are written into it; anything else ends the reply.
        }
        sink.done();
        return true;
      });
    } else {
      res.set_content(out.body, out.content_type.c_str());
    }
  };
  if (method == "GET")
    impl_->srv.Get(path, handler);
  else if (method == "POST")
    impl_->srv.Post(path, handler);
  else if (method == "OPTIONS")
    impl_->srv.Options(path, handler);
  else
    throw Error("http::Server::route: unsupported method " + method);
}

std::string Server::handle_raw(std::string_view request) {
  MemoryStream strm(request);
  impl_->srv.process(strm);
  return std::move(strm.out_);
}

void Server::set_error_body(std::function<std::string(int)> f) {
  impl_->error_body = std::move(f);
}
void Server::set_max_body_bytes(size_t n) {
  impl_->srv.set_payload_max_length(n);
}
void Server::set_threads(int n) {
  impl_->threads = std::max(1, n);
}

void Server::post(const std::string& path, Handler h) {
  impl_->srv.Post(path, wrap(std::move(h)));
}
void Server::get(const std::string& path, Handler h) {
  impl_->srv.Get(path, wrap(std::move(h)));
}

int Server::bind(const std::string& host, int port) {
  int got = port == 0 ? impl_->srv.bind_to_any_port(host) : (impl_->srv.bind_to_port(host, port) ? port : -1);
  check(got > 0, "cannot listen on " + host + ":" + std::to_string(port) + " (address in use or not allowed)");
  return got;
}

void Server::run() {
  impl_->started = true;
  impl_->srv.listen_after_bind();
  impl_->finished = true;
}

void Server::wait_until_running() const {
  while (!impl_->srv.is_running() && !impl_->finished) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

void Server::stop() {
  if (!impl_) return;
  // A stop that comes before run() reached its accept loop would be lost: wait for it first.
  if (impl_->started) wait_until_running();
  impl_->srv.stop();
}

}  // namespace yak::http
