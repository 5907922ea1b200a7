#include "job/supervisor.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include <fmt/format.h>

#include "agent/agent_protocol.h"
#include "checkpoint/dumper.h"
#include "state/saved_files.h"
#include "state/sockets.h"
#include "common/pause_point.h"
#include "common/scoped_fd.h"
#include "image/manifest.h"
#include "image/reader.h"
#include "image/writer.h"
#include "job/agent_server.h"
#include "common/safe_file.h"
#include "coordinator/protocol.h"
#include "job/coordinator_link.h"
#include "job/pid_range.h"
#include "job/preflight.h"
#include "restore/restorer.h"

namespace stasis::job {
namespace {

using nlohmann::json;

std::string Hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "localhost";
  return buf;
}

std::string Basename(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// The process exists and is not a zombie (/proc/<pid>/stat state).
bool ProcessAlive(pid_t pid) {
  FILE* f = fopen(fmt::format("/proc/{}/stat", pid).c_str(), "re");
  if (f == nullptr) return false;
  char buf[512];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  const char* paren = strrchr(buf, ')');
  return paren != nullptr && paren[1] == ' ' && paren[2] != 'Z' && paren[2] != 'X';
}

// Processes of the job (its /proc) in job-control stop (state 'T': ^Z,
// SIGSTOP, or SIGTTIN/SIGTTOU from reading or setting up the terminal in
// the background), with their program names.  Their threads cannot run the
// agent's checkpoint handler until they are continued.
std::vector<std::string> StoppedProcesses() {
  std::vector<std::string> out;
  DIR* d = opendir("/proc");
  if (d == nullptr) return out;
  while (struct dirent* e = readdir(d)) {
    char* end = nullptr;
    long pid = strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || pid <= 1) continue;
    FILE* f = fopen(fmt::format("/proc/{}/stat", pid).c_str(), "re");
    if (f == nullptr) continue;
    char buf[512];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char* open = strchr(buf, '(');
    const char* close = strrchr(buf, ')');
    if (open == nullptr || close == nullptr || close[1] != ' ' || close[2] != 'T') continue;
    out.push_back(fmt::format("pid {} ({})", pid, std::string(open + 1, close)));
  }
  closedir(d);
  return out;
}

bool EnvIsOne(const char* name) {
  const char* v = getenv(name);
  return v != nullptr && std::string(v) == "1";
}

// Seconds the supervisor waits, in the middle of a checkpoint, for the
// coordinator's next request (dump after quiesce; resume, kill or abort
// after the dump) before it gives the checkpoint up and resumes the job:
// STASIS_COORD_TIMEOUT, default kCoordinatorStallTimeout.
double CoordinatorStallTimeout() {
  const char* v = getenv("STASIS_COORD_TIMEOUT");
  if (v == nullptr || *v == '\0') return kCoordinatorStallTimeout;
  char* end = nullptr;
  double s = strtod(v, &end);
  if (end == v || *end != '\0' || !(s > 0)) {
    fprintf(stderr, "stasis: warning: STASIS_COORD_TIMEOUT=%s is not a number of seconds > 0; using %.0f\n", v,
            kCoordinatorStallTimeout);
    return kCoordinatorStallTimeout;
  }
  return s;
}

class Supervisor {
 public:
  Supervisor(const SupervisorConfig& cfg, InitContext& ctx)
      : cfg_(cfg), ctx_(ctx), job_id_(cfg.job_id) {}
  int Run();

 private:
  Status Setup();
  Status StartProgram();
  StatusOr<pid_t> LaunchProgram();
  StatusOr<pid_t> RestoreProgram();
  void WaitForMainAgent();
  void Loop();

  void Reap();
  void HandleSignals();
  void HandleAgentInput();
  void HandleCoordinatorInput();
  void CoordinatorLost(const Status& why);
  void AbandonCheckpoint();
  void RemoveOwnTemporaries();
  void NotifyProcessesIfChanged();
  json HandleRequest(const json& req);
  json Quiesce(uint64_t generation);
  std::vector<pid_t> ProcessesWithoutAgent(const std::vector<pid_t>& agents) const;
  json Dump(uint64_t generation, const std::string& dir);
  void RemoveImages(uint64_t generation);
  void Send(const json& msg);

