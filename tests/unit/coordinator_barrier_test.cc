// The coordinator in-process (its loop on a thread) with fake supervisors
// speaking protocol.h over real loopback sockets.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "coordinator/auth.h"
#include "coordinator/client.h"
#include "coordinator/coordinator.h"
#include "image/manifest.h"

namespace stasis::coordinator {
namespace {

namespace fs = std::filesystem;

// Polls `cond` until true or 10 s pass (conditions, not fixed sleeps).
bool WaitFor(const std::function<bool()>& cond, double seconds = 10) {
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return cond();
}

class TempDir {
 public:
  TempDir() {
    char t[] = "/tmp/stasis-coord-test-XXXXXX";
    path_ = ::mkdtemp(t);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A supervisor that answers the coordinator from its own thread.
class FakeSupervisor {
 public:
  std::string program = "prog";
  int pid = 2;
  std::string fail_dump;           // non-empty: dump replies with this error
  std::string hang_on;             // never answer this request type
  std::atomic<bool> hold_quiesce{false};  // delay quiesce replies while true
  bool remove_after_dump = false;  // delete the image again before replying

  ~FakeSupervisor() { Close(); }

  void Start(uint16_t port, const std::string& ckptdir, double interval = 0, uint32_t keep = 2) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    Json hello = {{"type", "hello"},        {"role", "supervisor"}, {"version", kProtocolVersion},
                  {"job_id", "job1"},       {"host", "testhost"},   {"supervisor_pid", 4242},
                  {"program", program},     {"ckptdir", ckptdir},   {"interval", interval},
                  {"keep", keep},           {"compression", "zstd:1"}, {"restarted", false},
                  {"generation", 0}};
    bool refused = false;
    auto reply = AuthenticatedHello(
        fd_, "coord", port, hello, nullptr,
        [this](const Json& m) -> StatusOr<Json> {
          RETURN_IF_ERROR(WriteLine(fd_, m, 5, "coord"));
          return ReadLine(fd_, in_, 5, "coord");
        },
        &refused);
    ASSERT_TRUE(reply.ok()) << reply.status().message();
    ASSERT_TRUE(GetBool(*reply, "ok")) << reply->dump();
    job_id_ = GetString(*reply, "job_id");
    ASSERT_TRUE(WriteLine(fd_, {{"type", "processes"}, {"processes", {{{"pid", pid}, {"program", program}}}}}, 5,
                          "coord").ok());
    thread_ = std::thread([this] { Loop(); });
  }

  void Close() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  // A notification of the supervisor's own (e.g. checkpoint_request).
  void Notify(const Json& msg) {
    std::lock_guard<std::mutex> l(write_mu_);
    ASSERT_TRUE(WriteLine(fd_, msg, 5, "coord").ok());
  }

  std::vector<std::string> Received() {
    std::lock_guard<std::mutex> l(mu_);
    return received_;
  }
  bool Got(const std::string& type) {
    for (const auto& t : Received()) {
      if (t == type) return true;
    }
    return false;
  }

 private:
  void Loop() {
    while (!stop_) {
      // Several requests may arrive in one read: drain the buffer first.
      pollfd p{fd_, POLLIN, 0};
      if (in_.pending() == 0 && ::poll(&p, 1, 20) <= 0) continue;
      auto msg = ReadLine(fd_, in_, 5, "coord");
      if (!msg.ok()) return;
      Handle(*msg);
    }
  }

  void Handle(const Json& m) {
    const std::string type = GetString(m, "type");
    const uint64_t gen = static_cast<uint64_t>(GetNumber(m, "generation"));
    {
      std::lock_guard<std::mutex> l(mu_);
      received_.push_back(type);
    }
    if (type == hang_on) return;
    Json reply = {{"type", type}, {"ok", true}};
    if (type == "quiesce") {
      while (hold_quiesce && !stop_) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    } else if (type == "dump") {
      if (!fail_dump.empty()) {
        reply = {{"type", type}, {"ok", false}, {"error", fail_dump}};
      } else {
        std::string name = image::ImageFileName(program, job_id_, pid, gen);
        std::ofstream(fs::path(GetString(m, "dir")) / name) << "image " << gen;
        if (remove_after_dump) fs::remove(fs::path(GetString(m, "dir")) / name);
        reply["processes"] = {{{"pid", pid}, {"ppid", 1}, {"program", program}, {"image", name}, {"image_size", 7}}};
      }
    }
    std::lock_guard<std::mutex> l(write_mu_);
    (void)WriteLine(fd_, reply, 5, "coord");
  }

  int fd_ = -1;
  LineBuffer in_;
  std::string job_id_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::mutex write_mu_;
  std::vector<std::string> received_;
};

class CoordinatorTest : public ::testing::Test {
 protected:
  void StartCoordinator(CoordinatorOptions o = {}) {
    o.host = "127.0.0.1";
    o.port = 0;
    o.stasis_exe = "/opt/stasis/bin/stasis";
    auto c = Coordinator::Listen(o);
    ASSERT_TRUE(c.ok()) << c.status().message();
    coord_ = std::move(*c);
    port_ = coord_->port();
    ASSERT_NE(port_, 0);
    done_ = std::async(std::launch::async, [this] { return coord_->Run(); });
  }
  void TearDown() override {
    sup_.Close();
    sup2_.Close();
    if (coord_) {
      coord_->Stop();
      done_.wait();
    }
  }
  Json Request(const Json& req) {
    Client::Failure f;
    auto c = Client::Connect("127.0.0.1", port_, 5, &f);
    EXPECT_TRUE(c.ok()) << c.status().message();
    if (!c.ok()) return Json();
    auto r = (*c)->Request(req, 20);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? *r : Json();
  }
  std::vector<std::string> Manifests() {
    auto l = image::ListManifests(dir_.path());
    return l.ok() ? *l : std::vector<std::string>{};
  }

