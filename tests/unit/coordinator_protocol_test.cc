// JSON-line framing and the /proc/net/tcp peer-uid lookup.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "common/scoped_fd.h"
#include "coordinator/json_line.h"
#include "coordinator/peer_uid.h"

namespace stasis::coordinator {
namespace {

TEST(CoordinatorJsonLine, SplitsAndReassemblesLines) {
  LineBuffer b;
  b.Append("{\"a\":1}\n{\"b\"", 12);
  auto l1 = b.NextLine();
  ASSERT_TRUE(l1);
  EXPECT_EQ(*l1, "{\"a\":1}");
  EXPECT_FALSE(b.NextLine());
  b.Append(":2}\r\n\n", 6);
  auto l2 = b.NextLine();
  ASSERT_TRUE(l2);
  EXPECT_EQ(*l2, "{\"b\":2}");  // '\r' dropped
  auto l3 = b.NextLine();
  ASSERT_TRUE(l3);
  EXPECT_EQ(*l3, "");  // empty line handed out; callers skip it
  EXPECT_FALSE(b.NextLine());
  EXPECT_EQ(b.pending(), 0u);
}

TEST(CoordinatorJsonLine, OverflowIsDetected) {
  LineBuffer b;
  std::string chunk(1 << 20, 'x');
  for (int i = 0; i < 17; ++i) b.Append(chunk.data(), chunk.size());
  EXPECT_FALSE(b.NextLine());
  EXPECT_TRUE(b.Overflowed());
}

TEST(CoordinatorJsonLine, EncodeDecodeRoundTrip) {
  Json m = {{"type", "dump"}, {"generation", 7}, {"dir", "/tmp/x y"}};
  std::string line = EncodeLine(m);
  ASSERT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1);  // one line
  auto back = DecodeLine(line.substr(0, line.size() - 1));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(*back, m);
  // Invalid UTF-8 (a program name) must not throw.
  EXPECT_NO_THROW(EncodeLine(Json{{"program", std::string("a\xff")}}));
}

TEST(CoordinatorJsonLine, DecodeErrors) {
  auto bad = DecodeLine("{not json");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("not JSON"), std::string::npos);
  auto arr = DecodeLine("[1,2]");
  ASSERT_FALSE(arr.ok());
  EXPECT_NE(arr.status().message().find("object"), std::string::npos);
}

TEST(CoordinatorJsonLine, AccessorsDoNotThrow) {
  Json j = {{"s", "x"}, {"n", 3}, {"b", true}};
  EXPECT_EQ(GetString(j, "s"), "x");
  EXPECT_EQ(GetString(j, "n", "d"), "d");
  EXPECT_EQ(GetNumber(j, "n"), 3);
  EXPECT_EQ(GetNumber(j, "s", -1), -1);
  EXPECT_TRUE(GetBool(j, "b"));
  EXPECT_FALSE(GetBool(j, "missing"));
}

// Peers control these numbers: a value the target type cannot hold gives the
// default, never a conversion (undefined for doubles out of range).
TEST(CoordinatorJsonLine, GetIntegerChecksRange) {
  Json j = Json::parse(R"({"big":1e300,"neg":-1,"frac":2.5,"two":2.0,"u64":18446744073709551615,)"
                       R"("i32max":2147483647,"i32over":2147483648,"i32min":-2147483648,"s":"7",)"
                       R"("pow64":18446744073709551616.0})");
  EXPECT_EQ(GetInteger<int>(j, "big", -1), -1);
  EXPECT_EQ(GetInteger<uint32_t>(j, "big", 2), 2u);
  EXPECT_EQ(GetInteger<uint64_t>(j, "neg", 5), 5u);
  EXPECT_EQ(GetInteger<int64_t>(j, "neg"), -1);
  EXPECT_EQ(GetInteger<int>(j, "frac", 9), 9);
  EXPECT_EQ(GetInteger<uint32_t>(j, "two"), 2u);
  EXPECT_EQ(GetInteger<uint64_t>(j, "u64"), UINT64_MAX);
  EXPECT_EQ(GetInteger<int64_t>(j, "u64", 3), 3);
  EXPECT_EQ(GetInteger<int32_t>(j, "i32max"), INT32_MAX);
  EXPECT_EQ(GetInteger<int32_t>(j, "i32over", 4), 4);
  EXPECT_EQ(GetInteger<int32_t>(j, "i32min"), INT32_MIN);
  EXPECT_EQ(GetInteger<int>(j, "s", 6), 6);
  EXPECT_EQ(GetInteger<uint64_t>(j, "pow64", 8), 8u);
  EXPECT_EQ(GetInteger<int>(j, "missing", 11), 11);
  EXPECT_EQ(GetInteger<int>(Json::array(), "x", 12), 12);
}

