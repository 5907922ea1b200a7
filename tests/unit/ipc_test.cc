// Unit tests of the IPC modules' pure parts and of their restore side on
// real kernel objects: sockets (state/sockets.h), shared memory
// (state/shmem.h), FIFOs (state/pipes.h), and the shared-object plan
// (restore/objects.h).
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>

#include "image/codec.h"
#include "restore/objects.h"
#include "test_images.h"
#include "state/pipes.h"
#include "state/shmem.h"
#include "state/sockets.h"

namespace stasis {
namespace {

using image::FileDescriptor;
using image::SocketInfo;

std::vector<uint8_t> Bytes(const std::string& s) { return {s.begin(), s.end()}; }

std::vector<uint8_t> Inet(const char* ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip, &a.sin_addr);
  auto* p = reinterpret_cast<uint8_t*>(&a);
  return {p, p + sizeof a};
}

std::vector<uint8_t> Unix(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.data(), path.size());
  auto* p = reinterpret_cast<uint8_t*>(&a);
  return {p, p + offsetof(sockaddr_un, sun_path) + path.size() + 1};
}

FileDescriptor SocketFd(int32_t fd, uint64_t ino, SocketInfo s) {
  FileDescriptor f;
  f.fd = fd;
  f.kind = FileDescriptor::Kind::kSocket;
  f.path = "socket:[" + std::to_string(ino) + "]";
  f.flags = O_RDWR;
  s.inode = ino;
  f.socket = std::move(s);
  return f;
}

SocketInfo Connected(int family, int type) {
  SocketInfo s;
  s.family = family;
  s.type = type;
  s.state = SocketInfo::State::kConnected;
  return s;
}

std::string ReadAll(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

TEST(Sockets, AddressText) {
  EXPECT_EQ(state::SocketAddressText(Inet("127.0.0.1", 5000)), "127.0.0.1:5000");
  EXPECT_EQ(state::SocketAddressText(Unix("/tmp/s")), "/tmp/s");
  std::vector<uint8_t> abstract = {AF_UNIX, 0, 0, 'x', 'y'};
  EXPECT_EQ(state::SocketAddressText(abstract), "@xy");
  EXPECT_EQ(state::SocketAddressText({AF_UNIX, 0}), "(unnamed)");
  EXPECT_EQ(state::SocketAddressText({}), "(none)");
}

TEST(Sockets, ConnectionPairs) {
  SocketInfo a = Connected(AF_UNIX, SOCK_STREAM), b = a;
  a.inode = 10;
  b.inode = 11;
  a.peer_inode = 11;
  b.peer_inode = 10;
  EXPECT_TRUE(state::IsConnectionPair(a, b));
  b.peer_inode = 12;
  EXPECT_FALSE(state::IsConnectionPair(a, b));

  SocketInfo c = Connected(AF_INET, SOCK_STREAM), d = c;
  c.local_addr = d.peer_addr = Inet("127.0.0.1", 5000);
  c.peer_addr = d.local_addr = Inet("127.0.0.1", 40000);
  EXPECT_TRUE(state::IsConnectionPair(c, d));
  d.local_addr = Inet("127.0.0.1", 40001);
  EXPECT_FALSE(state::IsConnectionPair(c, d));
  d.local_addr = c.peer_addr;
  d.type = SOCK_DGRAM;
  EXPECT_FALSE(state::IsConnectionPair(c, d));
}

TEST(Sockets, OutsidePeerWarnings) {
  SocketInfo c = Connected(AF_INET, SOCK_STREAM);
  c.local_addr = Inet("10.0.0.1", 40000);
  c.peer_addr = Inet("10.0.0.2", 27000);
  auto w = state::OutsidePeerWarnings({{2, SocketFd(5, 1, c)}});
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("pid 2 fd 5"), std::string::npos) << w[0];
  EXPECT_NE(w[0].find("10.0.0.2:27000"), std::string::npos) << w[0];
  c.shut_rd = true;  // the peer had closed: nothing to warn about
  EXPECT_TRUE(state::OutsidePeerWarnings({{2, SocketFd(5, 1, c)}}).empty());
}

TEST(Sockets, UnixPairRefilledInOrder) {
  SocketInfo a = Connected(AF_UNIX, SOCK_STREAM), b = a;
  a.queued = {Bytes("to a")};
  b.queued = {Bytes("to b")};
  b.shut_wr = true;  // b had shut down writing: a reads EOF after its bytes
  auto pair = state::CreateConnectedPair(a, O_RDWR, b, O_RDWR, -1);
  ASSERT_TRUE(pair.ok()) << pair.status().message();
  EXPECT_EQ(ReadAll((*pair)[0].get()), "to a");
  char buf[16];
  ssize_t n = recv((*pair)[1].get(), buf, sizeof buf, MSG_DONTWAIT);
  ASSERT_EQ(n, 4);
  EXPECT_EQ(std::string(buf, 4), "to b");
}

