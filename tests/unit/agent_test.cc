// End-to-end tests of the agent (libstasis_agent.so) and AgentServer: a real
// multi-threaded workload (tests/workloads/agent_selftest.c) is started with
// the agent preloaded, quiesced, inspected from outside through
// /proc/<pid>/mem, and resumed.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "agent/agent_protocol.h"
#include "agent/control_block.h"
#include "job/agent_server.h"

namespace stasis {
namespace {

using agent::ControlBlock;
using job::AgentServer;

std::string BuildDir() {
  if (const char* d = getenv("STASIS_BUILD_DIR")) return d;
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return ".";
  std::string exe(buf, n);
  std::string dir = exe.substr(0, exe.rfind('/'));  // <build>/tests
  return dir.substr(0, dir.rfind('/'));
}

void SleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

struct Child {
  pid_t pid = -1;
  int out = -1;  // the workload's stdout
  std::string buffered;

  ~Child() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    if (out >= 0) close(out);
  }

  // Next line of output, or "" after `timeout_s`/EOF.
  std::string ReadLine(double timeout_s = 10) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    for (;;) {
      size_t nl = buffered.find('\n');
      if (nl != std::string::npos) {
        std::string line = buffered.substr(0, nl);
        buffered.erase(0, nl + 1);
        return line;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return "";
      pollfd p{out, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) return "";
      char buf[512];
      ssize_t n = read(out, buf, sizeof(buf));
      if (n <= 0) return "";
      buffered.append(buf, n);
    }
  }

  // Waits for exit; returns the exit status (or -1).
  int Wait(double timeout_s = 20) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      pid_t r = waitpid(pid, &status, WNOHANG);
      if (r == pid) {
        pid = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      SleepMs(20);
    }
    return -1;
  }
};

std::unique_ptr<Child> Spawn(const std::vector<std::string>& args, const std::string& socket,
                             const std::vector<std::string>& extra_env = {}) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return nullptr;
  std::string exe = BuildDir() + "/workloads/agent_selftest";
  std::string preload = "LD_PRELOAD=" + BuildDir() + "/lib/libstasis_agent.so";
  std::vector<std::string> env = {preload};
  if (!socket.empty()) env.push_back(std::string(agent::kSupervisorSocketEnv) + "=" + socket);
  for (const auto& e : extra_env) env.push_back(e);
  if (const char* path = getenv("PATH")) env.push_back(std::string("PATH=") + path);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(p[1], 1);
    std::vector<char*> argv{const_cast<char*>(exe.c_str())};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    execve(exe.c_str(), argv.data(), envp.data());
    _exit(127);
  }
  close(p[1]);
  auto c = std::make_unique<Child>();
  c->pid = pid;
  c->out = p[0];
  return c;
}

