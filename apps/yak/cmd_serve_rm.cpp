// `yak serve-rm`: a reward model over HTTP with OpenRLHF's remote-RM protocol, for
// `yak train ppo --remote_rm_url` (or OpenRLHF itself) on another process or machine.
#include <csignal>
#include <cstdio>
#include <mutex>

#include "common.h"
#include "yak/base/http.h"
#include "yak/ops/ops.h"
#include "yak/train/reward.h"

namespace yak::cli {

namespace {
http::Server* g_server = nullptr;
void on_signal(int) {
  if (g_server) g_server->stop();
}
}  // namespace

void register_serve_rm(CLI::App& app) {
  struct Flags {
    std::string model, host = "127.0.0.1";
    int port = 5000, threads = 0;
    bool normalize = false;
  };
  auto f = std::make_shared<Flags>();
  auto* s = app.add_subcommand("serve-rm", "Serve a reward model over HTTP: POST /get_reward {\"query\": [...]}");
  s->add_option("-m,--model,--reward_pretrain", f->model, "Reward model folder")->required();
  s->add_option("--host", f->host, "Address to listen on");
  s->add_option("--port", f->port, "Port (0: any free port; the URL is printed)");
  s->add_flag("--normalize_reward", f->normalize, "Normalize scores with the mean/std in config.json");
  s->add_option("-t,--threads", f->threads, "Threads (default: all cores)");
  s->callback([f] {
    ops::set_num_threads(f->threads);
    train::RewardModelScorer scorer(f->model, f->normalize);
    std::mutex mu;  // one scoring at a time: the model and its thread pool are shared
    http::Server server;
    server.post("/get_reward", [&](const std::string& body) {
      std::lock_guard<std::mutex> lock(mu);
      return http::Response{200, train::answer_reward_request(scorer, body)};
    });
    server.get("/health", [](const std::string&) { return http::Response{200, "{\"status\":\"ok\"}"}; });
    const int port = server.bind(f->host, f->port);
    std::printf("listening on http://%s:%d/get_reward\n", f->host.c_str(), port);
    std::fflush(stdout);
    g_server = &server;
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    server.run();
    g_server = nullptr;
  });
}

}  // namespace yak::cli
