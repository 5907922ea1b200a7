#include "image/inspect.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <time.h>

#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "image/codec.h"
#include "image/reader.h"

namespace stasis::image {
namespace {

std::string Fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string Fmt(const char* f, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

std::string UtcTime(double t) {
  // The image says when; a crafted one may say 1e30 or NaN, and converting
  // a double outside time_t's range is undefined (found by tests/fuzz).
  if (!(t >= 0 && t < 253402300800.0)) return Fmt("(invalid time %g)", t);  // year 10000
  time_t secs = static_cast<time_t>(t);
  struct tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  int ms = static_cast<int>((t - static_cast<double>(secs)) * 1000);
  return Fmt("%s.%03d UTC", buf, ms < 0 ? 0 : ms);
}

std::string HumanBytes(uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? Fmt("%" PRIu64 " B", n) : Fmt("%.1f %s", v, units[u]);
}

std::string Prot(uint32_t p) {
  std::string s = "---";
  if (p & PROT_READ) s[0] = 'r';
  if (p & PROT_WRITE) s[1] = 'w';
  if (p & PROT_EXEC) s[2] = 'x';
  return s;
}

uint64_t FileSize(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

std::string Seconds(uint64_t ns) { return Fmt("%.6fs", static_cast<double>(ns) / 1e9); }

// A raw struct sockaddr for people: "127.0.0.1:5000", "[::1]:80", a path,
// "@abstract", "(unnamed)".
std::string AddressText(const std::vector<uint8_t>& a) {
  if (a.size() < sizeof(sa_family_t)) return "(none)";
  sa_family_t fam;
  std::memcpy(&fam, a.data(), sizeof fam);
  char ip[INET6_ADDRSTRLEN] = "";
  if (fam == AF_INET && a.size() >= sizeof(sockaddr_in)) {
    sockaddr_in s;
    std::memcpy(&s, a.data(), sizeof s);
    ::inet_ntop(AF_INET, &s.sin_addr, ip, sizeof ip);
    return Fmt("%s:%u", ip, ntohs(s.sin_port));
  }
  if (fam == AF_INET6 && a.size() >= sizeof(sockaddr_in6)) {
    sockaddr_in6 s;
    std::memcpy(&s, a.data(), sizeof s);
    ::inet_ntop(AF_INET6, &s.sin6_addr, ip, sizeof ip);
    return Fmt("[%s]:%u", ip, ntohs(s.sin6_port));
  }
  if (fam == AF_UNIX) {
    if (a.size() <= sizeof(sa_family_t)) return "(unnamed)";
    const char* p = reinterpret_cast<const char*>(a.data()) + sizeof(sa_family_t);
    const size_t n = a.size() - sizeof(sa_family_t);
    return p[0] == '\0' ? "@" + std::string(p + 1, n - 1) : std::string(p, strnlen(p, n));
  }
  return Fmt("(family %u)", fam);
}

// A socket's kind, state, addresses and queued data, one line.
void PrintSocket(const FileDescriptor& f, std::ostream& out) {
  const SocketInfo& s = f.socket;
  if (s.family == 0) return;
  const char* fam = s.family == AF_UNIX ? "unix" : s.family == AF_INET6 ? "inet6" : s.family == AF_INET ? "inet" : "?";
  const char* type = s.type == SOCK_STREAM ? "stream" : s.type == SOCK_DGRAM ? "dgram"
                     : s.type == SOCK_SEQPACKET ? "seqpacket" : "?";
  const char* state = s.state == SocketInfo::State::kListening   ? "listening"
                      : s.state == SocketInfo::State::kConnected ? "connected"
                                                                 : "unconnected";
  uint64_t queued = 0;
  for (const auto& q : s.queued) queued += q.size();
  out << Fmt("       %s %s %s %s", fam, type, state, AddressText(s.local_addr).c_str());
  if (s.state == SocketInfo::State::kConnected) out << " -> " << AddressText(s.peer_addr);
  if (queued != 0) out << Fmt(", %s queued", HumanBytes(queued).c_str());
  if (s.shut_rd) out << ", peer closed";
  out << "\n";
}

// The recreated state of an eventfd, timerfd, signalfd or epoll descriptor.
void PrintAnonFd(const FileDescriptor& f, std::ostream& out) {
  using K = FileDescriptor::Kind;
  if (f.same_file_as >= 0) {
    if (f.kind == K::kEventfd || f.kind == K::kTimerfd || f.kind == K::kSignalfd || f.kind == K::kEpoll)
      out << "         dup of fd " << f.same_file_as << "\n";
    return;
  }
  switch (f.kind) {
    case K::kEventfd:
      out << Fmt("         count %" PRIu64 "%s\n", f.eventfd.count, f.eventfd.semaphore ? " semaphore" : "");
      break;
    case K::kTimerfd: {
      const TimerfdState& t = f.timerfd;
      out << Fmt("         clock %d  ticks %" PRIu64 "  next in %s  interval %s  settime flags 0%o\n",
                 t.clockid, t.ticks, t.value_ns ? Seconds(t.value_ns).c_str() : "- (disarmed)",
                 Seconds(t.interval_ns).c_str(), static_cast<unsigned>(t.settime_flags));
      break;
    }
    case K::kSignalfd:
      out << Fmt("         sigmask 0x%016" PRIx64 "\n", f.signalfd.sigmask);
      break;
    case K::kEpoll:
      for (const EpollTarget& t : f.epoll.targets)
        out << Fmt("         target fd %d events 0x%x data 0x%" PRIx64 "%s\n", t.fd, t.events, t.data,
                   t.restorable ? "" : "  (not restorable)");
      if (f.epoll.targets.empty()) out << "         no targets\n";
      break;
    default:
      break;
  }
}

void PrintText(const ProcessImage& m, const ImageSummary* sum, uint64_t file_size, std::ostream& out) {
  out << "format version: " << (sum ? sum->format_version : kFormatVersion) << "\n";
  out << "program:        " << m.program << "\n";
  out << "exe:            " << m.exe << "\n";
  out << "argv:          ";
  for (const auto& a : m.argv) out << " " << nlohmann::json(a).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  out << "\n";
  out << "pid/ppid:       " << m.pid << " / " << m.ppid << "  (pgid " << m.pgid << ", sid " << m.sid << ")\n";
  out << "uid/gid:        " << m.uid << " / " << m.gid << "\n";
  out << "hostname:       " << m.hostname << "\n";
  out << "kernel:         " << m.kernel_release << "\n";
  out << "checkpoint at:  " << UtcTime(m.checkpoint_time) << "\n";
  out << "job id:         " << m.job_id << "\n";
  out << "generation:     " << m.generation << "\n";
  if (!m.agent.stasis_version.empty()) out << "stasis version: " << m.agent.stasis_version << "\n";
  if (!m.agent.path.empty()) out << "agent:          " << m.agent.path << "\n";
  out << "cwd:            " << m.cwd << "\n";

  out << "threads (" << m.threads.size() << "):\n";
  for (const auto& t : m.threads)
    out << Fmt("  tid %-8d %-16s fs_base 0x%" PRIx64 "\n", t.tid, t.comm.c_str(), t.fs_base);

  uint64_t mapped = 0;
  out << "memory areas (" << m.areas.size() << "):\n";
  for (const auto& a : m.areas) {
    mapped += a.size();
    out << Fmt("  %012" PRIx64 "-%012" PRIx64 " %s %-12s %10s  stored %8" PRIu64 " pages  %s\n", a.start, a.end,
               Prot(a.prot).c_str(), AreaKindName(a.kind), HumanBytes(a.size()).c_str(),
               sum ? a.stored_pages : 0, a.name.c_str());
  }
  out << "file descriptors (" << m.fds.size() << "):\n";
  for (const auto& f : m.fds) {
    out << Fmt("  %4d %-11s flags 0%o%s offset %" PRIu64 "  %s", f.fd, FdKindName(f.kind), f.flags,
               f.cloexec ? " cloexec" : "", f.offset, f.path.c_str());
    if (f.stdio_alias >= 0) out << "  (shares stdio " << f.stdio_alias << ")";
    if (f.saved) {
      out << Fmt("\n       saved%s: %s (%s, xxh3 %016" PRIx64 ")", f.saved->deleted ? " (deleted file)" : "",
                 f.saved->name.c_str(), HumanBytes(f.saved->size).c_str(), f.saved->xxh3);
    }
    if (f.terminal) {
      const TerminalState& t = *f.terminal;
      out << Fmt("\n       terminal %u:%u %ux%u %secho %sicanon", major(t.device), minor(t.device), t.rows,
                 t.cols, (t.lflag & ECHO) ? "" : "-", (t.lflag & ICANON) ? "" : "-");
      if (t.controlling) {
        out << (t.foreground_pgid > 0 ? Fmt(" controlling, foreground group %d", t.foreground_pgid)
                                      : std::string(" controlling, foreground group outside the job"));
      }
    }
    if (f.shmem_id != 0) out << Fmt("\n       shared memory %s, %zu saved run(s)", HumanBytes(f.shmem_size).c_str(), f.shmem_data.size());
    if (f.shared_pid != 0) out << Fmt("\n       shared with other processes (first holder: pid %d fd %d)", f.shared_pid, f.shared_fd);
    out << "\n";
    if (f.kind == FileDescriptor::Kind::kSocket) PrintSocket(f, out);
    PrintAnonFd(f, out);
  }
  for (const auto& sm : m.saved_mappings) {
    out << Fmt("shared mapping %s\n       saved: %s (%s, xxh3 %016" PRIx64 ")\n", sm.path.c_str(),
               sm.saved.name.c_str(), HumanBytes(sm.saved.size).c_str(), sm.saved.xxh3);
  }
  for (const auto& w : m.warnings) out << "not restored:   " << w << "\n";
  if (!m.save_files.empty()) {
    out << "save files:    ";
    for (const auto& p : m.save_files) out << " " << p;
    out << "\n";
  }
  out << "mapped memory:  " << HumanBytes(mapped) << "\n";
  if (sum) {
    out << "stored pages:   " << sum->stored_pages << " (" << HumanBytes(sum->raw_bytes) << ")\n";
    out << "file size:      " << HumanBytes(file_size) << " (" << file_size << " bytes)\n";
    double ratio = sum->stored_bytes ? static_cast<double>(sum->raw_bytes) / static_cast<double>(sum->stored_bytes) : 1.0;
    out << Fmt("compression:    %.2fx (page data %s -> %s)\n", ratio, HumanBytes(sum->raw_bytes).c_str(),
               HumanBytes(sum->stored_bytes).c_str());
    out << "integrity:      OK (" << sum->n_blocks << " blocks verified)\n";
  } else {
    out << "file size:      " << HumanBytes(file_size) << " (" << file_size << " bytes)\n";
  }
}

}  // namespace

Status InspectImage(const std::string& path, bool json, std::ostream& out) {
  auto reader = ImageReader::Open(path);
  if (!reader.ok()) {
    if (json) {
      out << nlohmann::json{{"path", path}, {"integrity", "failed"}, {"error", reader.status().message()}}.dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
          << "\n";
    } else {
      out << "integrity:      FAILED: " << reader.status().message() << "\n";
    }
    return reader.status();
  }
  ImageReader& r = **reader;
  auto sum = r.Verify();
  const uint64_t file_size = FileSize(path);
  if (json) {
    nlohmann::json j = ToJson(r.metadata());
    j["path"] = path;
    j["file_size"] = file_size;
    if (sum.ok()) {
      j["format_version"] = sum->format_version;
      j["blocks"] = sum->n_blocks;
      j["stored_pages"] = sum->stored_pages;
      j["raw_bytes"] = sum->raw_bytes;
      j["stored_bytes"] = sum->stored_bytes;
      uint64_t mapped = 0;
      for (const auto& a : r.metadata().areas) mapped += a.size();
      j["mapped_bytes"] = mapped;
      j["integrity"] = "ok";
    } else {
      j["integrity"] = "failed";
      j["error"] = sum.status().message();
    }
    out << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    PrintText(r.metadata(), sum.ok() ? &*sum : nullptr, file_size, out);
    if (!sum.ok()) out << "integrity:      FAILED: " << sum.status().message() << "\n";
  }
  return sum.status();
}

}  // namespace stasis::image