  TempDir dir_;
  std::unique_ptr<Coordinator> coord_;
  uint16_t port_ = 0;
  std::future<Status> done_;
  FakeSupervisor sup_, sup2_;
};

TEST_F(CoordinatorTest, CheckpointWritesManifestRestartScriptAndPrunes) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  ASSERT_NO_FATAL_FAILURE(sup_.Start(port_, dir_.path(), 0, /*keep=*/2));
  for (int i = 1; i <= 3; ++i) {
    Json r = Request({{"type", "checkpoint"}, {"kill", false}});
    ASSERT_TRUE(GetBool(r, "ok")) << r.dump();
    EXPECT_EQ(GetNumber(r, "generation"), i);
    EXPECT_EQ(GetString(r, "manifest"), dir_.path() + "/" + image::ManifestFileName(i));
    EXPECT_EQ(GetNumber(r, "bytes"), 7);
    ASSERT_EQ(r["images"].size(), 1u);
  }
  auto m = Manifests();
  ASSERT_EQ(m.size(), 2u);  // keep = 2
  auto newest = image::ReadManifest(m[0]);
  ASSERT_TRUE(newest.ok()) << newest.status().message();
  EXPECT_EQ(newest->generation, 3u);
  EXPECT_EQ(newest->job_id, "job1");
  ASSERT_EQ(newest->processes.size(), 1u);
  EXPECT_EQ(newest->processes[0].program, "prog");
  EXPECT_FALSE(fs::exists(fs::path(dir_.path()) / image::ImageFileName("prog", "job1", 2, 1)));
  // The restart script: executable, restarts its own directory.
  const std::string script = dir_.path() + "/stasis_restart.sh";
  struct stat st;
  ASSERT_EQ(::stat(script.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755u);
  std::ifstream in(script);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text.rfind("#!/bin/sh\n", 0), 0u);
  EXPECT_NE(text.find("'/opt/stasis/bin/stasis'"), std::string::npos);
  EXPECT_NE(text.find("restart \"$(dirname \"$0\")\" \"$@\""), std::string::npos);
  EXPECT_TRUE(sup_.Got("resume"));
}

TEST_F(CoordinatorTest, SupervisorErrorAbortsAndKeepsPreviousCheckpoint) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  ASSERT_NO_FATAL_FAILURE(sup_.Start(port_, dir_.path()));
  ASSERT_TRUE(GetBool(Request({{"type", "checkpoint"}}), "ok"));
  sup_.fail_dump = "disk full";
  Json r = Request({{"type", "checkpoint"}});
  EXPECT_FALSE(GetBool(r, "ok"));
  const std::string err = GetString(r, "error");
  EXPECT_NE(err.find("checkpoint 2 failed"), std::string::npos) << err;
  EXPECT_NE(err.find("supervisor 4242 on testhost (prog): disk full"), std::string::npos) << err;
  EXPECT_TRUE(WaitFor([&] { return sup_.Got("abort"); }));
  auto m = Manifests();
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(fs::path(m[0]).filename(), image::ManifestFileName(1));
  Json s = Request({{"type", "status"}});
  EXPECT_EQ(GetString(s, "last_error"), err);
  EXPECT_EQ(s["last_checkpoint"]["generation"], 1);
  // The next checkpoint uses a fresh generation.
  sup_.fail_dump.clear();
  Json r3 = Request({{"type", "checkpoint"}});
  ASSERT_TRUE(GetBool(r3, "ok")) << r3.dump();
  EXPECT_EQ(GetNumber(r3, "generation"), 3);
}

TEST_F(CoordinatorTest, StatusReplyShape) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  Json idle = Request({{"type", "status"}});
  EXPECT_TRUE(GetBool(idle, "ok"));
  EXPECT_TRUE(idle["job_id"].is_null());
  ASSERT_NO_FATAL_FAILURE(sup_.Start(port_, dir_.path(), 30, 3));
  ASSERT_TRUE(WaitFor([&] { return Request({{"type", "status"}})["processes"].size() == 1; }));
  Json s = Request({{"type", "status"}});
  EXPECT_EQ(s["job_id"], "job1");
  EXPECT_EQ(s["state"], "running");
  EXPECT_EQ(s["interval"], 30.0);
  EXPECT_EQ(s["ckptdir"], dir_.path());
  EXPECT_EQ(s["keep"], 3);
  EXPECT_EQ(s["compression"], "zstd:1");
  EXPECT_TRUE(s["last_checkpoint"].is_null());
  EXPECT_EQ(s["checkpoints_taken"], 0);
  EXPECT_TRUE(s["last_error"].is_null());
  const Json& p = s["processes"][0];
  EXPECT_EQ(p["pid"], 2);
  EXPECT_EQ(p["program"], "prog");
  EXPECT_EQ(p["host"], "testhost");
  EXPECT_EQ(p["supervisor_pid"], 4242);
  Json set = Request({{"type", "set_interval"}, {"interval", 5}});
  EXPECT_TRUE(GetBool(set, "ok"));
  EXPECT_EQ(Request({{"type", "status"}})["interval"], 5.0);
  EXPECT_FALSE(GetBool(Request({{"type", "set_interval"}, {"interval", -1}}), "ok"));
  EXPECT_FALSE(GetBool(Request({{"type", "bogus"}}), "ok"));
}

