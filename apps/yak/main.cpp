// yak: one binary, one subcommand per job. Bad input exits 2 with one line; internal failure 1.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "common.h"
#include "openrlhf_flags.h"
#include "yak/base/error.h"

int main(int argc, char** argv) {
  CLI::App app{"yak: run, adapt, align and serve language models, in C++"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "yak 0.1.0");
  yak::cli::register_generate(app);
  yak::cli::register_chat(app);
  yak::cli::register_info(app);
  yak::cli::register_tokenize(app);
  yak::cli::register_train(app);
  yak::cli::register_quickstart(app);
  yak::cli::register_tokenizer(app);
  yak::cli::register_model(app);
  yak::cli::register_lora(app);
  yak::cli::register_serve(app);
  yak::cli::register_serve_rm(app);
  yak::cli::register_rejection_sample(app);
  yak::cli::register_ask(app);
  yak::cli::register_convert(app);
  yak::cli::register_eval(app);
  try {
    // OpenRLHF's spellings (dotted names, cluster flags) become yak's before parsing.
    const auto rewritten = yak::cli::rewrite_openrlhf_args(std::vector<std::string>(argv, argv + argc));
    for (const auto& line : yak::cli::openrlhf_notices(rewritten)) std::fprintf(stderr, "%s\n", line.c_str());
    std::vector<std::string> args(rewritten.args.rbegin(), rewritten.args.rend() - 1);  // CLI11: reversed, no argv[0]
    app.parse(args);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "yak: error: %s\n", e.what());
    return 2;
  } catch (const yak::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "yak: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "yak: internal error: %s\n", e.what());
    return 1;
  }
  return 0;
}