TEST(Sockets, DatagramBoundariesKept) {
  SocketInfo a = Connected(AF_UNIX, SOCK_DGRAM), b = a;
  a.queued = {Bytes("one"), Bytes("three")};
  auto pair = state::CreateConnectedPair(a, O_RDWR, b, O_RDWR | O_NONBLOCK, -1);
  ASSERT_TRUE(pair.ok()) << pair.status().message();
  char buf[16];
  EXPECT_EQ(recv((*pair)[0].get(), buf, sizeof buf, 0), 3);
  EXPECT_EQ(recv((*pair)[0].get(), buf, sizeof buf, 0), 5);
  EXPECT_EQ(fcntl((*pair)[1].get(), F_GETFL) & O_NONBLOCK, O_NONBLOCK);
}

TEST(Sockets, OutsideTcpConnectionReportsReset) {
  SocketInfo s = Connected(AF_INET, SOCK_STREAM);
  s.local_addr = Inet("10.0.0.1", 40000);
  s.peer_addr = Inet("10.0.0.2", 27000);
  std::string warning;
  auto fd = state::CreateSingleSocket(s, O_RDWR, &warning);
  ASSERT_TRUE(fd.ok()) << fd.status().message();
  EXPECT_NE(warning.find("connection reset"), std::string::npos) << warning;
  char c;
  errno = 0;
  EXPECT_EQ(read(fd->get(), &c, 1), -1);
  EXPECT_EQ(errno, ECONNRESET);
}

TEST(Sockets, ClosedPeerGivesDataThenEof) {
  SocketInfo s = Connected(AF_INET, SOCK_STREAM);
  s.local_addr = Inet("127.0.0.1", 40000);
  s.peer_addr = Inet("127.0.0.1", 40001);
  s.shut_rd = true;
  s.queued = {Bytes("last words")};
  std::string warning;
  auto fd = state::CreateSingleSocket(s, O_RDWR, &warning);
  ASSERT_TRUE(fd.ok()) << fd.status().message();
  EXPECT_TRUE(warning.empty()) << warning;
  EXPECT_EQ(ReadAll(fd->get()), "last words");
}

TEST(Sockets, ListenerBoundAgainOverStaleSocketFile) {
  char dir[] = "/tmp/stasis-ipc-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/sub/sock";  // sub/ is missing: created
  SocketInfo s;
  s.family = AF_UNIX;
  s.type = SOCK_STREAM;
  s.state = SocketInfo::State::kListening;
  s.local_addr = Unix(path);
  for (int round = 0; round < 2; ++round) {  // the second finds the first's socket file
    auto fd = state::CreateSingleSocket(s, O_RDWR, nullptr);
    ASSERT_TRUE(fd.ok()) << fd.status().message();
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    EXPECT_EQ(connect(c, reinterpret_cast<const sockaddr*>(s.local_addr.data()),
                      static_cast<socklen_t>(s.local_addr.size())), 0);
    close(c);
  }
  unlink(path.c_str());
  rmdir((std::string(dir) + "/sub").c_str());
  rmdir(dir);
}

TEST(Shmem, WhichSharedMappingsAreSaved) {
  const uint64_t dev = makedev(0, 1);
  EXPECT_NE(state::ShmemId("/dev/zero (deleted)", true, dev, 5), 0u);
  EXPECT_NE(state::ShmemId("", true, dev, 5), 0u);
  EXPECT_NE(state::ShmemId("/memfd:x (deleted)", true, dev, 5), 0u);
  EXPECT_NE(state::ShmemId("/SYSV00000000 (deleted)", true, dev, 5), 0u);
  EXPECT_NE(state::ShmemId("/dev/shm/sem.abc (deleted)", true, dev, 5), 0u);
  EXPECT_NE(state::ShmemId("/dev/shm/name", true, dev, 5), 0u);
  EXPECT_NE(state::ShmemId("/scratch/data (deleted)", true, dev, 5), 0u);
  EXPECT_EQ(state::ShmemId("/scratch/data", true, dev, 5), 0u);    // the file holds the data
  EXPECT_EQ(state::ShmemId("/dev/zero (deleted)", false, dev, 5), 0u);  // private
  EXPECT_EQ(state::ShmemId("[heap]", true, dev, 5), 0u);
  EXPECT_NE(state::ShmemId("", true, dev, 5), state::ShmemId("", true, dev, 6));
}