  void Info(const std::string& msg) const {
    if (cfg_.settings.verbose) fprintf(stderr, "stasis: %s\n", msg.c_str());
  }
  void Warn(const std::string& msg) const {
    if (!cfg_.settings.quiet) fprintf(stderr, "stasis: warning: %s\n", msg.c_str());
  }

  const SupervisorConfig& cfg_;
  InitContext& ctx_;
  image::CompressionSpec compression_;
  struct sigaction old_sigpipe_ {};
  ScopedFd sigfd_;
  std::unique_ptr<AgentServer> agents_;
  std::optional<CoordinatorLink> coord_;
  std::string program_;
  std::string job_id_;              // the coordinator's id once it replied to hello

  pid_t main_pid_ = 0;
  std::optional<int> main_code_;    // set when the main process has been reaped
  bool children_left_ = true;
  bool killed_by_us_ = false;
  bool ending_ = false;             // the job is over; only "exited" is left to send
  bool quiesced_ = false;
  std::vector<pid_t> quiesced_pids_;
  std::vector<pid_t> restored_pids_;  // restart: every restored process
  std::map<uint64_t, std::vector<std::string>> images_;  // generation -> written paths
  std::map<pid_t, std::string> notified_;                // last "processes" sent
  // A checkpoint in progress here (quiesced, or dumped and waiting for the
  // coordinator's verdict): its generation and directory, and when it is
  // given up if the coordinator says nothing (AbandonCheckpoint).
  std::optional<std::chrono::steady_clock::time_point> stall_deadline_;
  uint64_t ckpt_generation_ = 0;
  std::string ckpt_dir_;
  uint64_t abandoned_generation_ = 0;  // given up: a late "dump" for it is refused
  const double stall_timeout_ = CoordinatorStallTimeout();
  // --save-files patterns in effect (restart: the images' unless given).
  std::vector<std::string> save_files_ = cfg_.settings.save_files;
};

Status Supervisor::Setup() {
  ASSIGN_OR_RETURN(compression_, image::CompressionSpec::Parse(cfg_.settings.compression));
  // pid 1 gets no default action for signals from inside the namespace, but
  // a write to a closed socket must be an error, not a signal.
  struct sigaction ign {};
  ign.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ign, &old_sigpipe_);

  sigset_t set;
  sigemptyset(&set);
  for (int sig : kForwardedSignals) sigaddset(&set, sig);
  sigaddset(&set, SIGCHLD);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  sigfd_.reset(signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!sigfd_) return Status::Errno("signalfd");

  ASSIGN_OR_RETURN(agents_, AgentServer::Listen(cfg_.socket_path));

  ASSIGN_OR_RETURN(CoordinatorLink link,
                   CoordinatorLink::Connect(cfg_.settings.coord_host, cfg_.settings.coord_port,
                                            kCoordinatorTimeout));
  coord_.emplace(std::move(link));
  json hello = {{"type", "hello"},
                {"role", "supervisor"},
                {"version", coordinator::kProtocolVersion},
                {"job_id", cfg_.job_id},
                {"host", Hostname()},
                {"supervisor_pid", ctx_.outer_pid},
                {"program", program_},
                {"ckptdir", cfg_.settings.ckptdir},
                {"interval", cfg_.settings.interval},
                {"keep", cfg_.settings.keep},
                {"compression", compression_.ToString()},
                {"restarted", cfg_.restart},
                {"generation", cfg_.generation}};
  // Authenticated (coordinator/auth.h): a listener of another user on the
  // port is refused before it can drive the job.
  ASSIGN_OR_RETURN(json reply, coord_->Hello(hello, cfg_.settings.coord_port, kCoordinatorTimeout));
  if (!reply.value("ok", false)) {
    return Status::Error("the coordinator refused the job: " +
                         reply.value("error", std::string("no reason given")));
  }
  // A job joined by a second launch has the coordinator's id: image names
  // and manifests must agree so pruning finds every image of the job.
  if (reply.contains("job_id") && reply["job_id"].is_string() &&
      !reply["job_id"].get<std::string>().empty()) {
    job_id_ = reply["job_id"].get<std::string>();
  }
  return Status::Ok();
}