bool ReadMem(pid_t pid, uint64_t addr, void* buf, size_t len) {
  int fd = open(("/proc/" + std::to_string(pid) + "/mem").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t n = pread(fd, buf, len, static_cast<off_t>(addr));
  close(fd);
  return n == static_cast<ssize_t>(len);
}

std::unique_ptr<ControlBlock> ReadControlBlock(pid_t pid, uint64_t addr) {
  auto cb = std::make_unique<ControlBlock>();
  if (!ReadMem(pid, addr, cb.get(), sizeof(ControlBlock))) return nullptr;
  return cb;
}

struct Range { uint64_t lo = 0, hi = 0; };

Range MainStack(pid_t pid) {
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  std::string line;
  while (std::getline(maps, line)) {
    if (line.find("[stack]") == std::string::npos) continue;
    Range r;
    r.lo = std::stoull(line.substr(0, line.find('-')), nullptr, 16);
    r.hi = std::stoull(line.substr(line.find('-') + 1), nullptr, 16);
    return r;
  }
  return {};
}

std::set<int> Tasks(pid_t pid) {
  std::set<int> tids;
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  std::unique_ptr<FILE, int (*)(FILE*)> ls(popen(("ls " + dir).c_str(), "r"), pclose);
  int tid;
  while (ls && fscanf(ls.get(), "%d", &tid) == 1) tids.insert(tid);
  return tids;
}

std::string Comm(pid_t pid, int tid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/comm");
  std::string s;
  std::getline(f, s);
  return s;
}

// Reads the workload's "addr ..." line and 4 "stack ..." lines.
struct Startup {
  uint64_t counters = 0;
  std::map<int, Range> stacks;  // tid -> worker stack
};
bool ReadStartup(Child& c, Startup* s) {
  while (s->counters == 0 || s->stacks.size() < 4) {
    std::string line = c.ReadLine();
    if (line.empty()) return false;
    std::istringstream in(line);
    std::string word;
    in >> word;
    if (word == "addr") {
      in >> std::hex >> s->counters;
    } else if (word == "stack") {
      int tid;
      Range r;
      in >> std::dec >> tid >> std::hex >> r.lo >> r.hi;
      s->stacks[tid] = r;
    }
  }
  return true;
}

void ReadCounters(pid_t pid, uint64_t addr, uint64_t out[4]) {
  ASSERT_TRUE(ReadMem(pid, addr, out, 4 * sizeof(uint64_t)));
}

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/stasis-agent-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto s = AgentServer::Listen(dir_ + "/agent.sock");
    ASSERT_TRUE(s.ok()) << s.status().message();
    server_ = std::move(s).value();
    ASSERT_EQ(access((BuildDir() + "/lib/libstasis_agent.so").c_str(), R_OK), 0)
        << "agent library not found under " << BuildDir();
  }
  void TearDown() override {
    server_.reset();
    rmdir(dir_.c_str());
  }
  uint64_t ControlBlockAddr(pid_t pid) {
    for (const auto& a : server_->Agents())
      if (a.pid == pid) return a.control_block;
    return 0;
  }

  std::string dir_;
  std::unique_ptr<AgentServer> server_;
};