TEST_F(CoordinatorTest, IntervalTriggersCheckpoints) {
  CoordinatorOptions o;
  o.interval = 0.2;
  ASSERT_NO_FATAL_FAILURE(StartCoordinator(o));
  ASSERT_NO_FATAL_FAILURE(sup_.Start(port_, dir_.path()));
  ASSERT_TRUE(WaitFor([&] { return Request({{"type", "status"}})["checkpoints_taken"].get<int>() >= 2; }));
  EXPECT_FALSE(Manifests().empty());
}

TEST_F(CoordinatorTest, RequestDuringCheckpointGetsTheNextOne) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  ASSERT_NO_FATAL_FAILURE(sup_.Start(port_, dir_.path()));
  sup_.hold_quiesce = true;
  auto first = std::async(std::launch::async, [&] { return Request({{"type", "checkpoint"}}); });
  ASSERT_TRUE(WaitFor([&] { return sup_.Got("quiesce"); }));
  auto second = std::async(std::launch::async, [&] { return Request({{"type", "checkpoint"}}); });
  ASSERT_TRUE(WaitFor([&] { return Request({{"type", "status"}})["state"] == "checkpointing"; }));
  // Let the second request reach the coordinator before releasing.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  sup_.hold_quiesce = false;
  Json a = first.get(), b = second.get();
  ASSERT_TRUE(GetBool(a, "ok")) << a.dump();
  ASSERT_TRUE(GetBool(b, "ok")) << b.dump();
  EXPECT_EQ(GetNumber(a, "generation"), 1);
  EXPECT_EQ(GetNumber(b, "generation"), 2);
}