StatusOr<pid_t> Supervisor::LaunchProgram() {
  if (cfg_.argv.empty()) return Status::Error("no program to launch");
  std::vector<char*> argv;
  for (const auto& a : cfg_.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::string preload = cfg_.settings.agent_lib;
  if (const char* old = getenv("LD_PRELOAD"); old != nullptr && old[0] != '\0') {
    preload = preload.empty() ? old : preload + ":" + old;
  }
  // The job's processes are numbered from its own base, not 2 (pid_range.h);
  // without it (a kernel without CONFIG_CHECKPOINT_RESTORE) the job still runs.
  if (Status st = SetLastPid(JobPidBase(job_id_) - 1); !st.ok()) Warn(st.message());
  pid_t pid = fork();
  if (pid < 0) return Status::Errno("fork");
  if (pid == 0) {
    ResetSignalsForExec(ctx_);
    sigaction(SIGPIPE, &old_sigpipe_, nullptr);
    if (!preload.empty()) setenv("LD_PRELOAD", preload.c_str(), 1);
    setenv(agent::kSupervisorSocketEnv, cfg_.socket_path.c_str(), 1);
    setenv("STASIS_JOB_ID", job_id_.c_str(), 1);
    execvp(argv[0], argv.data());
    fprintf(stderr, "stasis launch: %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  return pid;
}

StatusOr<pid_t> Supervisor::RestoreProgram() {
  std::vector<std::unique_ptr<image::ImageReader>> readers;
  std::vector<restore::TreeProcess> procs;
  std::vector<const image::ProcessImage*> metas;
  std::vector<std::string> dirs;
  const bool inherit_save_files = save_files_.empty();
  for (const auto& path : cfg_.image_paths) {
    ASSIGN_OR_RETURN(auto reader, image::ImageReader::Open(path));
    RETURN_IF_ERROR(restore::PrecheckImage(*reader).With(path));
    metas.push_back(&reader->metadata());
    dirs.push_back(path.substr(0, path.rfind('/') == std::string::npos ? 0 : path.rfind('/')));
    for (const std::string& p : reader->metadata().save_files) {
      if (inherit_save_files && std::find(save_files_.begin(), save_files_.end(), p) == save_files_.end())
        save_files_.push_back(p);
    }
    procs.push_back(restore::TreeProcessOf(reader->metadata()));
    readers.push_back(std::move(reader));
  }
  auto plan = restore::PlanTree(procs);
  if (!plan.ok()) return plan.status().With("process tree");
  restore::RestoreOptions opts;
  opts.supervisor_socket = cfg_.socket_path;
  opts.force_vdso_proxy = EnvIsOne("STASIS_VDSO_PROXY");
  opts.pause_before_jump = EnvIsOne("STASIS_RESTART_PAUSE");
  std::vector<image::ImageReader*> ptrs;
  for (auto& r : readers) ptrs.push_back(r.get());
  // Files saved with --save-files, recreated once for the whole tree before
  // any process exists; `saved` holds deleted ones open until every process
  // has reopened them (saved_files.h).
  ASSIGN_OR_RETURN(state::SavedFilesRestore saved,
                   state::SavedFilesRestore::Prepare(metas, dirs, cfg_.settings.keep_current_files,
                                                     [this](const std::string& m) { Warn(m); }));
  if (saved.files() > 0) Info(fmt::format("restored {} saved file(s)", saved.files()));
  // Processes created without set_tid (the program's new children) get pids
  // above every restored id, in the job's range (pid_range.h).
  std::vector<pid_t> ids;
  for (const auto* m : metas) {
    ids.push_back(m->pid);
    for (const auto& t : m->threads) ids.push_back(t.tid);
    for (const auto& z : m->zombies) ids.push_back(z.pid);
  }
  if (Status st = SetLastPid(LastPidAfterRestore(JobPidBase(job_id_), ids)); !st.ok()) Warn(st.message());
  ASSIGN_OR_RETURN(std::vector<pid_t> roots, restore::RestoreTree(ptrs, *plan, opts));
  for (const auto& p : procs) restored_pids_.push_back(p.pid);
  // The main process (exit code, forwarded signals) is the lowest-pid root:
  // the launched program unless it had exited before the checkpoint.
  return roots.at(0);
}

Status Supervisor::StartProgram() {
  StatusOr<pid_t> pid = cfg_.restart ? RestoreProgram() : LaunchProgram();
  if (!pid.ok()) return pid.status();
  main_pid_ = *pid;
  return Status::Ok();
}

// Serves agents and reaps children until the main process's agent says
// hello, the main process exits, or kAgentHelloTimeout passes.  The
// coordinator is not served yet: it must not checkpoint a job whose main
// process has no agent connected.
void Supervisor::WaitForMainAgent() {
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<int>(kAgentHelloTimeout * 1000));
  // Launch: the main process.  Restart: every restored process still alive
  // (one may legitimately exit before its agent says hello).
  auto missing = [&] {
    std::set<pid_t> want = {main_pid_};
    for (pid_t p : restored_pids_) {
      if (p != main_pid_ && ProcessAlive(p)) want.insert(p);
    }
    for (const auto& a : agents_->Agents()) want.erase(a.pid);
    return want;
  };
  for (std::set<pid_t> left_pids = missing(); !left_pids.empty(); left_pids = missing()) {
    if (main_code_ || !children_left_) return;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      if (left_pids.count(main_pid_)) {
        Warn(fmt::format(
            "{} (pid {}) did not load the Stasis agent within {:.0f} s (a statically linked "
            "program ignores LD_PRELOAD); it keeps running but cannot be checkpointed",
            program_, main_pid_, kAgentHelloTimeout));
      } else {
        Warn(fmt::format("{} restored process(es) did not reconnect within {:.0f} s (first: pid {})",
                         left_pids.size(), kAgentHelloTimeout, *left_pids.begin()));
      }
      return;
    }
    std::vector<struct pollfd> fds = {{sigfd_.get(), POLLIN, 0}};
    for (int fd : agents_->PollFds()) fds.push_back({fd, POLLIN, 0});
    // Bounded: a restored child that exits is not our child, no signal says so.
    int r = poll(fds.data(), fds.size(), static_cast<int>(std::min<int64_t>(left.count(), 100)));
    if (r < 0 && errno != EINTR) return;
    if (r <= 0) continue;
    if (fds[0].revents) HandleSignals();
    bool agent_input = false;
    for (size_t i = 1; i < fds.size(); ++i) agent_input |= fds[i].revents != 0;
    if (agent_input) agents_->HandleInput();
  }
  Info(fmt::format("{} (pid {}) is {}{}", program_, main_pid_,
                   cfg_.restart ? "restarted" : "running",
                   restored_pids_.size() > 1
                       ? fmt::format(" with {} processes", restored_pids_.size())
                       : std::string()));
}

void Supervisor::Reap() {
  for (;;) {
    int status = 0;
    pid_t pid = waitpid(-1, &status, WNOHANG | __WALL);
    if (pid < 0) {
      if (errno == EINTR) continue;
      if (errno == ECHILD) children_left_ = false;
      return;
    }
    if (pid == 0) return;
    if (pid == main_pid_) {
      int code = ExitCodeFromWaitStatus(status);
      if (killed_by_us_ && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) code = 0;
      main_code_ = code;
      Info(fmt::format("{} (pid {}) exited with status {}", program_, pid, code));
    }
  }
}

void Supervisor::HandleSignals() {
  struct signalfd_siginfo si;
  while (read(sigfd_.get(), &si, sizeof(si)) == static_cast<ssize_t>(sizeof(si))) {
    int sig = static_cast<int>(si.ssi_signo);
    if (sig == SIGCHLD) continue;  // Reap() below collects every child
    // Terminal-generated signals reached the job's processes directly.
    if (si.ssi_code == SI_KERNEL) continue;
    if (!main_code_) {
      kill(main_pid_, sig);
    } else {
      kill(-1, sig);  // main is gone: pass it to the orphans that keep the job alive
    }
  }
  Reap();
}

void Supervisor::HandleAgentInput() {
  agents_->HandleInput();
  NotifyProcessesIfChanged();
}

void Supervisor::NotifyProcessesIfChanged() {
  std::map<pid_t, std::string> now;
  for (const auto& a : agents_->Agents()) now[a.pid] = a.program;
  if (now == notified_) return;
  notified_ = now;
  json list = json::array();
  for (const auto& [pid, program] : now) list.push_back({{"pid", pid}, {"program", program}});
  Send({{"type", "processes"}, {"processes", list}});
}

void Supervisor::Send(const json& msg) {
  if (!coord_ || !coord_->connected()) return;
  Status st = coord_->Send(msg);
  if (!st.ok()) CoordinatorLost(st);
}

// The coordinator is gone.  Images written for a checkpoint in progress
// stay: the coordinator may have made its manifest durable before it died
// (a supervisor cannot know), and only a newer durable manifest may retire
// a checkpoint.  If the manifest was never written they are orphans, which
// the next prune or restart of the directory removes
// (image::PruneCheckpoints, image::RemoveLeftovers).  Only files that
// cannot be part of a checkpoint -- our "*.tmp" -- are removed now.
void Supervisor::CoordinatorLost(const Status& why) {
  if (!coord_) return;
  coord_.reset();
  RemoveOwnTemporaries();
  if (quiesced_) {
    agents_->ResumeAll();
    quiesced_ = false;
  }
  stall_deadline_.reset();
  images_.clear();
  // After `checkpoint --kill` the coordinator may hang up first: expected.
  if (killed_by_us_ || ending_) return;
  Warn(fmt::format("lost the coordinator ({}); the job keeps running but will not be "
                   "checkpointed",
                   why.message()));
}

// The coordinator stopped talking in the middle of a checkpoint (stopped
// with SIGSTOP, hung, or its host is unreachable): the job must not stay
// frozen.  Resume it and give the checkpoint up here; as in
// CoordinatorLost, images already written stay (the manifest may exist).
// The connection is kept: a coordinator that wakes up finds its late
// "dump" refused (the checkpoint fails there) and takes the next
// checkpoint normally; a late "resume" or "kill" is obeyed.
void Supervisor::AbandonCheckpoint() {
  RemoveOwnTemporaries();
  stall_deadline_.reset();
  Warn(fmt::format("checkpoint {}: no word from the coordinator for {:.0f} s (STASIS_COORD_TIMEOUT); "
                   "giving the checkpoint up and resuming the job",
                   ckpt_generation_, stall_timeout_));
  abandoned_generation_ = ckpt_generation_;
  if (quiesced_) agents_->ResumeAll();
  quiesced_ = false;
  images_.clear();
}

// "<image>.tmp" of every process of the checkpoint in progress: the names
// DumpProcess writes to before the rename (normally already gone: it
// removes its temp file on failure, and a dump is never interrupted by us).
void Supervisor::RemoveOwnTemporaries() {
  if (ckpt_dir_.empty() || !stall_deadline_) return;  // no checkpoint in progress
  for (const auto& a : agents_->Agents()) {
    const std::string p = fmt::format("{}/{}.tmp", ckpt_dir_,
                                      image::ImageFileName(a.program, job_id_, a.pid, ckpt_generation_));
    unlink(p.c_str());
  }
}

void Supervisor::HandleCoordinatorInput() {
  auto msgs = coord_->ReadAvailable();
  if (!msgs.ok()) {
    CoordinatorLost(msgs.status());
    return;
  }
  for (const auto& m : *msgs) {
    json reply = HandleRequest(m);
    reply["type"] = m.value("type", std::string());
    Send(reply);
  }
  if (coord_ && !coord_->connected()) {
    CoordinatorLost(Status::Error("the coordinator closed the connection"));
  }
}

void Supervisor::RemoveImages(uint64_t generation) {
  auto it = images_.find(generation);
  if (it == images_.end()) return;
  for (const auto& p : it->second) unlink(p.c_str());
  images_.erase(it);
}

json Supervisor::Dump(uint64_t generation, const std::string& dir) {
  if (!quiesced_) return {{"ok", false}, {"error", "dump requested but the job is not quiesced"}};
  {
    std::string pids;
    for (pid_t p : quiesced_pids_) pids += fmt::format("{}\n", p);
    MaybePause("quiesced", generation, dir, pids);
  }
  std::map<pid_t, AgentInfo> by_pid;
  for (const auto& a : agents_->Agents()) by_pid[a.pid] = a;
  json processes = json::array();
  // Everything in flight on TCP connections must sit in receive queues
  // before the first process is captured.
  if (Status st = state::FlushSendQueues(quiesced_pids_); !st.ok())
    return {{"ok", false}, {"error", st.message()}};
  std::vector<std::pair<int32_t, image::FileDescriptor>> job_sockets;
  std::vector<std::string> losses;  // what a restart will not restore
  state::ShmemPages shmem_done;  // each shared memory page goes into one image
  // --save-files and written files: one per checkpoint, files copied once.
  std::optional<state::FileSaver> saver;
  saver.emplace(dir, job_id_, generation, save_files_, cfg_.settings.written_files_limit);
  for (pid_t pid : quiesced_pids_) {
    auto it = by_pid.find(pid);
    if (it == by_pid.end()) {
      RemoveImages(generation);
      return {{"ok", false},
              {"error", fmt::format("process {} exited during the checkpoint", pid)}};
    }
    const AgentInfo& a = it->second;
    std::string name = image::ImageFileName(a.program, job_id_, pid, generation);
    checkpoint::DumpRequest req;
    req.pid = pid;
    req.control_block = a.control_block;
    req.path = dir + "/" + name;
    req.compression = compression_;
    req.generation = generation;
    req.job_id = job_id_;
    req.worker_threads = 2;
    req.shmem_done = &shmem_done;
    req.saver = saver ? &*saver : nullptr;
    auto res = checkpoint::DumpProcess(req);
    if (saver) {  // copies belong to this generation: removed with its images on failure
      for (std::string& p : saver->TakeWritten()) images_[generation].push_back(std::move(p));
    }
    if (!res.ok()) {
      RemoveImages(generation);
      // A process killed while quiesced is a zombie: /proc/<pid>/mem then
      // fails with ESRCH or EACCES, which alone would not say what happened.
      const std::string why = ProcessAlive(pid)
                                  ? res.status().message()
                                  : fmt::format("it exited or was killed during the checkpoint ({})",
                                                res.status().message());
      return {{"ok", false}, {"error", fmt::format("{} (pid {}): {}", a.program, pid, why)}};
    }
    images_[generation].push_back(req.path);
    for (image::FileDescriptor& f : res->sockets) job_sockets.emplace_back(pid, std::move(f));
    for (const std::string& w : res->warnings) losses.push_back(fmt::format("{} (pid {}): {}", a.program, pid, w));
    processes.push_back({{"pid", pid},
                         {"ppid", res->ppid != 0 ? res->ppid : a.ppid},
                         {"program", res->program.empty() ? a.program : res->program},
                         {"image", name},
                         {"image_size", res->image_size}});
    Info(fmt::format("wrote {} ({} bytes, {:.2f} s)", req.path, res->image_size, res->seconds));
  }
  if (saver && saver->files() > 0)
    Info(fmt::format("saved {} file(s), {} bytes", saver->files(), saver->bytes()));
  // Written files over the limit and file locks (state/written_files.h) are
  // not brought back as they were either.
  for (const std::string& w : saver->TakeWarnings()) losses.push_back(w);
  for (const std::string& w : state::OutsidePeerWarnings(job_sockets)) losses.push_back(w);
  if (cfg_.settings.strict && !losses.empty()) {
    RemoveImages(generation);
    std::string text;
    for (const auto& w : losses) text += (text.empty() ? "" : "; ") + w;
    return {{"ok", false}, {"error", "--strict: a restart would not restore everything: " + text}};
  }
  for (const std::string& w : losses) Warn(fmt::format("checkpoint {}: restart will not restore: {}", generation, w));
  return {{"ok", true}, {"processes", processes}, {"warnings", losses}};
}

// Live processes of the job (its /proc: our mount namespace's) that are
// not in `agents` and not zombies: a child between fork and its agent's
// hello, a process in execve, or a program without the agent.
std::vector<pid_t> Supervisor::ProcessesWithoutAgent(const std::vector<pid_t>& agents) const {
  std::vector<pid_t> out;
  DIR* d = opendir("/proc");
  if (d == nullptr) return out;
  while (struct dirent* e = readdir(d)) {
    char* end = nullptr;
    long pid = strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || pid <= 1 || pid == getpid()) continue;
    if (std::find(agents.begin(), agents.end(), pid) != agents.end()) continue;
    if (ProcessAlive(static_cast<pid_t>(pid))) out.push_back(static_cast<pid_t>(pid));
  }
  closedir(d);
  return out;
}

