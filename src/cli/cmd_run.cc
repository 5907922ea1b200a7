// stasis run [options] [--] PROGRAM ARGS...
//
// Launch-or-restart for batch jobs: the first time, launches PROGRAM; every
// time after, restarts the newest complete checkpoint of --ckptdir (falling
// back to older ones).  The same sbatch script can thus be submitted again or
// requeued unchanged.  While the job runs, this process (recommended: `exec
// stasis run ...` so that it is the batch shell) turns the checkpoint
// signals (--checkpoint-signal, default USR1 and TERM: Slurm's
// `--signal=B:USR1@T`, preemption, scancel) and the --checkpoint-after /
// --checkpoint-before-end timers into "checkpoint, kill the job, and with
// --requeue `scontrol requeue $SLURM_JOB_ID`", then exits 0.
//
// Threads: the main thread runs the job (job::Launch / RunRestart must be
// called from a thread that lives until the job ends); a watcher thread waits
// for the signal pipe and the timers and talks to the coordinator.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstring>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>

#include "cli/ckpt_lock.h"
#include "cli/cli.h"
#include "cli/slurm.h"
#include "coordinator/client.h"
#include "coordinator/protocol.h"
#include "image/manifest.h"
#include "image/writer.h"
#include "job/namespace.h"

namespace stasis::cli {

void AddJobOptions(CLI::App* sub, std::optional<double>& interval, std::string& ckptdir, std::string& compress,
                   uint32_t& keep, bool restart);

namespace {

using Clock = std::chrono::steady_clock;

struct RunOptions {
  std::optional<double> interval;
  std::string ckptdir;
  std::string compress = "zstd:1";
  uint32_t keep = 2;
  bool requeue = false;
  std::string signals = "USR1,TERM";
  std::optional<double> before_end;
  std::string after;
  std::vector<std::string> save_files;
};

job::JobSettings WithSaveFiles(job::JobSettings s, std::vector<std::string> patterns) {
  s.save_files = std::move(patterns);
  return s;
}

// The write end of the signal pipe, for RecordSignal (-1: none).
std::atomic<int> g_signal_fd{-1};

void RecordSignal(int sig) {
  int fd = g_signal_fd.load(std::memory_order_relaxed);
  if (fd < 0) return;
  int saved = errno;
  unsigned char byte = static_cast<unsigned char>(sig);
  ssize_t n = write(fd, &byte, 1);
  (void)n;
  errno = saved;
}

// "USR1", "SIGUSR1", "10" -> 10; 0 if unknown or not catchable.
int ParseSignal(std::string name) {
  if (name.rfind("SIG", 0) == 0) name = name.substr(3);
  static const std::pair<const char*, int> kNames[] = {
      {"HUP", SIGHUP}, {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2},
      {"ALRM", SIGALRM}, {"TERM", SIGTERM}, {"CONT", SIGCONT}, {"XCPU", SIGXCPU}, {"URG", SIGURG}};
  for (const auto& [n, s] : kNames) {
    if (name == n) return s;
  }
  char* end = nullptr;
  long v = std::strtol(name.c_str(), &end, 10);
  if (end && *end == '\0' && v > 0 && v < 64 && v != SIGKILL && v != SIGSTOP) return static_cast<int>(v);
  return 0;
}

// A free TCP port on 127.0.0.1 (so that the port of the coordinator is
// known before the job starts; several jobs may share a node).
int PickFreePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  close(fd);
  return port;
}

void Say(const std::string& text) { std::cerr << "stasis run: " << text << std::endl; }

// STASIS_DEFER_SIGNALS for the agent: the checkpoint signals whose default
// action ends a process (signal(7)), as numbers ("10,15").
std::string DeferList(const std::vector<int>& signals) {
  std::string out;
  for (int sig : signals) {
    switch (sig) {
      case SIGCHLD: case SIGCONT: case SIGURG: case SIGWINCH: case SIGTSTP: case SIGTTIN: case SIGTTOU:
        continue;  // ignored or stopping by default: nothing to defer
      default:
        if (!out.empty()) out += ',';
        out += std::to_string(sig);
    }
  }
  return out;
}

// Waits for a checkpoint trigger (signal byte on `sig_fd`, or `deadline`)
// until `stop_fd` becomes readable.  On a trigger: checkpoint --kill through
// the coordinator, then `scontrol requeue` if asked.  It also keeps an
// await_stop request open at the coordinator (WatchCoordinator), so that a
// checkpoint-and-stop that a job process asked for itself (it received a
// deferred signal that this process did not) is followed by the same
// requeue.  Exactly one stop is acted upon: this thread handles both.
// Sets *stopped when the job was stopped by a checkpoint.
class Watcher {
 public:
  Watcher(GlobalOptions g, bool requeue, std::optional<Clock::time_point> deadline, std::string deadline_why,
          int wake_fd)
      : g_(std::move(g)),
        requeue_(requeue),
        deadline_(deadline),
        deadline_why_(std::move(deadline_why)),
        wake_fd_(wake_fd) {}

