// Writes the seed corpus of the fuzz targets (tests/fuzz/corpus/<target>/)
// with the project's own writers, so the seeds are real: small images from
// ImageWriter (zstd and uncompressed), their CBOR metadata blocks, manifests
// from WriteManifest, the protocol lines of coordinator/protocol.h and
// agent messages as the agent sends them.
//   make_corpus <corpus dir>          (run by hand; the output is checked in)
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "agent/agent_protocol.h"
#include "image/codec.h"
#include "image/manifest.h"
#include "image/writer.h"

namespace fs = std::filesystem;
using namespace stasis::image;

namespace {

void Put(const fs::path& file, const std::string& bytes) {
  fs::create_directories(file.parent_path());
  std::ofstream(file, std::ios::binary) << bytes;
}
std::string Str(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }
std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A process with every kind of state the model has, all small.
ProcessImage RichImage() {
  ProcessImage img;
  img.program = "sim";
  img.exe = "/usr/bin/sim";
  img.argv = {"sim", "--steps", "10"};
  img.pid = 2, img.ppid = 1, img.pgid = 2, img.sid = 1;
  img.zombies = {{5, 0x100}};
  img.uid = 1000, img.gid = 1000;
  img.hostname = "node1";
  img.kernel_release = "6.1.0";
  img.checkpoint_time = 1.7e9;
  img.generation = 3;
  img.job_id = "a1b2c3d4";
  img.areas = {{0x400000, 0x402000, 5, MemoryArea::Kind::kFilePrivate, "/usr/bin/sim", 0, 8192, 1, 0, 0},
               {0x10000000, 0x10004000, 3, MemoryArea::Kind::kAnonPrivate, "[heap]"},
               {0x7ff000000000, 0x7ff000002000, 3, MemoryArea::Kind::kStack, "[stack]"},
               {0x7ff100000000, 0x7ff100001000, 3, MemoryArea::Kind::kAnonShared, "/dev/zero (deleted)", 0, 0, 0, 9},
               {0x7ff200000000, 0x7ff200002000, 5, MemoryArea::Kind::kVdso, "[vdso]"}};
  img.mm.start_brk = 0x10000000, img.mm.brk = 0x10004000;
  img.auxv = {6, 4096, 0, 0};
  img.vdso = {0x7ff200000000, 0x7ff200002000, {0x7f, 'E', 'L', 'F'}, {{"__vdso_clock_gettime", 0x800}}};
  Thread t;
  t.tid = 2, t.comm = "sim", t.fs_base = 0x7ff0000010000, t.sigmask = 1;
  t.pending.push_back({10, {}});
  img.threads = {t, t};
  img.threads[1].tid = 3;
  img.sigactions[9] = {0x401000, 0x4000000, 0x401100, 0};
  img.shared_pending.push_back({15, {}});
  img.itimers[0] = {1000, 500};
  img.cwd = "/home/u";
  img.rlimits[7] = {1024, 4096};
  img.caps.bounding = ~0ull;
  FileDescriptor reg;
  reg.fd = 3, reg.kind = FileDescriptor::Kind::kRegular, reg.path = "/home/u/out.dat", reg.size = 10;
  reg.saved = SavedFile{"saved_a1b2c3d4_0000000000000001_000003.data", 10, 0x1234, 0644, true};
  FileDescriptor tty;
  tty.fd = 0, tty.kind = FileDescriptor::Kind::kTty, tty.path = "/dev/pts/1";
  tty.terminal = TerminalState{0x500, 5, 0xbf, 0x8a3b, 0, {3, 28, 127}, 24, 80, 0, 0, 0x8801, true, 2};
  FileDescriptor sock;
  sock.fd = 4, sock.kind = FileDescriptor::Kind::kSocket;
  sock.socket.family = 1, sock.socket.type = 1, sock.socket.state = SocketInfo::State::kConnected;
  sock.socket.local_addr = {1, 0, 'a'}, sock.socket.queued = {{'h', 'i'}};
  FileDescriptor efd, tfd, sfd, ep, pipe, shm;
  efd.fd = 5, efd.kind = FileDescriptor::Kind::kEventfd, efd.eventfd = {7, true};
  tfd.fd = 6, tfd.kind = FileDescriptor::Kind::kTimerfd, tfd.timerfd = {1, 2, 0, 1000, 1000, 5};
  sfd.fd = 7, sfd.kind = FileDescriptor::Kind::kSignalfd, sfd.signalfd.sigmask = 1 << 9;
  ep.fd = 8, ep.kind = FileDescriptor::Kind::kEpoll, ep.epoll.targets = {{5, 1, 42, true}};
  pipe.fd = 9, pipe.kind = FileDescriptor::Kind::kPipe, pipe.path = "pipe:[77]", pipe.same_file_as = -1;
  shm.fd = 10, shm.kind = FileDescriptor::Kind::kRegular, shm.path = "/memfd:x (deleted)", shm.shmem_id = 9,
  shm.shmem_size = 4096, shm.shmem_data = {{0, std::vector<uint8_t>(16, 1)}}, shm.shared_pid = 3, shm.shared_fd = 4;
  img.fds = {tty, reg, sock, efd, tfd, sfd, ep, pipe, shm};
  img.pipes = {{77, {'x', 'y'}}};
  img.save_files = {"/home/u/out.dat"};
  img.agent = {0x7ff300000000, 1023};
  return img;
}

ProcessImage TinyImage() {
  ProcessImage img;
  img.program = "t";
  img.pid = 1;
  img.areas = {{0x1000, 0x4000, 3, MemoryArea::Kind::kAnonPrivate, ""}};
  Thread t;
  t.tid = 1;
  img.threads = {t};
  return img;
}

// Writes an image with `pages` pages into area `area` and returns its bytes.
std::string WriteImage(const fs::path& tmp, const ProcessImage& img, const char* compression,
                       uint32_t area, uint32_t pages) {
  auto spec = CompressionSpec::Parse(compression);
  auto w = ImageWriter::Create(tmp.string(), *spec, 0);
  if (!w.ok() || !(*w)->SetMetadata(img).ok()) std::abort();
  std::vector<uint8_t> data(pages * kPageSize);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7 / 4096);
  if (pages && !(*w)->AddPages(area, 0, data.data(), pages).ok()) std::abort();
  if (!(*w)->Commit().ok()) std::abort();
  std::string bytes = Slurp(tmp);
  fs::remove(tmp);
  return bytes;
}