// Quiesces every agent.  A process tree is consistent only if no process
// of the job is left running: one that forked or exec'd a moment ago has
// no agent connected yet (it says hello within milliseconds), and one that
// exec'd during the quiesce disconnects.  Such attempts are undone
// (resume) and retried after waiting for the missing agents; a process
// that never gets an agent (statically linked) fails the checkpoint.
json Supervisor::Quiesce(uint64_t generation) {
  // Fail at once rather than after kQuiesceTimeout (or, if it stopped
  // before its agent connected, leaving it out as agentless).
  if (std::vector<std::string> stopped = StoppedProcesses(); !stopped.empty()) {
    std::string names;
    for (const auto& s : stopped) names += (names.empty() ? "" : ", ") + s;
    return {{"ok", false},
            {"error", fmt::format("{} {} stopped (^Z, SIGSTOP, or SIGTTIN/SIGTTOU: a background job "
                                  "that used the terminal); stopped processes cannot be "
                                  "checkpointed yet: continue them (fg, bg, kill -CONT) first",
                                  names, stopped.size() == 1 ? "is" : "are")}};
  }
  if (std::vector<std::string> problems = QuiescePreflight(getpid(), /*vfork_grace=*/1.0); !problems.empty()) {
    std::string text;
    for (const auto& p : problems) text += (text.empty() ? "" : "; ") + p;
    return {{"ok", false}, {"error", text}};
  }
  constexpr int kAttempts = 5;
  constexpr double kAgentWait = 0.5;  // seconds per attempt, for all missing agents
  // An agent that went away (exec, exit) fails at once; a thread that does
  // not park fails after the agent's own timeout, and is not retried.
  constexpr double kQuickFailure = 1.0;  // seconds
  for (int attempt = 1;; ++attempt) {
    std::vector<pid_t> pids;
    for (const auto& a : agents_->Agents()) pids.push_back(a.pid);
    if (pids.empty()) {
      return {{"ok", false},
              {"error", fmt::format("no process of the job can be checkpointed: {} has no "
                                    "Stasis agent (statically linked, or LD_PRELOAD removed)",
                                    program_)}};
    }
    const auto t0 = std::chrono::steady_clock::now();
    Status st = agents_->QuiesceAll(pids, generation, kQuiesceTimeout);
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::vector<pid_t> missing;
    if (st.ok()) {
      missing = ProcessesWithoutAgent(pids);
      if (missing.empty()) {
        quiesced_ = true;
        quiesced_pids_ = pids;
        return {{"ok", true}};
      }
    } else {
      // A quick failure is usually an agent that went away (exec, exit)
      // while the request was on its way: retry.  A timeout is not retried.
      if (took > kQuickFailure || attempt == kAttempts) return {{"ok", false}, {"error", st.message()}};
      agents_->HandleInput();  // forget disconnected agents, accept new ones
      std::vector<pid_t> now;
      for (const auto& a : agents_->Agents()) now.push_back(a.pid);
      missing = ProcessesWithoutAgent(now);
    }
    if (attempt == kAttempts) {
      // Never a checkpoint without one of the job's processes: its restart
      // would silently lack it.
      if (st.ok()) agents_->ResumeAll();
      std::string names;
      for (pid_t p : missing) names += (names.empty() ? "" : ", ") + DescribeProcess(p);
      return {{"ok", false},
              {"error", fmt::format("{} of the job {} no Stasis agent (a statically linked program "
                                    "ignores LD_PRELOAD); the job cannot be checkpointed while it runs",
                                    names, missing.size() == 1 ? "has" : "have")}};
    }
    if (st.ok()) agents_->ResumeAll();
    Info(fmt::format("quiesce attempt {}: {} process(es) without an agent yet (first: pid {})",
                     attempt, missing.size(), missing.empty() ? 0 : missing[0]));
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::milliseconds(static_cast<int>(kAgentWait * 1000));
    for (pid_t p : missing) {
      double left = std::chrono::duration<double>(deadline - std::chrono::steady_clock::now()).count();
      if (left <= 0) break;
      agents_->WaitForAgent(p, left);
    }
    NotifyProcessesIfChanged();
  }
}