TEST_F(CoordinatorTest, TimeoutAndDisconnectFailTheCheckpoint) {
  CoordinatorOptions o;
  o.phase_timeout = 0.3;
  ASSERT_NO_FATAL_FAILURE(StartCoordinator(o));
  sup_.hang_on = "dump";
  ASSERT_NO_FATAL_FAILURE(sup_.Start(port_, dir_.path()));
  Json r = Request({{"type", "checkpoint"}});
  EXPECT_FALSE(GetBool(r, "ok"));
  EXPECT_NE(GetString(r, "error").find("timed out"), std::string::npos) << r.dump();
  EXPECT_NE(GetString(r, "error").find("to dump"), std::string::npos) << r.dump();

  sup2_.program = "other";
  sup2_.hang_on = "quiesce";
  ASSERT_NO_FATAL_FAILURE(sup2_.Start(port_, dir_.path()));
  sup_.hang_on.clear();
  auto pending = std::async(std::launch::async, [&] { return Request({{"type", "checkpoint"}}); });
  ASSERT_TRUE(WaitFor([&] { return sup2_.Got("quiesce"); }));
  sup2_.Close();
  Json d = pending.get();
  EXPECT_FALSE(GetBool(d, "ok"));
  EXPECT_NE(GetString(d, "error").find("disconnected"), std::string::npos) << d.dump();
  EXPECT_TRUE(Manifests().empty());
}

// SIGTERM (Terminate) with a job attached: the coordinator still serves the
// job's final checkpoint-and-kill, then exits; with no job, at once.
TEST_F(CoordinatorTest, TerminateWaitsForTheJobsFinalCheckpoint) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  ASSERT_NO_FATAL_FAILURE(sup_.Start(port_, dir_.path()));
  coord_->Terminate();
  EXPECT_NE(done_.wait_for(std::chrono::milliseconds(300)), std::future_status::ready);
  Json r = Request({{"type", "checkpoint"}, {"kill", true}});
  ASSERT_TRUE(GetBool(r, "ok")) << r.dump();
  EXPECT_EQ(Manifests().size(), 1u);
  ASSERT_EQ(done_.wait_for(std::chrono::seconds(10)), std::future_status::ready);
}

TEST_F(CoordinatorTest, TerminateWithoutAJobStopsAtOnce) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  coord_->Terminate();
  ASSERT_EQ(done_.wait_for(std::chrono::seconds(10)), std::future_status::ready);
}

// An image that vanished between the dump and the manifest fails the
// checkpoint: no manifest ever lists a missing file.
TEST_F(CoordinatorTest, MissingImageAfterDumpFailsTheCheckpoint) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  sup_.remove_after_dump = true;
  ASSERT_NO_FATAL_FAILURE(sup_.Start(port_, dir_.path()));
  Json r = Request({{"type", "checkpoint"}});
  EXPECT_FALSE(GetBool(r, "ok")) << r.dump();
  EXPECT_NE(GetString(r, "error").find("is missing after the dump"), std::string::npos) << r.dump();
  EXPECT_TRUE(Manifests().empty());
  EXPECT_TRUE(WaitFor([&] { return sup_.Got("abort"); }));
}