TEST_F(AgentTest, QuiescesEveryThreadAndResumes) {
  auto c = Spawn({"count", "30"}, server_->socket_path());
  ASSERT_TRUE(c);
  ASSERT_TRUE(server_->WaitForAgent(c->pid, 10));
  Startup s;
  ASSERT_TRUE(ReadStartup(*c, &s));
  SleepMs(200);
  uint64_t cb_addr = ControlBlockAddr(c->pid);
  ASSERT_NE(cb_addr, 0u);

  Status st = server_->QuiesceAll({c->pid}, 7, 10);
  ASSERT_TRUE(st.ok()) << st.message();

  auto cb = ReadControlBlock(c->pid, cb_addr);
  ASSERT_TRUE(cb);
  EXPECT_EQ(cb->magic, agent::kControlBlockMagic);
  EXPECT_EQ(cb->version, agent::kControlBlockVersion);
  EXPECT_EQ(cb->generation, 7u);
  // main + 4 workers + the agent thread (captured last).
  ASSERT_EQ(cb->n_threads, 6);
  EXPECT_EQ(cb->threads[0].tid, c->pid);
  EXPECT_EQ(Comm(c->pid, cb->threads[5].tid), "stasis-agent");
  EXPECT_NE(cb->sigactions[agent::kDefaultCheckpointSignal - 1].handler, 0u);
  EXPECT_NE(cb->brk, 0u);
  EXPECT_GE(cb->socket_fd, 800);

  std::set<int> recorded;
  Range main_stack = MainStack(c->pid);
  for (int i = 0; i < cb->n_threads; ++i) {
    const auto& t = cb->threads[i];
    SCOPED_TRACE("tid " + std::to_string(t.tid));
    recorded.insert(t.tid);
    EXPECT_NE(t.fs_base, 0u);
    EXPECT_NE(t.clear_child_tid, 0u);
    EXPECT_NE(t.robust_list, 0u);
    // glibc 2.36 registers a 32-byte rseq area inside the TCB.
    EXPECT_EQ(t.rseq_len, 32u);
    EXPECT_EQ(t.rseq_sig, 0x53053053u);
    EXPECT_NE(t.rseq_addr, 0u);
    // sigframe_sp is the ucontext_t in the kernel's frame, just below the
    // interrupted stack pointer, on the thread's own stack.
    ucontext_t uc;
    ASSERT_TRUE(ReadMem(c->pid, t.sigframe_sp, &uc, sizeof(uc)));
    uint64_t rsp = static_cast<uint64_t>(uc.uc_mcontext.gregs[REG_RSP]);
    EXPECT_GT(rsp, t.sigframe_sp);
    EXPECT_LT(rsp - t.sigframe_sp, 32u * 1024);
    if (t.tid == c->pid) {
      EXPECT_GE(t.sigframe_sp, main_stack.lo);
      EXPECT_LT(t.sigframe_sp, main_stack.hi);
    } else if (s.stacks.count(t.tid)) {
      EXPECT_GE(t.sigframe_sp, s.stacks[t.tid].lo);
      EXPECT_LT(t.sigframe_sp, s.stacks[t.tid].hi);
    }
  }
  EXPECT_EQ(recorded, Tasks(c->pid));
  for (const auto& [tid, range] : s.stacks) EXPECT_TRUE(recorded.count(tid)) << tid;

  // Nothing runs while quiesced.
  uint64_t a[4], b[4];
  ReadCounters(c->pid, s.counters, a);
  SleepMs(300);
  ReadCounters(c->pid, s.counters, b);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(a[i], b[i]) << "worker " << i << " ran while quiesced";

  server_->ResumeAll();
  SleepMs(300);
  ReadCounters(c->pid, s.counters, b);
  for (int i = 0; i < 4; ++i) EXPECT_GT(b[i], a[i]) << "worker " << i << " did not resume";

  // A second checkpoint of the same process works too.
  st = server_->QuiesceAll({c->pid}, 8, 10);
  ASSERT_TRUE(st.ok()) << st.message();
  cb = ReadControlBlock(c->pid, cb_addr);
  ASSERT_TRUE(cb);
  EXPECT_EQ(cb->generation, 8u);
  EXPECT_EQ(cb->n_threads, 6);
  server_->ResumeAll();

  EXPECT_EQ(c->ReadLine(20), "done ok");
  EXPECT_EQ(c->Wait(), 0);
}

TEST_F(AgentTest, QuiescesProgramThatBlocksAllSignals) {
  auto c = Spawn({"blockall", "20"}, server_->socket_path());
  ASSERT_TRUE(c);
  ASSERT_TRUE(server_->WaitForAgent(c->pid, 10));
  Startup s;
  ASSERT_TRUE(ReadStartup(*c, &s));
  Status st = server_->QuiesceAll({c->pid}, 1, 10);
  ASSERT_TRUE(st.ok()) << st.message();
  auto cb = ReadControlBlock(c->pid, ControlBlockAddr(c->pid));
  ASSERT_TRUE(cb);
  EXPECT_EQ(cb->n_threads, 6);
  // The program's mask (all blocked but the checkpoint signal) is recorded.
  uint64_t ckpt_bit = 1ull << (agent::kDefaultCheckpointSignal - 1);
  EXPECT_EQ(cb->threads[0].sigmask & ckpt_bit, 0u);
  EXPECT_NE(cb->threads[0].sigmask & (1ull << (SIGINT - 1)), 0u);
  server_->ResumeAll();
  EXPECT_EQ(c->ReadLine(20), "done ok");
  EXPECT_EQ(c->Wait(), 0);
}