json Supervisor::HandleRequest(const json& req) {
  const std::string type = req.value("type", std::string());
  const uint64_t generation = req.value("generation", uint64_t{0});
  // Between our reply to quiesce or dump and the coordinator's next word,
  // the job is frozen: bounded by stall_deadline_ (AbandonCheckpoint).
  auto waiting = [&](json reply, const std::string& dir) {
    if (reply.value("ok", false) || quiesced_) {  // a failed dump leaves the job parked too
      ckpt_generation_ = generation;
      ckpt_dir_ = dir;
      stall_deadline_ = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(stall_timeout_ * 1000));
    } else {
      stall_deadline_.reset();
    }
    return reply;
  };
  if (type == "quiesce") return waiting(Quiesce(generation), req.value("dir", cfg_.settings.ckptdir));
  if (type == "dump") {
    if (generation != 0 && generation == abandoned_generation_) {
      return {{"ok", false},
              {"error", fmt::format("the supervisor gave checkpoint {} up and resumed the job: no word from "
                                    "the coordinator for {:.0f} s (STASIS_COORD_TIMEOUT)",
                                    generation, stall_timeout_)}};
    }
    const std::string dir = req.value("dir", cfg_.settings.ckptdir);
    return waiting(Dump(generation, dir), dir);
  }
  stall_deadline_.reset();
  if (type == "resume") {
    if (quiesced_) agents_->ResumeAll();
    quiesced_ = false;
    images_.clear();  // committed: the manifest refers to them now
    return {{"ok", true}};
  }
  if (type == "abort") {
    // Only the coordinator knows that no manifest lists them.
    RemoveImages(generation);
    if (quiesced_) agents_->ResumeAll();
    quiesced_ = false;
    return {{"ok", true}};
  }
  if (type == "kill") {
    killed_by_us_ = true;
    kill(-1, SIGKILL);  // every process of the namespace but pid 1
    quiesced_ = false;
    images_.clear();
    return {{"ok", true}};
  }
  return {{"ok", false}, {"error", "unknown request \"" + type + "\""}};
}