TEST_F(CoordinatorTest, CheckpointKillAndExitOnLast) {
  CoordinatorOptions o;
  o.exit_on_last = true;
  ASSERT_NO_FATAL_FAILURE(StartCoordinator(o));
  ASSERT_NO_FATAL_FAILURE(sup_.Start(port_, dir_.path()));
  Json r = Request({{"type", "checkpoint"}, {"kill", true}});
  ASSERT_TRUE(GetBool(r, "ok")) << r.dump();
  EXPECT_TRUE(sup_.Got("kill"));
  // The coordinator stops on its own and no longer listens.
  ASSERT_EQ(done_.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  Client::Failure f;
  EXPECT_FALSE(Client::Connect("127.0.0.1", port_, 2, &f).ok());
  EXPECT_EQ(f, Client::Failure::kNoCoordinator);
}

Json CheckpointRequest(int pid, const std::string& sig) {
  return {{"type", "checkpoint_request"}, {"kill", true}, {"pid", pid}, {"program", "prog"}, {"signal", sig}};
}

// Slurm signals every process of the step at once: several job processes
// and `stasis run` ask for checkpoint-and-stop while it is running.  One
// checkpoint ends the job; the await_stop watcher and the client both get
// its result.
TEST_F(CoordinatorTest, JobRequestsFromSeveralProcessesGiveOneCheckpointAndStop) {
  CoordinatorOptions o;
  o.exit_on_last = true;
  ASSERT_NO_FATAL_FAILURE(StartCoordinator(o));
  Client::Failure f;
  auto watcher = Client::Connect("127.0.0.1", port_, 5, &f);
  ASSERT_TRUE(watcher.ok()) << watcher.status().message();
  ASSERT_TRUE((*watcher)->Send({{"type", "await_stop"}}, 5).ok());
  sup2_.program = "other";
  sup2_.pid = 3;
  ASSERT_NO_FATAL_FAILURE(sup_.Start(port_, dir_.path()));
  ASSERT_NO_FATAL_FAILURE(sup2_.Start(port_, dir_.path()));
  sup_.hold_quiesce = true;
  ASSERT_NO_FATAL_FAILURE(sup_.Notify(CheckpointRequest(2, "USR1")));
  ASSERT_TRUE(WaitFor([&] { return sup_.Got("quiesce"); }));
  ASSERT_NO_FATAL_FAILURE(sup2_.Notify(CheckpointRequest(3, "USR1")));
  ASSERT_NO_FATAL_FAILURE(sup_.Notify(CheckpointRequest(7, "TERM")));
  auto client = std::async(std::launch::async, [&] { return Request({{"type", "checkpoint"}, {"kill", true}}); });
  // Nothing answers the watcher while the checkpoint runs.
  EXPECT_FALSE((*watcher)->Receive(0.2).ok());
  sup_.hold_quiesce = false;
  Json c = client.get();
  ASSERT_TRUE(GetBool(c, "ok")) << c.dump();
  EXPECT_EQ(GetNumber(c, "generation"), 1);
  auto w = (*watcher)->Receive(10);
  ASSERT_TRUE(w.ok()) << w.status().message();
  ASSERT_TRUE(GetBool(*w, "ok")) << w->dump();
  EXPECT_EQ(GetNumber(*w, "generation"), 1);
  EXPECT_EQ(GetString(*w, "requested_by"), "pid 2 (prog) on testhost received SIGUSR1");
  EXPECT_TRUE(sup_.Got("kill"));
  EXPECT_TRUE(sup2_.Got("kill"));
  ASSERT_EQ(done_.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(Manifests().size(), 1u);
  int quiesces = 0;
  for (const auto& t : sup2_.Received()) quiesces += t == "quiesce";
  EXPECT_EQ(quiesces, 1);
}

// checkpoint --kill during a periodic checkpoint joins it (the job is
// quiesced until the end, so it holds the final state) and makes it kill.
TEST_F(CoordinatorTest, KillRequestJoinsRunningCheckpoint) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  ASSERT_NO_FATAL_FAILURE(sup_.Start(port_, dir_.path()));
  sup_.hold_quiesce = true;
  auto first = std::async(std::launch::async, [&] { return Request({{"type", "checkpoint"}}); });
  ASSERT_TRUE(WaitFor([&] { return sup_.Got("quiesce"); }));
  auto second = std::async(std::launch::async, [&] { return Request({{"type", "checkpoint"}, {"kill", true}}); });
  ASSERT_TRUE(WaitFor([&] { return Request({{"type", "status"}})["state"] == "checkpointing"; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let the second request arrive
  sup_.hold_quiesce = false;
  Json a = first.get(), b = second.get();
  ASSERT_TRUE(GetBool(a, "ok")) << a.dump();
  ASSERT_TRUE(GetBool(b, "ok")) << b.dump();
  EXPECT_EQ(GetNumber(a, "generation"), 1);
  EXPECT_EQ(GetNumber(b, "generation"), 1);
  EXPECT_TRUE(sup_.Got("kill"));
  EXPECT_FALSE(sup_.Got("resume"));
}

// A job that ends by itself answers the watcher with "not stopped".
TEST_F(CoordinatorTest, AwaitStopAnsweredWhenTheJobEndsWithoutStop) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  Client::Failure f;
  auto watcher = Client::Connect("127.0.0.1", port_, 5, &f);
  ASSERT_TRUE(watcher.ok()) << watcher.status().message();
  ASSERT_TRUE((*watcher)->Send({{"type", "await_stop"}}, 5).ok());
  ASSERT_NO_FATAL_FAILURE(sup_.Start(port_, dir_.path()));
  ASSERT_TRUE(GetBool(Request({{"type", "checkpoint"}}), "ok"));  // periodic: not a stop
  EXPECT_FALSE((*watcher)->Receive(0.2).ok());
  sup_.Close();
  auto w = (*watcher)->Receive(10);
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_FALSE(GetBool(*w, "ok"));
  EXPECT_FALSE(GetBool(*w, "stopped", true));
}

TEST_F(CoordinatorTest, QuitKillsTheJobAndStops) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  ASSERT_NO_FATAL_FAILURE(sup_.Start(port_, dir_.path()));
  Json r = Request({{"type", "quit"}});
  EXPECT_TRUE(GetBool(r, "ok")) << r.dump();
  EXPECT_TRUE(sup_.Got("kill"));
  ASSERT_EQ(done_.wait_for(std::chrono::seconds(10)), std::future_status::ready);
}

TEST_F(CoordinatorTest, RejectsAnotherUser) {
  if (::getuid() != 0) GTEST_SKIP() << "needs root to connect as another uid";
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (::setuid(65534) != 0) ::_exit(2);
    // The client refuses a listener of another uid before saying anything...
    Client::Failure f;
    auto c = Client::Connect("127.0.0.1", port_, 5, &f);
    bool good = !c.ok() && f == Client::Failure::kUntrusted &&
                c.status().message().find("belongs to uid 0") != std::string::npos;
    // ...and the coordinator refuses a hello from another uid.
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port_);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    LineBuffer in;
    good = good && ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 &&
           WriteLine(fd, {{"type", "hello"}, {"role", "client"}, {"version", kProtocolVersion}}, 5, "c").ok();
    auto reply = ReadLine(fd, in, 5, "c");
    good = good && reply.ok() && GetString(*reply, "error_code") == "wrong_user" &&
           GetString(*reply, "error").find("uid 65534") != std::string::npos;
    ::_exit(good ? 0 : 1);
  }
  int st = 0;
  ASSERT_EQ(::waitpid(pid, &st, 0), pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

TEST_F(CoordinatorTest, NoJobMeansCheckpointError) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  Json r = Request({{"type", "checkpoint"}});
  EXPECT_FALSE(GetBool(r, "ok"));
  EXPECT_NE(GetString(r, "error").find("no job"), std::string::npos);
}

}  // namespace
}  // namespace stasis::coordinator

