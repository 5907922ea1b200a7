// Line framing and the supervisor's coordinator connection
// (src/job/coordinator_link.h).
#include "job/coordinator_link.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

namespace stasis::job {
namespace {

using nlohmann::json;

TEST(JobLineBuffer, SplitsAcrossChunks) {
  LineBuffer buf;
  ASSERT_TRUE(buf.Append("{\"a\":", 5).ok());
  EXPECT_FALSE(buf.Next());
  ASSERT_TRUE(buf.Append("1}\n{\"b\":2}\r\n\n{\"c\"", 17).ok());
  EXPECT_EQ(buf.Next(), "{\"a\":1}");
  EXPECT_EQ(buf.Next(), "{\"b\":2}");  // '\r' dropped, empty line skipped
  EXPECT_FALSE(buf.Next());
  EXPECT_EQ(buf.pending_bytes(), 4u);
  ASSERT_TRUE(buf.Append(":3}\n", 4).ok());
  EXPECT_EQ(buf.Next(), "{\"c\":3}");
  EXPECT_EQ(buf.pending_bytes(), 0u);
}

TEST(JobLineBuffer, RejectsOverlongLine) {
  LineBuffer buf(8);
  EXPECT_TRUE(buf.Append("12345678", 8).ok());
  EXPECT_FALSE(buf.Append("9", 1).ok());
  // A long line that is complete within one chunk is fine only if <= max.
  EXPECT_TRUE(buf.Append("short\n", 6).ok());
  EXPECT_EQ(buf.Next(), "short");
}

struct Pair {
  CoordinatorLink link;
  int peer;
};
Pair MakePair() {
  int sv[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  return {CoordinatorLink::FromFd(ScopedFd(sv[0])), sv[1]};
}

void WriteStr(int fd, const std::string& s) {
  ASSERT_EQ(write(fd, s.data(), s.size()), static_cast<ssize_t>(s.size()));
}

TEST(JobCoordinatorLink, SendWritesOneLine) {
  Pair p = MakePair();
  ASSERT_TRUE(p.link.Send({{"type", "exited"}, {"status", 3}}).ok());
  char buf[256] = {};
  ssize_t n = read(p.peer, buf, sizeof(buf));
  ASSERT_GT(n, 0);
  std::string line(buf, n);
  ASSERT_EQ(line.back(), '\n');
  EXPECT_EQ(json::parse(line), (json{{"type", "exited"}, {"status", 3}}));
  close(p.peer);
}

// A process may name itself anything (prctl PR_SET_NAME): invalid UTF-8 in
// a program name is replaced, not thrown out of the supervisor.
TEST(JobCoordinatorLink, SendSurvivesInvalidUtf8) {
  Pair p = MakePair();
  Status st;
  ASSERT_NO_THROW(st = p.link.Send({{"type", "processes"}, {"program", std::string("a\xff\xfe")}}));
  ASSERT_TRUE(st.ok()) << st.message();
  char buf[256] = {};
  ssize_t n = read(p.peer, buf, sizeof(buf));
  ASSERT_GT(n, 0);
  json got = json::parse(std::string(buf, n));
  EXPECT_EQ(got["program"], "a\xef\xbf\xbd\xef\xbf\xbd");  // U+FFFD twice
  close(p.peer);
}

TEST(JobCoordinatorLink, ReadAvailableParsesEveryCompleteLine) {
  Pair p = MakePair();
  auto none = p.link.ReadAvailable();
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  WriteStr(p.peer, "{\"type\":\"quiesce\",\"generation\":4}\n{\"type\":\"dump\"}\n{\"type\"");
  auto msgs = p.link.ReadAvailable();
  ASSERT_TRUE(msgs.ok()) << msgs.status().message();
  ASSERT_EQ(msgs->size(), 2u);
  EXPECT_EQ((*msgs)[0]["generation"], 4);
  EXPECT_EQ((*msgs)[1]["type"], "dump");
  WriteStr(p.peer, ":\"resume\"}\n");
  msgs = p.link.ReadAvailable();
  ASSERT_TRUE(msgs.ok());
  ASSERT_EQ(msgs->size(), 1u);
  EXPECT_EQ((*msgs)[0]["type"], "resume");
  close(p.peer);
  msgs = p.link.ReadAvailable();
  EXPECT_FALSE(msgs.ok());
  EXPECT_FALSE(p.link.connected());
}

TEST(JobCoordinatorLink, RejectsNonObjectLines) {
  Pair p = MakePair();
  WriteStr(p.peer, "not json\n");
  auto msgs = p.link.ReadAvailable();
  ASSERT_FALSE(msgs.ok());
  EXPECT_NE(msgs.status().message().find("not a JSON object"), std::string::npos);
  EXPECT_FALSE(p.link.connected());
  close(p.peer);
}

TEST(JobCoordinatorLink, ReadMessageWaitsAndTimesOut) {
  Pair p = MakePair();
  auto r = p.link.ReadMessage(0.05);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("no reply"), std::string::npos);
  WriteStr(p.peer, "{\"ok\":true,\"job_id\":\"x\"}\n");
  close(p.peer);  // the reply is still delivered before the EOF
  r = p.link.ReadMessage(1);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ((*r)["job_id"], "x");
  EXPECT_FALSE(p.link.ReadMessage(1).ok());
}

TEST(JobCoordinatorLink, ConnectsOverTcp) {
  ScopedFd listener(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  struct sockaddr_in addr {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(listener.get(), 1), 0);
  socklen_t len = sizeof(addr);
  getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len);
  uint16_t port = ntohs(addr.sin_port);

  auto link = CoordinatorLink::Connect("127.0.0.1", port, 2);
  ASSERT_TRUE(link.ok()) << link.status().message();
  ScopedFd peer(accept(listener.get(), nullptr, nullptr));
  ASSERT_TRUE(link->Send({{"type", "hello"}}).ok());
  char buf[64] = {};
  EXPECT_GT(read(peer.get(), buf, sizeof(buf)), 0);
  EXPECT_EQ(std::string(buf), "{\"type\":\"hello\"}\n");

  listener.reset();  // nothing listens on `port` any more
  auto refused = CoordinatorLink::Connect("127.0.0.1", port, 2);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find(
                "cannot connect to the coordinator at 127.0.0.1:" + std::to_string(port)),
            std::string::npos)
      << refused.status().message();
}

}  // namespace
}  // namespace stasis::job