void Supervisor::Loop() {
  while (children_left_) {
    // A process got a deferred signal (agent kCheckpointRequest): the
    // coordinator checkpoints and ends the job, merging duplicates.
    for (const auto& r : agents_->TakeCheckpointRequests()) {
      Info(fmt::format("{} (pid {}) received SIG{}: asking for a checkpoint", r.program, r.pid, r.signal));
      Send({{"type", "checkpoint_request"}, {"kill", true}, {"pid", r.pid}, {"program", r.program},
            {"signal", r.signal}});
    }
    std::vector<struct pollfd> fds = {{sigfd_.get(), POLLIN, 0}};
    int coord_index = -1;
    if (coord_ && coord_->connected()) {
      coord_index = static_cast<int>(fds.size());
      fds.push_back({coord_->fd(), POLLIN, 0});
    }
    const size_t agent_first = fds.size();
    for (int fd : agents_->PollFds()) fds.push_back({fd, POLLIN, 0});
    int timeout_ms = -1;
    if (stall_deadline_) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*stall_deadline_ -
                                                                         std::chrono::steady_clock::now());
      timeout_ms = static_cast<int>(std::clamp<int64_t>(left.count() + 1, 0, 1 << 30));
    }
    int r = poll(fds.data(), fds.size(), timeout_ms);
    if (stall_deadline_ && std::chrono::steady_clock::now() >= *stall_deadline_) AbandonCheckpoint();
    if (r < 0) {
      if (errno == EINTR) continue;
      Warn(fmt::format("poll: {}", strerror(errno)));
      sleep(1);  // keep reaping; pid 1 must not exit while the job runs
      Reap();
      continue;
    }
    if (fds[0].revents) HandleSignals();
    bool agent_input = false;
    for (size_t i = agent_first; i < fds.size(); ++i) agent_input |= fds[i].revents != 0;
    if (agent_input) HandleAgentInput();
    if (coord_index >= 0 && fds[coord_index].revents && coord_) HandleCoordinatorInput();
  }
}

int Supervisor::Run() {
  program_ = !cfg_.program.empty() ? cfg_.program
                                    : Basename(cfg_.argv.empty() ? "" : cfg_.argv[0]);
  Status st = Setup();
  if (st.ok()) st = StartProgram();
  if (!st.ok()) {
    ctx_.reporter->Failed(st);
    return 1;
  }
  ctx_.reporter->Started();
  WaitForMainAgent();
  NotifyProcessesIfChanged();
  Loop();
  const int code = main_code_.value_or(0);
  ending_ = true;
  Send({{"type", "exited"}, {"status", code}});
  coord_.reset();
  return code;
}

}  // namespace

int RunSupervisor(const SupervisorConfig& config, InitContext& ctx) {
  Supervisor supervisor(config, ctx);
  return supervisor.Run();
}

}  // namespace stasis::job