  // Main thread, once the job's coordinator is up and before the job starts
  // (so no stop can be missed): opens the await_stop connection.
  void WatchCoordinator(const GlobalOptions& g) {
    auto client = ConnectToCoordinator(g);
    Status st = client.ok() ? (*client)->Send({{"type", "await_stop"}}, 10) : client.status();
    if (!st.ok()) {
      Say("cannot watch the coordinator (" + st.message() + "); a checkpoint that the program asks for "
          "itself will not be followed by a requeue");
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      next_await_ = std::move(*client);
    }
    unsigned char zero = 0;  // "new await connection" (no signal is 0)
    ssize_t n = write(wake_fd_, &zero, 1);
    (void)n;
  }

  void Run(int sig_fd, int stop_fd) {
    for (;;) {
      int timeout = -1;
      if (deadline_ && !done_) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline_ - Clock::now()).count();
        timeout = static_cast<int>(std::max<long long>(0, std::min<long long>(left, 1 << 30)));
      }
      pollfd p[3] = {{sig_fd, POLLIN, 0}, {stop_fd, POLLIN, 0}, {await_ ? await_->fd() : -1, POLLIN, 0}};
      int n = poll(p, 3, timeout);
      if (n < 0 && errno == EINTR) continue;
      if (p[2].revents) ReadAwait(0);
      if (p[1].revents) {
        // The job ended.  If that was a stop the program asked for, its
        // result is on the way (the coordinator answers await_stop before
        // it drops the supervisor): wait for it.
        TakeNextAwait();
        if (await_ && !done_) ReadAwait(10);
        return;
      }
      if (p[0].revents & POLLIN) {
        unsigned char sig = 0;
        if (read(sig_fd, &sig, 1) == 1) {
          if (sig == 0) {
            TakeNextAwait();
          } else if (!done_) {
            Trigger(std::string("received SIG") + sigabbrev_np(sig), stop_fd);
          }
        }
        continue;
      }
      if (n == 0 && deadline_ && !done_) {
        deadline_.reset();
        Trigger(deadline_why_, stop_fd);
      }
    }
  }

  bool stopped() const { return stopped_.load(); }

 private:
  void TakeNextAwait() {
    std::lock_guard<std::mutex> lock(mu_);
    if (next_await_) await_ = std::move(next_await_);
  }

  // Reads the await_stop answer (waiting up to `timeout` s).  A stop: acts
  // on it like on our own checkpoint.  Anything else ends the watch.
  void ReadAwait(double timeout) {
    auto reply = await_->Receive(timeout);
    await_.reset();
    if (!reply.ok() || done_ || !coordinator::ReplyError(*reply).ok()) return;
    const std::string who = reply->value("requested_by", std::string());
    Stopped(*reply, who.empty() ? "" : who + ": ");
  }

  void Stopped(const coordinator::Json& reply, const std::string& prefix) {
    done_ = true;
    stopped_ = true;
    Say(prefix + "checkpoint " + std::to_string(reply.value("generation", 0)) + " complete: " +
        reply.value("manifest", std::string()) + "; job stopped");
    const char* job = std::getenv("SLURM_JOB_ID");
    if (!requeue_) return;
    if (!job || !*job) {
      Say("--requeue: not in a Slurm job (SLURM_JOB_ID unset); not requeued");
      return;
    }
    Say(std::string("requeueing Slurm job ") + job);
    if (Status st = slurm::Requeue(job); !st.ok()) Say(st.message());
  }

  // Retries for up to ~10 s while the job has not joined its coordinator;
  // gives up early when stop_fd is readable (the job ended) or the
  // await_stop answer arrives (the job's own request stopped it).
  void Trigger(const std::string& why, int stop_fd) {
    Say(why + ": checkpointing and stopping the job");
    StatusOr<coordinator::Json> reply = Status::Error("no attempt");
    // Right after the start the job may not have joined its coordinator yet.
    for (int attempt = 0; attempt < 20; ++attempt) {
      auto client = ConnectToCoordinator(g_);
      reply = client.ok() ? (*client)->Request({{"type", "checkpoint"}, {"kill", true}}, -1)
                          : StatusOr<coordinator::Json>(client.status());
      if (reply.ok()) {
        Status st = coordinator::ReplyError(*reply);
        if (st.ok()) break;
        reply = st;
      }
      pollfd p[2] = {{stop_fd, POLLIN, 0}, {await_ ? await_->fd() : -1, POLLIN, 0}};
      if (poll(p, 2, 500) > 0) {
        if (p[1].revents) ReadAwait(0);
        if (done_) return;
        if (p[0].revents) break;
      }
    }
    if (!reply.ok()) {
      if (await_) ReadAwait(2);  // our request may have lost the race with the job's own
      if (done_) return;
      Say("checkpoint failed: " + reply.status().message() + "; the job goes on");
      return;
    }
    Stopped(*reply, "");
  }

  GlobalOptions g_;
  bool requeue_;
  std::optional<Clock::time_point> deadline_;
  std::string deadline_why_;
  int wake_fd_;
  bool done_ = false;
  std::atomic<bool> stopped_{false};
  std::unique_ptr<coordinator::Client> await_;  // watcher thread only
  std::mutex mu_;
  std::unique_ptr<coordinator::Client> next_await_;  // from WatchCoordinator
};

}  // namespace