TEST(Shmem, ObjectCreatedAndFilled) {
  auto fd = state::CreateShmemObject("/dev/zero (deleted)", "", 3 * 4096);
  ASSERT_TRUE(fd.ok()) << fd.status().message();
  std::vector<image::ShmemRun> runs = {{4096, std::vector<uint8_t>(4096, 7)}};
  ASSERT_TRUE(state::FillShmemObject(fd->get(), runs, "test").ok());
  struct stat st;
  ASSERT_EQ(fstat(fd->get(), &st), 0);
  EXPECT_EQ(st.st_size, 3 * 4096);
  uint8_t b[2];
  ASSERT_EQ(pread(fd->get(), &b[0], 1, 0), 1);
  ASSERT_EQ(pread(fd->get(), &b[1], 1, 4096 + 100), 1);
  EXPECT_EQ(b[0], 0);
  EXPECT_EQ(b[1], 7);
}

TEST(Pipes, FifoRecreatedWithItsBytes) {
  char dir[] = "/tmp/stasis-fifo-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  state::PipeSpec spec;
  spec.fifo_path = std::string(dir) + "/fifo";  // missing: created by mkfifo
  spec.bytes = Bytes("in flight\n");
  spec.want[0] = spec.want[1] = true;
  spec.nonblock[1] = true;
  spec.what = "FIFO";
  auto ends = state::CreatePipe(spec);
  ASSERT_TRUE(ends.ok()) << ends.status().message();
  EXPECT_FALSE((*ends)[2]);
  EXPECT_EQ(fcntl((*ends)[0].get(), F_GETFL) & O_NONBLOCK, 0);
  EXPECT_EQ(fcntl((*ends)[1].get(), F_GETFL) & O_NONBLOCK, O_NONBLOCK);
  (*ends)[1].reset();
  EXPECT_EQ(ReadAll((*ends)[0].get()), "in flight\n");
  struct stat st;
  ASSERT_EQ(stat(spec.fifo_path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  unlink(spec.fifo_path.c_str());
  rmdir(dir);
}

image::ProcessImage Img(int32_t pid, int32_t ppid) { return testing::MinimalImage(pid, ppid); }

TEST(ObjectPlan, SocketsAndSharedMemory) {
  // 2 -> {3, 4}: a TCP listener in 2 (inherited by 3), a connection 3<->4,
  // an outside connection in 4, one shared anonymous area in 2 and 3.
  std::vector<image::ProcessImage> imgs = {Img(2, 1), Img(3, 2), Img(4, 2)};
  SocketInfo l;
  l.family = AF_INET;
  l.type = SOCK_STREAM;
  l.state = SocketInfo::State::kListening;
  l.local_addr = Inet("127.0.0.1", 5000);
  SocketInfo srv = Connected(AF_INET, SOCK_STREAM), cli = srv, out = srv;
  srv.local_addr = cli.peer_addr = Inet("127.0.0.1", 5000);
  srv.peer_addr = cli.local_addr = Inet("127.0.0.1", 40000);
  out.local_addr = Inet("10.0.0.1", 40002);
  out.peer_addr = Inet("10.0.0.2", 27000);
  imgs[0].fds = {SocketFd(3, 100, l)};
  imgs[1].fds = {SocketFd(3, 100, l), SocketFd(4, 101, srv)};
  imgs[2].fds = {SocketFd(5, 102, cli), SocketFd(6, 103, out)};
  image::MemoryArea shared;
  shared.start = 0x10000;
  shared.end = 0x12000;
  shared.kind = image::MemoryArea::Kind::kAnonShared;
  shared.name = "/dev/zero (deleted)";
  shared.shmem_id = 77;
  shared.file_offset = 4096;
  imgs[0].areas = {shared};
  imgs[1].areas = {shared};
  std::vector<restore::TreeProcess> procs;
  std::vector<const image::ProcessImage*> ptrs;
  for (const auto& i : imgs) {
    procs.push_back(restore::TreeProcessOf(i));
    ptrs.push_back(&i);
  }
  auto plan = restore::PlanTree(procs);
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  auto objects = restore::PlanObjects(*plan, ptrs);
  ASSERT_TRUE(objects.ok()) << objects.status().message();
  using K = restore::PlannedObject::Kind;
  std::vector<K> kinds;
  for (const auto& o : *objects) kinds.push_back(o.kind);
  // Shared memory, then listening/unconnected sockets, then connections.
  ASSERT_EQ(kinds, (std::vector<K>{K::kShmem, K::kSocket, K::kSocket, K::kSocketPair}));
  const auto& shm = (*objects)[0];
  EXPECT_EQ(shm.shmem_size, 3u * 4096);
  EXPECT_EQ(plan->nodes[shm.creator].pid, 2);  // common ancestor of 2 and 3
  EXPECT_EQ(shm.ends.size(), 2u);
  EXPECT_EQ((*objects)[1].ends.size(), 2u);  // the listener, held by 2 and 3
  const auto& pair = (*objects)[3];
  EXPECT_EQ(pair.creator, SIZE_MAX);  // sockets: the supervisor
  ASSERT_EQ(pair.ends.size(), 2u);
  EXPECT_TRUE(restore::IsPlannedFd(*objects, *plan, 2, 5));
  EXPECT_TRUE(restore::IsPlannedFd(*objects, *plan, 2, 6));
  EXPECT_FALSE(restore::IsPlannedFd(*objects, *plan, 0, 4));
}

TEST(ObjectPlan, EventfdSharedAcrossForkIsOneObject) {
  std::vector<image::ProcessImage> imgs = {Img(2, 1), Img(3, 2)};
  FileDescriptor e;
  e.fd = 4;
  e.kind = FileDescriptor::Kind::kEventfd;
  e.path = "anon_inode:[eventfd]";
  e.shared_pid = 2;
  e.shared_fd = 4;
  FileDescriptor private_one = e;
  private_one.fd = 5;
  private_one.shared_pid = 0;
  imgs[0].fds = {e, private_one};
  FileDescriptor dup = e;
  dup.fd = 7;  // the child's own number for it
  imgs[1].fds = {dup};
  std::vector<restore::TreeProcess> procs = {restore::TreeProcessOf(imgs[0]), restore::TreeProcessOf(imgs[1])};
  auto plan = restore::PlanTree(procs);
  ASSERT_TRUE(plan.ok());
  auto objects = restore::PlanObjects(*plan, {&imgs[0], &imgs[1]});
  ASSERT_TRUE(objects.ok()) << objects.status().message();
  ASSERT_EQ(objects->size(), 1u);  // the private eventfd stays with RestoreFiles
  const auto& o = (*objects)[0];
  EXPECT_EQ(o.kind, restore::PlannedObject::Kind::kAnon);
  EXPECT_EQ(plan->nodes[o.creator].pid, 2);
  EXPECT_EQ(o.desc[0]->fd, 4);  // recreated from the lowest holder's record
  ASSERT_EQ(o.ends.size(), 2u);
  EXPECT_TRUE(restore::IsPlannedFd(*objects, *plan, 1, 7));
  EXPECT_FALSE(restore::IsPlannedFd(*objects, *plan, 0, 5));
}

TEST(ObjectPlan, CodecKeepsSocketsAndSharedMemory) {
  image::ProcessImage img = Img(2, 1);
  SocketInfo s = Connected(AF_UNIX, SOCK_DGRAM);
  s.peer_inode = 9;
  s.local_addr = Unix("/tmp/x");
  s.queued = {Bytes("a"), Bytes("bc")};
  s.shut_rd = true;
  FileDescriptor f = SocketFd(3, 8, s);
  FileDescriptor m;
  m.fd = 4;
  m.kind = FileDescriptor::Kind::kRegular;
  m.path = "/memfd:x (deleted)";
  m.shmem_id = 5;
  m.shmem_size = 8192;
  m.shmem_data = {{4096, std::vector<uint8_t>(4096, 1)}};
  FileDescriptor ev;
  ev.fd = 6;
  ev.kind = FileDescriptor::Kind::kEventfd;
  ev.shared_pid = 3;
  ev.shared_fd = 9;
  img.fds = {f, m, ev};
  image::MemoryArea a;
  a.start = 0x1000;
  a.end = 0x2000;
  a.shmem_id = 5;
  img.areas = {a};
  auto back = image::MetadataFromJson(image::MetadataToJson(img));
  ASSERT_TRUE(back.ok()) << back.status().message();
  const SocketInfo& r = back->fds[0].socket;
  EXPECT_EQ(r.family, AF_UNIX);
  EXPECT_EQ(r.type, SOCK_DGRAM);
  EXPECT_EQ(r.state, SocketInfo::State::kConnected);
  EXPECT_EQ(r.inode, 8u);
  EXPECT_EQ(r.peer_inode, 9u);
  EXPECT_EQ(r.local_addr, s.local_addr);
  EXPECT_EQ(r.queued, s.queued);
  EXPECT_TRUE(r.shut_rd);
  EXPECT_EQ(back->fds[1].shmem_id, 5u);
  EXPECT_EQ(back->fds[1].shmem_size, 8192u);
  ASSERT_EQ(back->fds[1].shmem_data.size(), 1u);
  EXPECT_EQ(back->fds[1].shmem_data[0].offset, 4096u);
  EXPECT_EQ(back->areas[0].shmem_id, 5u);
  EXPECT_EQ(back->fds[2].shared_pid, 3);
  EXPECT_EQ(back->fds[2].shared_fd, 9);
}

}  // namespace
}  // namespace stasis
