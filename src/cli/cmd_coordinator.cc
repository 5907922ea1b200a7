// stasis coordinator [options]
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "cli/cli.h"
#include "common/safe_file.h"
#include "coordinator/coordinator.h"
#include "coordinator/daemon.h"
#include "image/writer.h"

namespace stasis::cli {

namespace {

coordinator::Coordinator* g_running = nullptr;

void OnInterrupt(int) {
  if (g_running) g_running->Stop();
}

// Slurm's SIGTERM reaches every process of the job at once (scancel,
// walltime, preemption): stay until the job's final checkpoint is done.
void OnTerminate(int) {
  if (g_running) g_running->Terminate();
}

Status WritePortFile(const std::string& path, uint16_t port) {
  // Not through a symlink at "<path>.tmp" (common/safe_file.h).
  return WriteFileAtomic(path, std::to_string(port) + "\n", 0644).With("--port-file");
}

struct CoordOpts {
  std::optional<double> interval;
  std::string ckptdir;
  std::string compress;
  std::optional<uint32_t> keep;
  std::string port_file;
  std::string log;
  bool exit_on_last = false;
  bool daemon = false;
  double timeout = 600;
};

}  // namespace

Action AddCoordinator(CLI::App& app, GlobalOptions& g) {
  auto o = std::make_shared<CoordOpts>();
  CLI::App* sub = app.add_subcommand(
      "coordinator",
      "Run a coordinator: it serves one job's supervisors and clients on TCP --coord-host:--coord-port, runs\n"
      "checkpoints (on request and every --interval seconds) and writes manifests and stasis_restart.sh.\n"
      "'stasis launch' starts one automatically when none answers.  Job settings given here override the\n"
      "job's own.  SIGTERM (Slurm's scancel, walltime, preemption) lets it exit only once the job's\n"
      "checkpoint is done and the job has ended; SIGINT stops it at once.");
  sub->add_option("--port-file", o->port_file, "Write the port listened on to this file (useful with --coord-port 0)");
  sub->add_option("-i,--interval", o->interval, "Seconds between automatic checkpoints; 0 = none")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("-c,--ckptdir", o->ckptdir, "Directory for checkpoints (default: the job's)");
  sub->add_option("--keep", o->keep, "Complete checkpoints to keep (default: the job's)")->check(CLI::Range(1u, 1000000u));
  sub->add_option("--compress", o->compress, "Image compression: none, zstd or zstd:LEVEL (default: the job's)");
  sub->add_flag("--exit-on-last", o->exit_on_last,
                "Exit when the last supervisor disconnects (or if none connects within 60 seconds)");
  sub->add_flag("--daemon", o->daemon, "Run in the background; returns once the coordinator listens");
  sub->add_option("--log", o->log, "With --daemon: append messages to this file instead of discarding them");
  sub->add_option("--timeout", o->timeout, "Seconds a supervisor may take for each checkpoint phase (default 600)")
      ->check(CLI::PositiveNumber);
  return [o, &g]() -> int {
    coordinator::CoordinatorOptions opts;
    opts.host = g.coord_host;
    opts.port = static_cast<uint16_t>(g.coord_port);
    opts.exit_on_last = o->exit_on_last;
    opts.interval = o->interval;
    opts.keep = o->keep;
    opts.phase_timeout = o->timeout;
    opts.verbose = g.verbose;
    if (!o->compress.empty()) {
      auto spec = image::CompressionSpec::Parse(o->compress);
      if (!spec.ok()) {
        PrintError("coordinator", "--compress: " + spec.status().message());
        return 1;
      }
      opts.compression = spec->ToString();
    }
    if (!o->ckptdir.empty()) {
      auto dir = PrepareCkptDir(o->ckptdir);
      if (!dir.ok()) {
        PrintError("coordinator", dir.status().message());
        return 1;
      }
      opts.ckptdir = *dir;
    }
    std::string port_file = o->port_file;
    if (!port_file.empty()) port_file = std::filesystem::absolute(port_file).string();
    // Listen before daemonizing: the socket is inherited, and a bind error
    // reaches the caller's terminal directly.
    auto coord = coordinator::Coordinator::Listen(opts);
    if (!coord.ok()) {
      PrintError("coordinator", coord.status().message());
      return 1;
    }
    if (!port_file.empty()) {
      if (Status st = WritePortFile(port_file, (*coord)->port()); !st.ok()) {
        PrintError("coordinator", st.message());
        return 1;
      }
    }
    std::optional<coordinator::Daemonizer> daemon;
    if (o->daemon) {
      auto d = coordinator::Daemonizer::Start(o->log);
      if (!d.ok()) {
        PrintError("coordinator", d.status().message());
        return 1;
      }
      daemon = std::move(*d);
    }
    coordinator::Log("listening on " + g.coord_host + ":" + std::to_string((*coord)->port()) +
                     " (pid " + std::to_string(::getpid()) + ")");
    if (!o->daemon && !g.quiet && o->port_file.empty() && g.coord_port == 0) {
      std::cout << (*coord)->port() << std::endl;
    }
    g_running = coord->get();
    struct sigaction sa {};
    sa.sa_handler = OnTerminate;
    sigaction(SIGTERM, &sa, nullptr);
    sa.sa_handler = OnInterrupt;
    sigaction(SIGINT, &sa, nullptr);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    // Slurm's --signal=USR1@T (no B:) signals every process of the step,
    // which includes a coordinator that `stasis run` started where the
    // step's processes are tracked by cgroup: it must survive to checkpoint.
    signal(SIGUSR1, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);
    if (daemon) daemon->Ready();
    Status st = (*coord)->Run();
    g_running = nullptr;
    if (!st.ok()) {
      coordinator::Log(st.message());
      return 1;
    }
    return 0;
  };
}

}  // namespace stasis::cli