TEST_F(AgentTest, PendingSignalsAreRecordedAndRequeued) {
  auto c = Spawn({"pending", "15"}, server_->socket_path());
  ASSERT_TRUE(c);
  ASSERT_TRUE(server_->WaitForAgent(c->pid, 10));
  Startup s;
  ASSERT_TRUE(ReadStartup(*c, &s));
  Status st = server_->QuiesceAll({c->pid}, 1, 10);
  ASSERT_TRUE(st.ok()) << st.message();
  auto cb = ReadControlBlock(c->pid, ControlBlockAddr(c->pid));
  ASSERT_TRUE(cb);
  const auto& leader = cb->threads[0];
  ASSERT_EQ(leader.tid, c->pid);
  ASSERT_EQ(leader.n_pending, 3);
  EXPECT_EQ(leader.pending[0].signo, SIGUSR1);
  EXPECT_EQ(leader.pending[1].signo, SIGRTMIN + 2);
  EXPECT_EQ(leader.pending[2].signo, SIGRTMIN + 2);
  siginfo_t si;
  std::memcpy(&si, leader.pending[1].siginfo, sizeof(si));
  EXPECT_EQ(si.si_code, SI_QUEUE);
  EXPECT_EQ(si.si_value.sival_int, 42);
  ASSERT_EQ(cb->n_shared_pending, 1);
  EXPECT_EQ(cb->shared_pending[0].signo, SIGUSR2);
  for (int i = 1; i < cb->n_threads; ++i) EXPECT_EQ(cb->threads[i].n_pending, 0);
  server_->ResumeAll();
  EXPECT_EQ(c->ReadLine(20), "pending ok");
  EXPECT_EQ(c->ReadLine(5), "done ok");
  EXPECT_EQ(c->Wait(), 0);
}

TEST_F(AgentTest, FailedQuiesceIsReportedAndProgramKeepsRunning) {
  auto c = Spawn({"rawblock", "40"}, server_->socket_path(), {"STASIS_QUIESCE_TIMEOUT=1"});
  ASSERT_TRUE(c);
  ASSERT_TRUE(server_->WaitForAgent(c->pid, 10));
  Startup s;
  ASSERT_TRUE(ReadStartup(*c, &s));
  auto t0 = std::chrono::steady_clock::now();
  Status st = server_->QuiesceAll({c->pid}, 1, 10);
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_FALSE(st.ok());
  EXPECT_LT(took, 5.0);
  EXPECT_NE(st.message().find("pid " + std::to_string(c->pid)), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("tid "), std::string::npos) << st.message();

  uint64_t a[4], b[4];
  ReadCounters(c->pid, s.counters, a);
  SleepMs(300);
  ReadCounters(c->pid, s.counters, b);
  for (int i = 0; i < 4; ++i) EXPECT_GT(b[i], a[i]) << "worker " << i << " stayed stopped";
  EXPECT_EQ(c->ReadLine(20), "done ok");
  EXPECT_EQ(c->Wait(), 0);
}

TEST_F(AgentTest, ForkedChildGetsItsOwnAgent) {
  auto c = Spawn({"fork", "25"}, server_->socket_path());
  ASSERT_TRUE(c);
  ASSERT_TRUE(server_->WaitForAgent(c->pid, 10));
  pid_t child = 0;
  for (int i = 0; i < 10 && child == 0; ++i) {
    std::string line = c->ReadLine();
    ASSERT_FALSE(line.empty());
    int pid;
    unsigned long addr;
    if (sscanf(line.c_str(), "addr %lx pid %d", &addr, &pid) == 2 && pid != c->pid) child = pid;
  }
  ASSERT_NE(child, 0);
  ASSERT_TRUE(server_->WaitForAgent(child, 10));
  SleepMs(200);
  Status st = server_->QuiesceAll({c->pid, child}, 3, 10);
  ASSERT_TRUE(st.ok()) << st.message();
  for (pid_t p : {c->pid, child}) {
    auto cb = ReadControlBlock(p, ControlBlockAddr(p));
    ASSERT_TRUE(cb);
    EXPECT_EQ(cb->n_threads, 6) << "pid " << p;
    EXPECT_EQ(cb->threads[0].tid, p);
  }
  server_->ResumeAll();
  EXPECT_EQ(c->Wait(), 0);
}

