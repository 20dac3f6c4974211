// The scripted OpenAI-compatible chat server as a program, for the CLI tests of `yak ask --llm`:
//   scripted_chat_server SCRIPT.json PORT_FILE
// SCRIPT.json is a list of {"when": substring, "replies": [...], "status": 200}. The server binds
// a free loopback port, writes it to PORT_FILE and serves until it is killed.
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "ask_chat_server.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: scripted_chat_server SCRIPT.json PORT_FILE\n");
    return 2;
  }
  try {
    const yak::Json script = yak::read_json_file(argv[1]);
    yak::testing::ScriptedChatServer s;
    for (auto& r : script)
      s.on(r.at("when").get<std::string>(), r.at("replies").get<std::vector<std::string>>(), r.value("status", 200));
    const auto url = s.base_url();
    {
      std::ofstream(std::string(argv[2]) + ".tmp")
          << url.substr(url.rfind(':') + 1, url.size() - url.rfind(':') - 4) << "\n";
    }
    std::rename((std::string(argv[2]) + ".tmp").c_str(), argv[2]);
    for (;;) pause();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "scripted_chat_server: %s\n", e.what());
    return 2;
  }
}