Action AddRun(CLI::App& app, GlobalOptions& g) {
  auto opts = std::make_shared<RunOptions>();
  CLI::App* sub = app.add_subcommand(
      "run",
      "Launch PROGRAM ARGS... the first time, restart it from the newest complete checkpoint of --ckptdir\n"
      "every time after (for batch scripts submitted again or requeued).  On a checkpoint signal or timer:\n"
      "checkpoint, stop the job, requeue it (--requeue) and exit 0.  Holds a lock on --ckptdir.");
  AddJobOptions(sub, opts->interval, opts->ckptdir, opts->compress, opts->keep, false);
  AddSaveFilesOption(sub, opts->save_files, false);
  AddStrictOption(sub, g.strict);
  sub->add_flag("--requeue", opts->requeue,
                "After a checkpoint triggered by a signal or timer, run 'scontrol requeue $SLURM_JOB_ID'");
  sub->add_option("--checkpoint-signal", opts->signals,
                  "Comma-separated signals that trigger checkpoint-and-stop (default: USR1,TERM; 'none' for none).\n"
                  "With TERM, a program without a SIGTERM handler survives SIGTERM until the checkpoint "
                  "(STASIS_DEFER_SIGNALS=TERM for the agent)");
  sub->add_option("--checkpoint-before-end", opts->before_end,
                  "Checkpoint and stop this many seconds before the Slurm job's end time (read with squeue)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--checkpoint-after", opts->after,
                  "Checkpoint and stop after this run time, Slurm format D-HH:MM[:SS], HH:MM:SS, MM "
                  "(env STASIS_CHECKPOINT_AFTER; Gizmo's SLURM_CHECKPOINT)")
      ->envname("STASIS_CHECKPOINT_AFTER");
  sub->prefix_command();
  sub->fallthrough(false);
  AddGlobalOptions(*sub, g, /*with_env=*/false);
  sub->footer("Example (sbatch script): exec stasis run --requeue -i 600 -c $HOME/ckpt/$SLURM_JOB_NAME -- ./simulate");
  return [sub, opts, &app, &g]() -> int {
    std::vector<std::string> argv = sub->remaining();
    if (g_launch_dashdash) {
      if (!argv.empty()) argv.push_back("--");
      argv.insert(argv.end(), g_launch_command.begin(), g_launch_command.end());
    }
    // Parse everything before touching the directory.
    std::vector<int> signals;
    if (opts->signals != "none" && !opts->signals.empty()) {
      std::stringstream ss(opts->signals);
      for (std::string item; std::getline(ss, item, ',');) {
        int sig = ParseSignal(item);
        if (sig == 0) {
          PrintError("run", "--checkpoint-signal: unknown signal '" + item + "'");
          return 2;
        }
        signals.push_back(sig);
      }
    }
    std::optional<double> after;
    if (!opts->after.empty()) {
      auto d = slurm::ParseDuration(opts->after);
      if (!d.ok()) {
        PrintError("run", "--checkpoint-after " + d.status().message());
        return 2;
      }
      after = *d;
    }
    auto spec = image::CompressionSpec::Parse(opts->compress);
    if (!spec.ok()) {
      PrintError("run", "--compress: " + spec.status().message());
      return 2;
    }
    auto dir = PrepareCkptDir(opts->ckptdir.empty() ? "." : opts->ckptdir);
    if (!dir.ok()) {
      PrintError("run", dir.status().message());
      return 1;
    }
    // A port of our own unless one was given: jobs may share a node.
    if (sub->get_option("--coord-port")->count() == 0 && app.get_option("--coord-port")->count() == 0 &&
        std::getenv(coordinator::kPortEnv) == nullptr) {
      g.coord_port = PickFreePort();
    }
    auto lock = LockCkptDir(*dir, "run", g.coord_host + ":" + std::to_string(g.coord_port));
    if (!lock.ok()) {
      PrintError("run", lock.status().message());
      return 1;
    }
    auto manifests = image::ListManifests(*dir);
    const bool restart = manifests.ok() && !manifests->empty();
    if (!restart && argv.empty()) {
      PrintError("run", "no checkpoint in " + *dir + " and no program given "
                        "(usage: stasis run [options] [--] PROGRAM ARGS...)");
      return 2;
    }
    std::optional<std::string> program;
    if (!restart) {
      program = FindProgram(argv[0]);
      if (!program) {
        PrintError("run", argv[0] + ": command not found");
        return 127;
      }
      argv[0] = *program;
    }

    // Deadline of --checkpoint-after / --checkpoint-before-end (the earlier).
    std::optional<Clock::time_point> deadline;
    std::string why;
    const auto now = Clock::now();
    if (after) {
      deadline = now + std::chrono::milliseconds(static_cast<long long>(*after * 1000));
      why = "--checkpoint-after " + opts->after + " reached";
    }
    if (opts->before_end) {
      const char* job = std::getenv("SLURM_JOB_ID");
      auto end = job && *job ? slurm::JobEndTime(job)
                             : StatusOr<std::time_t>(Status::Error("not in a Slurm job (SLURM_JOB_ID unset)"));
      if (!end.ok()) {
        PrintError("run", "--checkpoint-before-end: " + end.status().message() + "; ignored");
      } else {
        double left = std::difftime(*end, std::time(nullptr)) - *opts->before_end;
        auto t = now + std::chrono::milliseconds(static_cast<long long>(std::max(left, 5.0) * 1000));
        if (!deadline || t < *deadline) {
          deadline = t;
          why = "job ends in " + std::to_string(static_cast<long>(*opts->before_end)) + " s (--checkpoint-before-end)";
        }
      }
    }

    // Signals -> pipe -> watcher thread.
    int sp[2], stop[2];
    if (pipe2(sp, O_CLOEXEC | O_NONBLOCK) != 0 || pipe2(stop, O_CLOEXEC) != 0) {
      PrintError("run", std::string("pipe: ") + std::strerror(errno));
      return 1;
    }
    g_signal_fd.store(sp[1]);
    struct sigaction sa {};
    sa.sa_handler = RecordSignal;
    sa.sa_flags = SA_RESTART;
    sigfillset(&sa.sa_mask);
    for (int sig : signals) sigaction(sig, &sa, nullptr);
    job::InterceptSignals(signals, sp[1]);
    // SIGTERM (walltime, preemption) and `--signal=USR1@T` without B: reach
    // every process of the step at once: the agent keeps the program alive
    // until the checkpoint, and a program that got the signal asks for that
    // checkpoint itself (even if this process did not get it).
    if (std::string defer = DeferList(signals); !defer.empty()) {
      setenv("STASIS_DEFER_SIGNALS", defer.c_str(), /*overwrite=*/0);
    }
    auto watcher = std::make_unique<Watcher>(g, opts->requeue, deadline, why, sp[1]);
    std::thread thread([&] { watcher->Run(sp[0], stop[0]); });

    const std::string count = slurm::EnvOrUnset("SLURM_RESTART_COUNT");
    int rc = 0;
    if (restart) {
      RestartRequest req;
      req.interval = opts->interval;
      req.ckptdir = *dir;
      req.compress = spec->ToString();
      req.keep = opts->keep;
      req.paths = {*dir};
      req.save_files = opts->save_files;
      req.dir_locked = true;  // by `lock` above
      rc = RunRestart(g, req, "run", [&](const std::string& manifest) {
        Say("restarting from " + manifest + " (SLURM_RESTART_COUNT=" + count + ")");
        watcher->WatchCoordinator(g);
      });
    } else {
      Say("launching " + *program + " (SLURM_RESTART_COUNT=" + count + ")");
      rc = 1;
      auto agent = FindAgentLib();
      CoordinatorSpawn spawn{*dir, opts->interval, opts->interval.has_value(), opts->keep, spec->ToString()};
      if (!agent.ok()) {
        PrintError("run", agent.status().message());
      } else if (auto client = EnsureCoordinator(g, spawn); !client.ok()) {
        PrintError("run", client.status().message());
      } else if (auto save = ResolveSaveFiles(opts->save_files); !save.ok()) {
        PrintError("run", save.status().message());
      } else {
        watcher->WatchCoordinator(g);
        if (auto r = job::Launch(WithSaveFiles(MakeJobSettings(g, spawn, *agent), *save), argv); !r.ok()) {
          PrintError("run", r.status().message());
        } else {
          rc = *r;
        }
      }
    }

    ssize_t w = write(stop[1], "x", 1);
    (void)w;
    thread.join();
    job::InterceptSignals({}, -1);
    g_signal_fd.store(-1);
    for (int fd : {sp[0], sp[1], stop[0], stop[1]}) close(fd);
    if (watcher->stopped()) {
      Say("job checkpointed and stopped; exit 0");
      return 0;
    }
    return rc;
  };
}

}  // namespace stasis::cli