// Socket descriptors of `pid` (links "socket:[...]" in /proc/<pid>/fd).
int CountSockets(pid_t pid) {
  std::string dir = "/proc/" + std::to_string(pid) + "/fd/";
  std::unique_ptr<FILE, int (*)(FILE*)> ls(popen(("ls " + dir).c_str(), "r"), pclose);
  int n = 0, fd;
  while (ls && fscanf(ls.get(), "%d", &fd) == 1) {
    char buf[256];
    ssize_t k = readlink((dir + std::to_string(fd)).c_str(), buf, sizeof(buf) - 1);
    if (k > 0 && std::string(buf, k).rfind("socket:", 0) == 0) ++n;
  }
  return n;
}

// The forked child closes the connection it inherited and has only its own
// (the checkpoint of the child would otherwise hold the parent's socket).
TEST_F(AgentTest, ForkedChildKeepsOnlyItsOwnAgentSocket) {
  auto c = Spawn({"fork", "25"}, server_->socket_path());
  ASSERT_TRUE(c);
  ASSERT_TRUE(server_->WaitForAgent(c->pid, 10));
  pid_t child = 0;
  for (int i = 0; i < 10 && child == 0; ++i) {
    std::string line = c->ReadLine();
    ASSERT_FALSE(line.empty());
    int pid;
    unsigned long addr;
    if (sscanf(line.c_str(), "addr %lx pid %d", &addr, &pid) == 2 && pid != c->pid) child = pid;
  }
  ASSERT_NE(child, 0);
  ASSERT_TRUE(server_->WaitForAgent(child, 10));
  EXPECT_EQ(CountSockets(c->pid), 1);
  EXPECT_EQ(CountSockets(child), 1);
  // And the one it has is the one it records for the checkpoint.
  Status st = server_->QuiesceAll({child}, 1, 10);
  ASSERT_TRUE(st.ok()) << st.message();
  auto cb = ReadControlBlock(child, ControlBlockAddr(child));
  ASSERT_TRUE(cb);
  char buf[64];
  std::string link = "/proc/" + std::to_string(child) + "/fd/" + std::to_string(cb->socket_fd);
  ssize_t k = readlink(link.c_str(), buf, sizeof(buf) - 1);
  ASSERT_GT(k, 0) << link;
  EXPECT_EQ(std::string(buf, 7), "socket:");
  server_->ResumeAll();
  EXPECT_EQ(c->Wait(), 0);
}

// Polls the server until a checkpoint request arrives (or timeout).
std::vector<job::AgentCheckpointRequest> WaitForRequests(AgentServer& server, double timeout_s) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  std::vector<job::AgentCheckpointRequest> got;
  while (got.empty() && std::chrono::steady_clock::now() < deadline) {
    std::vector<pollfd> p;
    for (int fd : server.PollFds()) p.push_back({fd, POLLIN, 0});
    poll(p.data(), p.size(), 50);
    server.HandleInput();
    got = server.TakeCheckpointRequests();
  }
  return got;
}

bool Alive(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  std::getline(f, stat);
  size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z';
}

