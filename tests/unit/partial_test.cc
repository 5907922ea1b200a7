// Tests of what makes a checkpoint refuse or warn instead of being silently
// partial: src/state/losses (what a restart will not restore, on synthetic
// images) and src/job/preflight (/proc/<pid>/stat parsing; the scan on this
// test process, which has no io_uring, tracer or vfork).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "image/codec.h"
#include "job/preflight.h"
#include "state/losses.h"

namespace stasis {
namespace {

using Kind = image::FileDescriptor::Kind;

image::FileDescriptor Fd(int n, Kind kind, const std::string& path) {
  image::FileDescriptor f;
  f.fd = n;
  f.kind = kind;
  f.path = path;
  return f;
}

TEST(RestartLosses, NamesUnsupportedAndDeletedDescriptors) {
  image::ProcessImage img;
  img.agent.socket_fd = 800;
  img.fds.push_back(Fd(3, Kind::kOther, "anon_inode:inotify"));
  img.fds.push_back(Fd(4, Kind::kRegular, "/tmp/x (deleted)"));
  image::FileDescriptor saved = Fd(5, Kind::kRegular, "/tmp/y (deleted)");
  saved.saved = image::SavedFile{};
  img.fds.push_back(saved);
  image::FileDescriptor netlink = Fd(6, Kind::kSocket, "socket:[1]");
  netlink.socket.family = AF_NETLINK;
  img.fds.push_back(netlink);
  image::FileDescriptor unix_sock = Fd(7, Kind::kSocket, "socket:[2]");
  unix_sock.socket.family = AF_UNIX;
  img.fds.push_back(unix_sock);
  img.fds.push_back(Fd(8, Kind::kRegular, "/tmp/z"));
  image::FileDescriptor stdio = Fd(9, Kind::kOther, "anon_inode:[pidfd]");
  stdio.stdio_alias = 1;
  img.fds.push_back(stdio);
  img.fds.push_back(Fd(800, Kind::kOther, "socket:[3]"));  // the agent's own

  auto losses = state::RestartLosses(img);
  ASSERT_EQ(losses.size(), 3u);
  EXPECT_NE(losses[0].find("fd 3 (anon_inode:inotify)"), std::string::npos) << losses[0];
  EXPECT_NE(losses[0].find("/dev/null"), std::string::npos) << losses[0];
  EXPECT_NE(losses[1].find("fd 4 (/tmp/x (deleted))"), std::string::npos) << losses[1];
  EXPECT_NE(losses[1].find("--save-files"), std::string::npos) << losses[1];
  EXPECT_NE(losses[2].find("fd 6"), std::string::npos) << losses[2];
}

TEST(RestartLosses, WarningsSurviveTheImageCodec) {
  image::ProcessImage img;
  img.warnings = {"fd 3 (anon_inode:inotify): lost", "second"};
  std::vector<uint8_t> encoded = image::EncodeMetadata(img);
  auto decoded = image::DecodeMetadata(encoded.data(), encoded.size());
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  EXPECT_EQ(decoded->warnings, img.warnings);
}

TEST(Preflight, ParsesStateAndFlags) {
  char state = 0;
  unsigned long flags = 0;
  ASSERT_TRUE(job::ParseTaskStat("42 (iou-wrk-41) S 1 41 41 0 -1 4194320 0 0", &state, &flags));
  EXPECT_EQ(state, 'S');
  EXPECT_EQ(flags, 4194320ul);  // PF_RANDOMIZE | PF_IO_WORKER
  EXPECT_TRUE(flags & job::kPfIoWorker);
  ASSERT_TRUE(job::ParseTaskStat("7 (a) b) c) t 1 7 7 0 -1 4194304 0", &state, &flags));
  EXPECT_EQ(state, 't');
  EXPECT_FALSE(flags & job::kPfIoWorker);
  EXPECT_FALSE(job::ParseTaskStat("7 (no close paren S 1", &state, &flags));
  EXPECT_FALSE(job::ParseTaskStat("", &state, &flags));
}

TEST(Preflight, DescribesAProcessByItsProgram) {
  const std::string d = job::DescribeProcess(getpid());
  EXPECT_EQ(d.rfind("pid " + std::to_string(getpid()) + " (", 0), 0u) << d;
  EXPECT_NE(d.find("stasis_unit_tests"), std::string::npos) << d;
}

}  // namespace
}  // namespace stasis
