// The stasis binary as a user runs it (subprocesses): usage, error messages,
// exit codes, and a daemon coordinator driven by status/quit.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

namespace {

namespace fs = std::filesystem;

std::string StasisBinary() {
  if (const char* d = std::getenv("STASIS_BUILD_DIR")) {
    if (fs::exists(fs::path(d) / "bin/stasis")) return (fs::path(d) / "bin/stasis").string();
  }
  // <build>/tests/stasis_unit_tests -> <build>/bin/stasis
  fs::path p = fs::read_symlink("/proc/self/exe").parent_path().parent_path() / "bin/stasis";
  return fs::exists(p) ? p.string() : "";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Result {
  int rc = -1;
  std::string out, err;
};

// Runs `stasis <args>` through sh (arguments here need no quoting).
Result RunStasis(const std::string& args, const std::string& env = "") {
  char dir[] = "/tmp/stasis-cli-test-XXXXXX";
  std::string d = ::mkdtemp(dir);
  std::string cmd = env + " " + StasisBinary() + " " + args + " >" + d + "/out 2>" + d + "/err </dev/null";
  int st = std::system(cmd.c_str());
  Result r;
  r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.out = ReadFile(d + "/out");
  r.err = ReadFile(d + "/err");
  fs::remove_all(d);
  return r;
}

// A port nobody listens on (bound, then released).
int FreePort() {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  socklen_t len = sizeof sa;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&sa), &len);
  ::close(s);
  return ntohs(sa.sin_port);
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (StasisBinary().empty()) GTEST_SKIP() << "stasis binary not built";
  }
};

TEST_F(CliTest, HelpOnEverySubcommand) {
  for (const char* sub : {"launch", "checkpoint", "status", "restart", "inspect", "coordinator", "quit"}) {
    Result r = RunStasis(std::string(sub) + " --help");
    EXPECT_EQ(r.rc, 0) << sub << ": " << r.err;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << sub;
  }
  Result l = RunStasis("launch --help");
  EXPECT_NE(l.out.find("Seconds between automatic checkpoints"), std::string::npos);
  EXPECT_NE(l.out.find("STASIS_CKPT_DIR"), std::string::npos);
  Result top = RunStasis("--help");
  EXPECT_NE(top.out.find("STASIS_COORD_PORT"), std::string::npos);
}

TEST_F(CliTest, UsageErrorsExit2) {
  EXPECT_EQ(RunStasis("").rc, 2);
  EXPECT_EQ(RunStasis("frobnicate").rc, 2);
  EXPECT_EQ(RunStasis("checkpoint --no-such-flag").rc, 2);
  EXPECT_EQ(RunStasis("restart").rc, 2);  // PATH required
}

TEST_F(CliTest, LaunchUnknownProgram) {
  Result r = RunStasis("launch -c /tmp -- no-such-prog-xyz arg");
  EXPECT_EQ(r.rc, 127);
  EXPECT_EQ(r.err, "stasis launch: no-such-prog-xyz: command not found\n");
}

TEST_F(CliTest, LaunchRejectsBadCompression) {
  Result r = RunStasis("launch --compress lz4 -c /tmp true");
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.err.rfind("stasis launch: --compress: ", 0), 0u) << r.err;
}

TEST_F(CliTest, NoCoordinator) {
  const int port = FreePort();
  Result r = RunStasis("checkpoint --coord-port " + std::to_string(port));
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.err, "stasis checkpoint: no coordinator at 127.0.0.1:" + std::to_string(port) +
                       " (is a job running under 'stasis launch'?)\n");
  // The port from the environment, and a global option after the subcommand.
  Result s = RunStasis("status", "STASIS_COORD_PORT=" + std::to_string(port));
  EXPECT_EQ(s.rc, 1);
  EXPECT_NE(s.err.find(":" + std::to_string(port)), std::string::npos) << s.err;
}

TEST_F(CliTest, DaemonCoordinatorStatusAndQuit) {
  char dir[] = "/tmp/stasis-cli-coord-XXXXXX";
  std::string d = ::mkdtemp(dir);
  const std::string port_file = d + "/port";
  Result start = RunStasis("coordinator --coord-port 0 --port-file " + port_file + " --daemon --log " + d +
                     "/log -c " + d + "/ckpt -i 30 --keep 3");
  ASSERT_EQ(start.rc, 0) << start.err;
  // Ready when the parent returned: the port file is there and it answers.
  const std::string port = std::to_string(std::stoi(ReadFile(port_file)));
  Result st = RunStasis("status --json -p " + port);
  ASSERT_EQ(st.rc, 0) << st.err;
  EXPECT_NE(st.out.find("\"state\": \"idle\""), std::string::npos) << st.out;
  EXPECT_NE(st.out.find("\"keep\": 3"), std::string::npos) << st.out;
  Result human = RunStasis("status -p " + port);
  EXPECT_EQ(human.rc, 0);
  EXPECT_NE(human.out.find("interval:     30 s"), std::string::npos) << human.out;
  Result ck = RunStasis("checkpoint -p " + port);
  EXPECT_EQ(ck.rc, 1);
  EXPECT_NE(ck.err.find("no job is running"), std::string::npos) << ck.err;
  Result q = RunStasis("quit -q -p " + port);
  EXPECT_EQ(q.rc, 0) << q.err;
  EXPECT_EQ(RunStasis("status -p " + port).rc, 1);  // gone (it stopped listening before replying)
  EXPECT_NE(ReadFile(d + "/log").find("stasis coordinator: listening on"), std::string::npos);
  fs::remove_all(d);
}

TEST_F(CliTest, InspectMissingCheckpoint) {
  char dir[] = "/tmp/stasis-cli-empty-XXXXXX";
  std::string d = ::mkdtemp(dir);
  Result r = RunStasis("inspect " + d);
  EXPECT_EQ(r.rc, 1);
  Result rs = RunStasis("restart " + d);
  EXPECT_EQ(rs.rc, 1);
  EXPECT_EQ(rs.err, "stasis restart: " + d + ": no complete checkpoint found\n");
  fs::remove_all(d);
}

}  // namespace