// STASIS_DEFER_SIGNALS: SIGUSR1 (default action: terminate) does not kill
// the program; the agent asks for a checkpoint once, and the program runs on.
TEST_F(AgentTest, DeferredSignalAsksForACheckpointAndKeepsTheProgram) {
  auto c = Spawn({"count", "25"}, server_->socket_path(), {"STASIS_DEFER_SIGNALS=USR1,15"});
  ASSERT_TRUE(c);
  ASSERT_TRUE(server_->WaitForAgent(c->pid, 10));
  Startup s;
  ASSERT_TRUE(ReadStartup(*c, &s));
  ASSERT_EQ(kill(c->pid, SIGUSR1), 0);
  auto req = WaitForRequests(*server_, 10);
  ASSERT_EQ(req.size(), 1u);
  EXPECT_EQ(req[0].pid, c->pid);
  EXPECT_EQ(req[0].signal, "USR1");
  EXPECT_EQ(req[0].program, "agent_selftest");
  // Numbers work in the list too (15 = TERM); one request per signal.
  ASSERT_EQ(kill(c->pid, SIGUSR1), 0);
  ASSERT_EQ(kill(c->pid, SIGTERM), 0);
  req = WaitForRequests(*server_, 10);
  ASSERT_EQ(req.size(), 1u);
  EXPECT_EQ(req[0].signal, "TERM");
  EXPECT_TRUE(WaitForRequests(*server_, 0.5).empty());
  EXPECT_TRUE(Alive(c->pid));
  EXPECT_EQ(c->ReadLine(20), "done ok");
  EXPECT_EQ(c->Wait(), 0);
}

// A deferred signal pending when the process is quiesced stays queued in
// the kernel: it is not in the control block, so not in an image (a
// restarted process would act on its previous run's signal and stop again
// at once); after a resume it is still pending.
TEST_F(AgentTest, PendingDeferredSignalIsNotRecorded) {
  // Every thread blocks every signal: SIGUSR1 stays pending.
  auto c = Spawn({"blockall", "20"}, server_->socket_path(), {"STASIS_DEFER_SIGNALS=USR1"});
  ASSERT_TRUE(c);
  ASSERT_TRUE(server_->WaitForAgent(c->pid, 10));
  Startup s;
  ASSERT_TRUE(ReadStartup(*c, &s));
  ASSERT_EQ(kill(c->pid, SIGUSR1), 0);
  ASSERT_EQ(kill(c->pid, SIGUSR2), 0);  // not deferred: recorded as usual
  Status st = server_->QuiesceAll({c->pid}, 1, 10);
  ASSERT_TRUE(st.ok()) << st.message();
  auto cb = ReadControlBlock(c->pid, ControlBlockAddr(c->pid));
  ASSERT_TRUE(cb);
  ASSERT_EQ(cb->n_shared_pending, 1);
  EXPECT_EQ(cb->shared_pending[0].signo, SIGUSR2);
  for (int t = 0; t < cb->n_threads; ++t) {
    for (int i = 0; i < cb->threads[t].n_pending; ++i) EXPECT_NE(cb->threads[t].pending[i].signo, SIGUSR1);
  }
  std::ifstream status("/proc/" + std::to_string(c->pid) + "/status");
  std::string line;
  uint64_t shdpnd = 0;
  while (std::getline(status, line)) {
    if (line.rfind("ShdPnd:", 0) == 0) shdpnd = std::stoull(line.substr(7), nullptr, 16);
  }
  EXPECT_NE(shdpnd & (1ull << (SIGUSR1 - 1)), 0u) << "SIGUSR1 left queued in the kernel";
  server_->ResumeAll();
  EXPECT_EQ(c->ReadLine(20), "done ok");
  EXPECT_EQ(c->Wait(), 0);
}

TEST_F(AgentTest, InertWithoutSupervisorSocket) {
  auto c = Spawn({"count", "5"}, "");
  ASSERT_TRUE(c);
  std::string line;
  do {
    line = c->ReadLine(10);
  } while (!line.empty() && line != "done ok");
  EXPECT_EQ(line, "done ok");
  EXPECT_EQ(c->Wait(), 0);
  EXPECT_TRUE(server_->Agents().empty());
}

TEST_F(AgentTest, ListenRejectsNonSocketPath) {
  std::string path = dir_ + "/regular";
  { std::ofstream(path) << "x"; }
  auto s = AgentServer::Listen(path);
  EXPECT_FALSE(s.ok());
  unlink(path.c_str());
}

}  // namespace
}  // namespace stasis
