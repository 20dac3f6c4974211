// yak: one binary, one subcommand per job. Bad input exits 2 with one line; internal failure 1.
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "common.h"
#include "openrlhf_flags.h"
#include "yak/base/error.h"
#include "yak/dist/comm.h"

namespace {

// Where errors go: stderr, or on ranks other than 0 of an MPI job (whose output is silenced, so
// progress, logs and summaries come from rank 0 alone) a copy of the original stderr.
FILE* g_errors = stderr;

// Under an MPI launcher: MPI starts before anything else, and ranks other than 0 write nothing
// but their errors.
void start_ranks() {
  if (!yak::dist::launched_by_mpi()) return;
  yak::dist::Communicator& w = yak::dist::world();
  if (w.rank() == 0) return;
  if (FILE* copy = fdopen(dup(STDERR_FILENO), "w")) g_errors = copy;
  if (!std::freopen("/dev/null", "w", stdout) || !std::freopen("/dev/null", "w", stderr)) g_errors = stderr;
}

// One line naming the rank when several run; a failing rank ends the whole MPI job with its code.
int fail(int code, const char* kind, const char* what) {
  std::fflush(stdout);
  const std::string rank = yak::dist::rank_prefix();
  std::fprintf(g_errors, "yak: %s: %s%s\n", kind, rank.c_str(), what);
  std::fflush(g_errors);
  if (!rank.empty()) yak::dist::world().abort(code);
  return code;
}

}  // namespace

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
    start_ranks();
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
    return fail(2, "error", e.what());
  } catch (const std::exception& e) {
    return fail(1, "internal error", e.what());
  }
  return 0;
}