std::string AgentMsg(stasis::agent::MsgType type, int32_t pid, uint64_t gen, const char* text) {
  stasis::agent::Message m;
  std::memset(&m, 0, sizeof m);
  m.type = type;
  m.version = stasis::agent::kProtocolVersion;
  m.pid = pid;
  m.ppid = 1;
  m.generation = gen;
  m.n_threads = 1;
  m.control_block = 0x7ff300000000;
  std::snprintf(m.text, sizeof m.text, "%s", text);
  return std::string(1, '\0') + std::string(reinterpret_cast<const char*>(&m), sizeof m);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus dir>\n", argv[0]);
    return 2;
  }
  const fs::path out = argv[1];
  const fs::path tmp = fs::temp_directory_path() / ("stasis-corpus-" + std::to_string(getpid()) + ".stasis");

  // Image reader: flag byte 1 (fix checksums) + a real file.
  const std::string flag(1, '\1');
  Put(out / "image_reader/rich_zstd", flag + WriteImage(tmp, RichImage(), "zstd:1", 1, 2));
  Put(out / "image_reader/rich_none", flag + WriteImage(tmp, RichImage(), "none", 0, 1));
  Put(out / "image_reader/tiny_zstd", flag + WriteImage(tmp, TinyImage(), "zstd", 0, 3));
  Put(out / "image_reader/tiny_nopages", flag + WriteImage(tmp, TinyImage(), "none", 0, 0));
  Put(out / "image_reader/tiny_raw", std::string(1, '\0') + WriteImage(tmp, TinyImage(), "none", 0, 1));

  // Metadata blocks.
  Put(out / "metadata/rich", Str(EncodeMetadata(RichImage())));
  Put(out / "metadata/tiny", Str(EncodeMetadata(TinyImage())));
  Put(out / "metadata/empty", Str(EncodeMetadata(ProcessImage{})));

  // Manifests, as WriteManifest writes them.
  Manifest m;
  m.job_id = "a1b2c3d4", m.generation = 3, m.time = 1.7e9, m.hostname = "node1", m.interval = 60;
  m.processes = {{2, 1, "sim", "ckpt_sim_a1b2c3d4_2_000003.stasis", 123456},
                 {3, 2, "helper", "ckpt_helper_a1b2c3d4_3_000003.stasis", 4096}};
  const fs::path mdir = fs::temp_directory_path() / ("stasis-corpus-" + std::to_string(getpid()));
  fs::create_directories(mdir);
  if (!WriteManifest(mdir.string(), m).ok()) std::abort();
  Put(out / "manifest/two_processes", Slurp(mdir / ManifestFileName(3)));
  m.processes.resize(1), m.keep = 1, m.compression = "none", m.generation = 1;
  if (!WriteManifest(mdir.string(), m).ok()) std::abort();
  Put(out / "manifest/one_process", Slurp(mdir / ManifestFileName(1)));
  fs::remove_all(mdir);

  // Coordinator lines (protocol.h), fed in 16-byte pieces.
  const std::string piece(1, '\x0f');
  Put(out / "coordinator_line/supervisor_hello",
      piece + R"({"type":"hello","role":"supervisor","version":1,"job_id":"a1b2c3d4","host":"node1",)"
              R"("supervisor_pid":4242,"program":"sim","ckptdir":"/tmp/ck","interval":30,"keep":2,)"
              R"("compression":"zstd:1","restarted":false,"generation":0})" "\n"
              R"({"type":"processes","processes":[{"pid":2,"program":"sim"}]})" "\n"
              R"({"type":"quiesce","ok":true})" "\n"
              R"({"type":"dump","ok":true,"processes":[{"pid":2,"ppid":1,"program":"sim",)"
              R"("image":"ckpt_sim_a1b2c3d4_2_000001.stasis","image_size":8192}]})" "\n"
              R"({"type":"checkpoint_request","kill":true,"pid":2,"program":"sim","signal":"USR1"})" "\n"
              R"({"type":"exited","status":0})" "\n");
  Put(out / "coordinator_line/client",
      piece + R"({"type":"hello","role":"client","version":1})" "\r\n"
              R"({"type":"checkpoint","kill":false})" "\n" R"({"type":"status"})" "\n"
              R"({"type":"set_interval","interval":1.5})" "\n" R"({"type":"await_stop"})" "\n"
              R"({"type":"quit"})" "\n\n");
  Put(out / "coordinator_line/replies",
      std::string(1, '\x40') +
          R"({"ok":false,"error":"x","error_code":"wrong_user","uid":0})" "\n"
          R"({"ok":true,"generation":1,"manifest":"/tmp/ck/stasis_manifest_000001.json","bytes":8192,)"
          R"("seconds":0.25,"images":["/tmp/ck/a.stasis"]})" "\n"
          R"({"ok":true,"job_id":null,"state":"idle","interval":0,"supervisors":0,"last_checkpoint":null})" "\n");

  // Agent messages: hello, quiesce replies, a failure, a checkpoint request,
  // a second connection of the same pid (an exec), reads in between.
  using stasis::agent::MsgType;
  Put(out / "agent_message/hello_quiesced",
      AgentMsg(MsgType::kHello, 2, 0, "sim") + std::string(1, '\3') + AgentMsg(MsgType::kQuiesced, 2, 7, "") +
          AgentMsg(MsgType::kCheckpointRequest, 2, 0, "USR1"));
  Put(out / "agent_message/exec_reconnect",
      AgentMsg(MsgType::kHello, 2, 0, "sim") + std::string(1, '\2') + AgentMsg(MsgType::kHello, 2, 0, "sim2") +
          std::string(1, '\3') + AgentMsg(MsgType::kFailed, 2, 7, "thread 3 did not park") +
          std::string(1, '\x09') + "ab");
  return 0;
}