// Found by tests/fuzz: nesting deep enough to overflow a recursive
// serializer is refused at the door.
TEST(CoordinatorJsonLine, DecodeRefusesDeepNesting) {
  std::string deep = "{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  auto d = DecodeLine(deep);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("malformed message"), std::string::npos);
  std::string ok = "{\"a\":" + std::string(60, '[') + std::string(60, ']') + "}";
  EXPECT_TRUE(DecodeLine(ok).ok());
}

TEST(CoordinatorPeerUid, ParsesProcNetTcpText) {
  // 127.0.0.1:40000 -> 127.0.0.1:7779, uid 1234 (little-endian words).
  const std::string text =
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
      "   0: 0100007F:1E63 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0\n"
      "   1: 0100007F:9C40 0100007F:1E63 01 00000000:00000000 00:00000000 00000000  1234        0 2 1 0\n";
  sockaddr_storage a{}, b{};
  auto* ia = reinterpret_cast<sockaddr_in*>(&a);
  ia->sin_family = AF_INET;
  ia->sin_port = htons(40000);
  ia->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  auto* ib = reinterpret_cast<sockaddr_in*>(&b);
  *ib = *ia;
  ib->sin_port = htons(7779);
  auto local = EndpointFromSockaddr(a), remote = EndpointFromSockaddr(b);
  ASSERT_TRUE(local && remote);
  EXPECT_EQ(EndpointToString(*local), "127.0.0.1:40000");
  auto uid = FindSocketUid(text, *local, *remote);
  ASSERT_TRUE(uid);
  EXPECT_EQ(*uid, 1234u);
  EXPECT_FALSE(FindSocketUid(text, *remote, *local));  // the listener has no remote
}

// A real loopback connection: listener on an ephemeral port.
struct Loopback {
  ScopedFd listener, client, server;
  uint16_t port = 0;
  void Listen() {
    listener.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_TRUE(listener.valid());
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    ASSERT_EQ(::listen(listener.get(), 4), 0);
    socklen_t len = sizeof sa;
    ASSERT_EQ(getsockname(listener.get(), reinterpret_cast<sockaddr*>(&sa), &len), 0);
    port = ntohs(sa.sin_port);
  }
  static ScopedFd Connect(uint16_t port) {
    ScopedFd c(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons(port);
    if (::connect(c.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) c.reset();
    return c;
  }
};

TEST(CoordinatorPeerUid, RealLoopbackConnectionIsOurs) {
  Loopback lb;
  ASSERT_NO_FATAL_FAILURE(lb.Listen());
  lb.client = Loopback::Connect(lb.port);
  ASSERT_TRUE(lb.client.valid());
  lb.server.reset(::accept4(lb.listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(lb.server.valid());
  auto uid = PeerUid(lb.server.get());
  ASSERT_TRUE(uid.ok()) << uid.status().message();
  EXPECT_EQ(*uid, ::getuid());
  // And the other way round (the client checking the server).
  auto uid2 = PeerUid(lb.client.get());
  ASSERT_TRUE(uid2.ok()) << uid2.status().message();
  EXPECT_EQ(*uid2, ::getuid());
}

TEST(CoordinatorPeerUid, ConnectionOfAnotherUserIsSeenAsSuch) {
  if (::getuid() != 0) GTEST_SKIP() << "needs root to connect as another uid";
  Loopback lb;
  ASSERT_NO_FATAL_FAILURE(lb.Listen());
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (::setuid(65534) != 0) ::_exit(2);
    ScopedFd c = Loopback::Connect(lb.port);
    char x = 'x';
    if (::write(ready[1], &x, 1) != 1) ::_exit(3);
    char y;
    ssize_t r = ::read(c.get(), &y, 1);  // stay connected until the parent closes
    (void)r;
    ::_exit(c.valid() ? 0 : 1);
  }
  ::close(ready[1]);
  lb.server.reset(::accept4(lb.listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(lb.server.valid());
  char x;
  ASSERT_EQ(::read(ready[0], &x, 1), 1);
  ::close(ready[0]);
  auto uid = PeerUid(lb.server.get());
  lb.server.reset();
  int st = 0;
  ::waitpid(pid, &st, 0);
  ASSERT_TRUE(uid.ok()) << uid.status().message();
  EXPECT_EQ(*uid, 65534u);
}

}  // namespace
}  // namespace stasis::coordinator