namespace stasis::coordinator {
namespace {

// A second job on a coordinator that already serves one is refused (the
// two would share pids and checkpoints); the running job goes on.
TEST_F(CoordinatorTest, RefusesASecondJob) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  ASSERT_NO_FATAL_FAILURE(sup_.Start(port_, dir_.path()));
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port_);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  Json hello = {{"type", "hello"}, {"role", "supervisor"}, {"version", kProtocolVersion},
                {"job_id", "job2"}, {"host", "testhost"},  {"supervisor_pid", 4343},
                {"program", "other"}, {"ckptdir", dir_.path()}, {"restarted", false},
                {"generation", 0}};
  LineBuffer in;
  bool refused = false;
  auto reply = AuthenticatedHello(
      fd, "coord", port_, hello, nullptr,
      [&](const Json& m) -> StatusOr<Json> {
        RETURN_IF_ERROR(WriteLine(fd, m, 5, "coord"));
        return ReadLine(fd, in, 5, "coord");
      },
      &refused);
  ::close(fd);
  ASSERT_TRUE(reply.ok()) << reply.status().message();
  EXPECT_FALSE(GetBool(*reply, "ok")) << reply->dump();
  const std::string err = GetString(*reply, "error");
  EXPECT_NE(err.find("already serves job job1"), std::string::npos) << err;
  EXPECT_NE(err.find("--coord-port"), std::string::npos) << err;
  EXPECT_NE(err.find("stasis quit"), std::string::npos) << err;
  Json st = Request({{"type", "status"}});
  EXPECT_EQ(GetString(st, "job_id"), "job1") << st.dump();
  Json r = Request({{"type", "checkpoint"}});
  EXPECT_TRUE(GetBool(r, "ok")) << r.dump();
}

}  // namespace
}  // namespace stasis::coordinator
