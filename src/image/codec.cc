#include "image/codec.h"

#include "common/json_parse.h"
#include "image/format.h"

#include <xxhash.h>

#include <cstdio>
#include <cstdlib>
#include <limits>
#include <type_traits>

namespace stasis::image {
namespace {

using json = nlohmann::json;

constexpr const char* kAreaKinds[] = {"anon_private", "anon_shared", "file_private", "file_shared",
                                      "stack",        "vdso",        "vvar"};
constexpr const char* kSocketStates[] = {"unconnected", "listening", "connected"};
constexpr const char* kFdKinds[] = {"regular", "directory", "char_device", "tty",
                                    "pipe",    "fifo",      "socket",      "other",
                                    "eventfd", "timerfd",   "signalfd",    "epoll"};

json Bytes(const uint8_t* p, size_t n) { return json::binary(std::vector<uint8_t>(p, p + n)); }

std::string Hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// A saved file copy (SavedFile).  The checksum as hex: a JSON number would
// lose bits in tools that read numbers as doubles.
json EncodeSavedFile(const SavedFile& sf) {
  return {{"name", sf.name}, {"size", sf.size}, {"xxh3", Hex64(sf.xxh3)}, {"mode", sf.mode},
          {"deleted", sf.deleted}};
}

json BytesSummary(const uint8_t* p, size_t n) {
  return json{{"size", n}, {"xxh3", Hex64(XXH3_64bits(p, n))}};
}

// The state of an anon-inode descriptor, under the name of its kind; only
// for that kind and only when it is not a dup (same_file_as).
void EncodeAnonFd(const FileDescriptor& f, json* o) {
  if (f.same_file_as >= 0) {
    (*o)["same_file_as"] = f.same_file_as;
    return;
  }
  switch (f.kind) {
    case FileDescriptor::Kind::kEventfd:
      (*o)["eventfd"] = {{"count", f.eventfd.count}, {"semaphore", f.eventfd.semaphore}};
      break;
    case FileDescriptor::Kind::kTimerfd: {
      const TimerfdState& t = f.timerfd;
      (*o)["timerfd"] = {{"clockid", t.clockid},         {"ticks", t.ticks},
                         {"settime_flags", t.settime_flags}, {"value_ns", t.value_ns},
                         {"interval_ns", t.interval_ns}, {"clock_ns", t.clock_ns}};
      break;
    }
    case FileDescriptor::Kind::kSignalfd:
      (*o)["signalfd"] = {{"sigmask", f.signalfd.sigmask}};
      break;
    case FileDescriptor::Kind::kEpoll: {
      json targets = json::array();
      for (const EpollTarget& t : f.epoll.targets)
        targets.push_back({{"fd", t.fd}, {"events", t.events}, {"data", t.data}, {"restorable", t.restorable}});
      (*o)["epoll"] = {{"targets", std::move(targets)}};
      break;
    }
    default:
      break;
  }
}

// c_cc is small: shown as numbers in the display form.
json EncodeTerminal(const TerminalState& t, bool display) {
  json cc = display ? json(t.cc) : Bytes(t.cc.data(), t.cc.size());
  return {{"iflag", t.iflag},     {"oflag", t.oflag},
          {"cflag", t.cflag},     {"lflag", t.lflag},
          {"line", t.line},       {"cc", std::move(cc)},
          {"rows", t.rows},       {"cols", t.cols},
          {"xpixel", t.xpixel},   {"ypixel", t.ypixel},
          {"device", t.device},   {"controlling", t.controlling},
          {"foreground_pgid", t.foreground_pgid}};
}

// Builds the full model; `display` selects the text-safe summary of byte arrays.
json Encode(const ProcessImage& img, bool display) {
  auto bytes = [display](const uint8_t* p, size_t n) {
    return display ? BytesSummary(p, n) : Bytes(p, n);
  };
  auto pending = [&](const std::vector<PendingSignal>& v) {
    json a = json::array();
    for (const auto& s : v)
      a.push_back({{"signo", s.signo}, {"siginfo", bytes(s.siginfo.data(), s.siginfo.size())}});
    return a;
  };
  json j;
  j["program"] = img.program;
  j["exe"] = img.exe;
  j["argv"] = img.argv;
  j["pid"] = img.pid;
  j["ppid"] = img.ppid;
  j["pgid"] = img.pgid;
  j["sid"] = img.sid;
  json zombies = json::array();
  for (const auto& z : img.zombies) zombies.push_back({{"pid", z.pid}, {"exit_status", z.exit_status}});
  j["zombies"] = std::move(zombies);
  j["uid"] = img.uid;
  j["gid"] = img.gid;
  j["hostname"] = img.hostname;
  j["kernel_release"] = img.kernel_release;
  j["checkpoint_time"] = img.checkpoint_time;
  j["generation"] = img.generation;
  j["job_id"] = img.job_id;

  json areas = json::array();
  for (const auto& a : img.areas) {
    json o{{"start", a.start},         {"end", a.end},
           {"prot", a.prot},           {"kind", AreaKindName(a.kind)},
           {"name", a.name},           {"file_offset", a.file_offset},
           {"file_size", a.file_size}, {"file_mtime_ns", a.file_mtime_ns},
           {"shmem_id", a.shmem_id}};
    if (display) o["stored_pages"] = a.stored_pages;
    areas.push_back(std::move(o));
  }
  j["areas"] = std::move(areas);
  const MmLayout& m = img.mm;
  j["mm"] = {{"start_code", m.start_code}, {"end_code", m.end_code},   {"start_data", m.start_data},
             {"end_data", m.end_data},     {"start_brk", m.start_brk}, {"brk", m.brk},
             {"start_stack", m.start_stack}, {"arg_start", m.arg_start}, {"arg_end", m.arg_end},
             {"env_start", m.env_start},   {"env_end", m.env_end}};
  j["auxv"] = img.auxv;
  json syms = json::array();
  for (const auto& s : img.vdso.symbols) syms.push_back({{"name", s.name}, {"offset", s.offset}});
  j["vdso"] = {{"vdso_start", img.vdso.vdso_start},
               {"vdso_end", img.vdso.vdso_end},
               {"vdso_bytes", bytes(img.vdso.vdso_bytes.data(), img.vdso.vdso_bytes.size())},
               {"symbols", std::move(syms)}};

  json threads = json::array();
  for (const auto& t : img.threads) {
    threads.push_back({{"tid", t.tid},
                       {"comm", t.comm},
                       {"sigframe_sp", t.sigframe_sp},
                       {"fs_base", t.fs_base},
                       {"gs_base", t.gs_base},
                       {"clear_child_tid", t.clear_child_tid},
                       {"robust_list", t.robust_list},
                       {"robust_list_len", t.robust_list_len},
                       {"rseq_addr", t.rseq_addr},
                       {"rseq_len", t.rseq_len},
                       {"rseq_sig", t.rseq_sig},
                       {"sigmask", t.sigmask},
                       {"pending", pending(t.pending)}});
  }
  j["threads"] = std::move(threads);
  json acts = json::array();
  for (const auto& a : img.sigactions)
    acts.push_back({{"handler", a.handler}, {"flags", a.flags}, {"restorer", a.restorer}, {"mask", a.mask}});
  j["sigactions"] = std::move(acts);
  j["shared_pending"] = pending(img.shared_pending);
  json timers = json::array();
  for (const auto& t : img.itimers) timers.push_back({{"interval_us", t.interval_us}, {"value_us", t.value_us}});
  j["itimers"] = std::move(timers);

  j["cwd"] = img.cwd;
  j["umask"] = img.umask;
  j["personality"] = img.personality;
  json rl = json::array();
  for (const auto& r : img.rlimits) rl.push_back({{"cur", r.cur}, {"max", r.max}});
  j["rlimits"] = std::move(rl);
  const Capabilities& c = img.caps;
  j["caps"] = {{"inheritable", c.inheritable}, {"permitted", c.permitted}, {"effective", c.effective},
               {"bounding", c.bounding},       {"ambient", c.ambient}};
  json fds = json::array();
  for (const auto& f : img.fds) {
    json sock;  // null unless a socket
    if (f.kind == FileDescriptor::Kind::kSocket) {
      const SocketInfo& so = f.socket;
      json queued = json::array();
      for (const auto& q : so.queued) queued.push_back({{"bytes", bytes(q.data(), q.size())}});
      sock = {{"family", so.family},         {"type", so.type},
              {"protocol", so.protocol},     {"state", kSocketStates[static_cast<size_t>(so.state)]},
              {"inode", so.inode},           {"peer_inode", so.peer_inode},
              {"local_addr", bytes(so.local_addr.data(), so.local_addr.size())},
              {"peer_addr", bytes(so.peer_addr.data(), so.peer_addr.size())},
              {"backlog", so.backlog},       {"reuse_addr", so.reuse_addr},
              {"keep_alive", so.keep_alive}, {"no_delay", so.no_delay},
              {"shut_rd", so.shut_rd},       {"shut_wr", so.shut_wr},
              {"queued", std::move(queued)}};
    }
    fds.push_back({{"fd", f.fd},
                   {"kind", FdKindName(f.kind)},
                   {"flags", f.flags},
                   {"cloexec", f.cloexec},
                   {"offset", f.offset},
                   {"path", f.path},
                   {"size", f.size},
                   {"mtime_ns", f.mtime_ns},
                   {"ctime_ns", f.ctime_ns},
                   {"rdev", f.rdev},
                   {"stdio_alias", f.stdio_alias},
                   {"socket", std::move(sock)}});
    EncodeAnonFd(f, &fds.back());
    if (f.shared_pid != 0) fds.back()["shared_with"] = {{"pid", f.shared_pid}, {"fd", f.shared_fd}};
    if (f.shmem_id != 0) {
      json runs = json::array();
      for (const ShmemRun& r : f.shmem_data)
        runs.push_back({{"offset", r.offset}, {"bytes", bytes(r.bytes.data(), r.bytes.size())}});
      fds.back()["shmem"] = {{"id", f.shmem_id}, {"size", f.shmem_size}, {"data", std::move(runs)}};
    }
    if (f.terminal) fds.back()["terminal"] = EncodeTerminal(*f.terminal, display);
    if (f.saved) {
      fds.back()["saved"] = EncodeSavedFile(*f.saved);
    }
  }
  j["fds"] = std::move(fds);
  json pipes = json::array();
  for (const auto& pc : img.pipes)
    pipes.push_back({{"inode", pc.inode}, {"bytes", bytes(pc.bytes.data(), pc.bytes.size())}});
  j["pipes"] = std::move(pipes);
  if (!img.save_files.empty()) j["save_files"] = img.save_files;
  if (!img.saved_mappings.empty()) {
    json maps = json::array();
    for (const auto& m : img.saved_mappings)
      maps.push_back({{"path", m.path}, {"saved", EncodeSavedFile(m.saved)}});
    j["saved_mappings"] = std::move(maps);
  }
  if (!img.absent_files.empty()) j["absent_files"] = img.absent_files;
  if (!img.warnings.empty()) j["warnings"] = img.warnings;
  j["agent"] = {{"control_block", img.agent.control_block}, {"socket_fd", img.agent.socket_fd},
                {"path", img.agent.path}, {"stasis_version", img.agent.stasis_version}};
  return j;
}

// Decoding: each Get* leaves the target untouched when the key is absent
// and returns an error naming the field when it has the wrong type.
class Decoder {
 public:
  Status status;

  const json* Field(const json& obj, const char* key, const std::string& where) {
    if (!status.ok()) return nullptr;
    if (!obj.is_object()) {
      Fail(where, "expected an object");
      return nullptr;
    }
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return nullptr;
    return &*it;
  }

  template <typename T>
  void Get(const json& obj, const char* key, T* out, const std::string& where) {
    const json* v = Field(obj, key, where);
    if (!v) return;
    const std::string name = Join(where, key);
    if constexpr (std::is_same_v<T, bool>) {
      if (!v->is_boolean()) return Fail(name, "expected a boolean");
      *out = v->get<bool>();
    } else if constexpr (std::is_same_v<T, double>) {
      if (!v->is_number()) return Fail(name, "expected a number");
      *out = v->get<double>();
    } else if constexpr (std::is_integral_v<T>) {
      if (v->is_number_unsigned()) {
        uint64_t u = v->get<uint64_t>();
        if (std::is_signed_v<T> ? u > static_cast<uint64_t>(std::numeric_limits<T>::max())
                                : u > static_cast<uint64_t>(std::numeric_limits<T>::max()))
          return Fail(name, "integer out of range");
        *out = static_cast<T>(u);
      } else if (v->is_number_integer()) {
        int64_t s = v->get<int64_t>();
        if (std::is_unsigned_v<T> || s < static_cast<int64_t>(std::numeric_limits<T>::min()))
          return Fail(name, "integer out of range");
        *out = static_cast<T>(s);
      } else {
        return Fail(name, "expected an integer");
      }
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (!v->is_string()) return Fail(name, "expected a string");
      *out = v->get<std::string>();
    } else {
      static_assert(sizeof(T) == 0, "unsupported field type");
    }
  }

  // Calls fn(element, index, path) for each element of an array field.
  template <typename Fn>
  void Array(const json& obj, const char* key, const std::string& where, size_t max, Fn fn) {
    const json* v = Field(obj, key, where);
    if (!v) return;
    const std::string name = Join(where, key);
    if (!v->is_array()) return Fail(name, "expected an array");
    if (v->size() > max) return Fail(name, "too many elements (" + std::to_string(v->size()) + ")");
    for (size_t i = 0; i < v->size() && status.ok(); ++i)
      fn((*v)[i], i, name + "[" + std::to_string(i) + "]");
  }

  void Binary(const json& obj, const char* key, const std::string& where, uint8_t* out, size_t exact,
              std::vector<uint8_t>* vec) {
    const json* v = Field(obj, key, where);
    if (!v) return;
    const std::string name = Join(where, key);
    if (!v->is_binary()) return Fail(name, "expected a byte string");
    const auto& b = v->get_binary();
    if (vec) {
      vec->assign(b.begin(), b.end());
    } else {
      if (b.size() != exact)
        return Fail(name, "expected " + std::to_string(exact) + " bytes, got " + std::to_string(b.size()));
      std::copy(b.begin(), b.end(), out);
    }
  }

  template <typename E, size_t N>
  void Enum(const json& obj, const char* key, const std::string& where, const char* const (&names)[N],
            E* out) {
    std::string s;
    bool present = Field(obj, key, where) != nullptr;
    Get(obj, key, &s, where);
    if (!present || !status.ok()) return;
    for (size_t i = 0; i < N; ++i) {
      if (s == names[i]) {
        *out = static_cast<E>(i);
        return;
      }
    }
    Fail(Join(where, key), "unknown value \"" + s + "\"");
  }

  void Fail(const std::string& where, const std::string& what) {
    if (status.ok()) status = Status::Error("metadata " + (where.empty() ? std::string("root") : where) + ": " + what);
  }

 private:
  static std::string Join(const std::string& where, const char* key) {
    return where.empty() ? std::string(key) : where + "." + key;
  }
};

using ImageSavedMapping = ProcessImage::SavedMapping;

SavedFile DecodeSavedFile(Decoder& d, const json& sv, const std::string& q) {
  SavedFile sf;
  std::string hex;
  d.Get(sv, "name", &sf.name, q);
  d.Get(sv, "size", &sf.size, q);
  d.Get(sv, "xxh3", &hex, q);
  d.Get(sv, "mode", &sf.mode, q);
  d.Get(sv, "deleted", &sf.deleted, q);
  char* end = nullptr;
  sf.xxh3 = std::strtoull(hex.c_str(), &end, 16);
  if (d.status.ok() && (hex.empty() || hex.size() > 16 || *end != '\0'))
    d.Fail(q + ".xxh3", "expected up to 16 hex digits, got \"" + hex + "\"");
  // A name is a plain file inside the checkpoint directory, never a path.
  if (d.status.ok() && (sf.name.empty() || sf.name.find('/') != std::string::npos || sf.name[0] == '.'))
    d.Fail(q + ".name", "not a plain file name: \"" + sf.name + "\"");
  return sf;
}

void DecodePending(Decoder& d, const json& obj, const char* key, const std::string& where,
                   std::vector<PendingSignal>* out) {
  out->clear();
  d.Array(obj, key, where, 1 << 16, [&](const json& e, size_t, const std::string& p) {
    PendingSignal s;
    d.Get(e, "signo", &s.signo, p);
    d.Binary(e, "siginfo", p, s.siginfo.data(), s.siginfo.size(), nullptr);
    out->push_back(s);
  });
}

void DecodeAnonFd(Decoder& d, const json& e, const std::string& p, FileDescriptor* f) {
  d.Get(e, "same_file_as", &f->same_file_as, p);
  if (const json* v = d.Field(e, "eventfd", p)) {
    const std::string q = p + ".eventfd";
    d.Get(*v, "count", &f->eventfd.count, q);
    d.Get(*v, "semaphore", &f->eventfd.semaphore, q);
  }
  if (const json* v = d.Field(e, "timerfd", p)) {
    const std::string q = p + ".timerfd";
    TimerfdState& t = f->timerfd;
    d.Get(*v, "clockid", &t.clockid, q);
    d.Get(*v, "ticks", &t.ticks, q);
    d.Get(*v, "settime_flags", &t.settime_flags, q);
    d.Get(*v, "value_ns", &t.value_ns, q);
    d.Get(*v, "interval_ns", &t.interval_ns, q);
    d.Get(*v, "clock_ns", &t.clock_ns, q);
  }
  if (const json* v = d.Field(e, "signalfd", p)) d.Get(*v, "sigmask", &f->signalfd.sigmask, p + ".signalfd");
  if (const json* v = d.Field(e, "epoll", p)) {
    d.Array(*v, "targets", p + ".epoll", 1 << 20, [&](const json& t, size_t, const std::string& q) {
      EpollTarget et;
      d.Get(t, "fd", &et.fd, q);
      d.Get(t, "events", &et.events, q);
      d.Get(t, "data", &et.data, q);
      d.Get(t, "restorable", &et.restorable, q);
      f->epoll.targets.push_back(et);
    });
  }
}

}  // namespace

const char* AreaKindName(MemoryArea::Kind kind) {
  auto i = static_cast<size_t>(kind);
  return i < std::size(kAreaKinds) ? kAreaKinds[i] : "unknown";
}

const char* FdKindName(FileDescriptor::Kind kind) {
  auto i = static_cast<size_t>(kind);
  return i < std::size(kFdKinds) ? kFdKinds[i] : "unknown";
}

json MetadataToJson(const ProcessImage& img) { return Encode(img, /*display=*/false); }
json ToJson(const ProcessImage& img) { return Encode(img, /*display=*/true); }

StatusOr<ProcessImage> MetadataFromJson(const json& j) {
  ProcessImage img;
  Decoder d;
  const std::string r;  // root path
  if (!j.is_object()) return Status::Error("metadata: expected an object");
  d.Get(j, "program", &img.program, r);
  d.Get(j, "exe", &img.exe, r);
  d.Array(j, "argv", r, SIZE_MAX, [&](const json& e, size_t, const std::string& p) {
    if (!e.is_string()) return d.Fail(p, "expected a string");
    img.argv.push_back(e.get<std::string>());
  });
  d.Get(j, "pid", &img.pid, r);
  d.Get(j, "ppid", &img.ppid, r);
  d.Get(j, "pgid", &img.pgid, r);
  d.Get(j, "sid", &img.sid, r);
  // Absent in images written before zombies were recorded: none.
  d.Array(j, "zombies", r, 1 << 22, [&](const json& e, size_t, const std::string& p) {
    ZombieChild z;
    d.Get(e, "pid", &z.pid, p);
    d.Get(e, "exit_status", &z.exit_status, p);
    img.zombies.push_back(z);
  });
  d.Get(j, "uid", &img.uid, r);
  d.Get(j, "gid", &img.gid, r);
  d.Get(j, "hostname", &img.hostname, r);
  d.Get(j, "kernel_release", &img.kernel_release, r);
  d.Get(j, "checkpoint_time", &img.checkpoint_time, r);
  d.Get(j, "generation", &img.generation, r);
  d.Get(j, "job_id", &img.job_id, r);

  d.Array(j, "areas", r, SIZE_MAX, [&](const json& e, size_t, const std::string& p) {
    MemoryArea a;
    d.Get(e, "start", &a.start, p);
    d.Get(e, "end", &a.end, p);
    d.Get(e, "prot", &a.prot, p);
    d.Enum(e, "kind", p, kAreaKinds, &a.kind);
    d.Get(e, "name", &a.name, p);
    d.Get(e, "file_offset", &a.file_offset, p);
    d.Get(e, "shmem_id", &a.shmem_id, p);  // absent in older images: 0
    d.Get(e, "file_size", &a.file_size, p);
    d.Get(e, "file_mtime_ns", &a.file_mtime_ns, p);
    if (d.status.ok() && (a.end < a.start || a.start % kPageSize || a.end % kPageSize))
      d.Fail(p, "bad range");
    img.areas.push_back(std::move(a));
  });
  if (const json* m = d.Field(j, "mm", r)) {
    MmLayout& mm = img.mm;
    const std::string p = "mm";
    d.Get(*m, "start_code", &mm.start_code, p);
    d.Get(*m, "end_code", &mm.end_code, p);
    d.Get(*m, "start_data", &mm.start_data, p);
    d.Get(*m, "end_data", &mm.end_data, p);
    d.Get(*m, "start_brk", &mm.start_brk, p);
    d.Get(*m, "brk", &mm.brk, p);
    d.Get(*m, "start_stack", &mm.start_stack, p);
    d.Get(*m, "arg_start", &mm.arg_start, p);
    d.Get(*m, "arg_end", &mm.arg_end, p);
    d.Get(*m, "env_start", &mm.env_start, p);
    d.Get(*m, "env_end", &mm.env_end, p);
  }
  d.Array(j, "auxv", r, SIZE_MAX, [&](const json& e, size_t, const std::string& p) {
    if (!e.is_number_unsigned()) return d.Fail(p, "expected an unsigned integer");
    img.auxv.push_back(e.get<uint64_t>());
  });
  if (const json* v = d.Field(j, "vdso", r)) {
    const std::string p = "vdso";
    d.Get(*v, "vdso_start", &img.vdso.vdso_start, p);
    d.Get(*v, "vdso_end", &img.vdso.vdso_end, p);
    d.Binary(*v, "vdso_bytes", p, nullptr, 0, &img.vdso.vdso_bytes);
    d.Array(*v, "symbols", p, SIZE_MAX, [&](const json& e, size_t, const std::string& q) {
      VdsoInfo::Symbol s;
      d.Get(e, "name", &s.name, q);
      d.Get(e, "offset", &s.offset, q);
      img.vdso.symbols.push_back(std::move(s));
    });
  }

  d.Array(j, "threads", r, SIZE_MAX, [&](const json& e, size_t, const std::string& p) {
    Thread t;
    d.Get(e, "tid", &t.tid, p);
    d.Get(e, "comm", &t.comm, p);
    d.Get(e, "sigframe_sp", &t.sigframe_sp, p);
    d.Get(e, "fs_base", &t.fs_base, p);
    d.Get(e, "gs_base", &t.gs_base, p);
    d.Get(e, "clear_child_tid", &t.clear_child_tid, p);
    d.Get(e, "robust_list", &t.robust_list, p);
    d.Get(e, "robust_list_len", &t.robust_list_len, p);
    d.Get(e, "rseq_addr", &t.rseq_addr, p);
    d.Get(e, "rseq_len", &t.rseq_len, p);
    d.Get(e, "rseq_sig", &t.rseq_sig, p);
    d.Get(e, "sigmask", &t.sigmask, p);
    DecodePending(d, e, "pending", p, &t.pending);
    img.threads.push_back(std::move(t));
  });
  d.Array(j, "sigactions", r, img.sigactions.size(), [&](const json& e, size_t i, const std::string& p) {
    SignalAction& a = img.sigactions[i];
    d.Get(e, "handler", &a.handler, p);
    d.Get(e, "flags", &a.flags, p);
    d.Get(e, "restorer", &a.restorer, p);
    d.Get(e, "mask", &a.mask, p);
  });
  DecodePending(d, j, "shared_pending", r, &img.shared_pending);
  d.Array(j, "itimers", r, img.itimers.size(), [&](const json& e, size_t i, const std::string& p) {
    d.Get(e, "interval_us", &img.itimers[i].interval_us, p);
    d.Get(e, "value_us", &img.itimers[i].value_us, p);
  });

  d.Get(j, "cwd", &img.cwd, r);
  d.Get(j, "umask", &img.umask, r);
  d.Get(j, "personality", &img.personality, r);
  d.Array(j, "rlimits", r, img.rlimits.size(), [&](const json& e, size_t i, const std::string& p) {
    d.Get(e, "cur", &img.rlimits[i].cur, p);
    d.Get(e, "max", &img.rlimits[i].max, p);
  });
  if (const json* c = d.Field(j, "caps", r)) {
    const std::string p = "caps";
    d.Get(*c, "inheritable", &img.caps.inheritable, p);
    d.Get(*c, "permitted", &img.caps.permitted, p);
    d.Get(*c, "effective", &img.caps.effective, p);
    d.Get(*c, "bounding", &img.caps.bounding, p);
    d.Get(*c, "ambient", &img.caps.ambient, p);
  }
  d.Array(j, "fds", r, SIZE_MAX, [&](const json& e, size_t, const std::string& p) {
    FileDescriptor f;
    d.Get(e, "fd", &f.fd, p);
    d.Enum(e, "kind", p, kFdKinds, &f.kind);
    d.Get(e, "flags", &f.flags, p);
    d.Get(e, "cloexec", &f.cloexec, p);
    d.Get(e, "offset", &f.offset, p);
    d.Get(e, "path", &f.path, p);
    d.Get(e, "size", &f.size, p);
    d.Get(e, "mtime_ns", &f.mtime_ns, p);
    d.Get(e, "ctime_ns", &f.ctime_ns, p);  // absent in older images: 0
    d.Get(e, "rdev", &f.rdev, p);
    d.Get(e, "stdio_alias", &f.stdio_alias, p);
    if (const json* so = d.Field(e, "socket", p)) {
      const std::string q = p + ".socket";
      SocketInfo& s = f.socket;
      d.Get(*so, "family", &s.family, q);
      d.Get(*so, "type", &s.type, q);
      d.Get(*so, "protocol", &s.protocol, q);
      d.Enum(*so, "state", q, kSocketStates, &s.state);
      d.Get(*so, "inode", &s.inode, q);
      d.Get(*so, "peer_inode", &s.peer_inode, q);
      d.Binary(*so, "local_addr", q, nullptr, 0, &s.local_addr);
      d.Binary(*so, "peer_addr", q, nullptr, 0, &s.peer_addr);
      d.Get(*so, "backlog", &s.backlog, q);
      d.Get(*so, "reuse_addr", &s.reuse_addr, q);
      d.Get(*so, "keep_alive", &s.keep_alive, q);
      d.Get(*so, "no_delay", &s.no_delay, q);
      d.Get(*so, "shut_rd", &s.shut_rd, q);
      d.Get(*so, "shut_wr", &s.shut_wr, q);
      d.Array(*so, "queued", q, 1 << 20, [&](const json& m, size_t, const std::string& mp) {
        s.queued.emplace_back();
        d.Binary(m, "bytes", mp, nullptr, 0, &s.queued.back());
      });
    }
    DecodeAnonFd(d, e, p, &f);  // absent in older images: defaults
    if (const json* sw = d.Field(e, "shared_with", p)) {
      d.Get(*sw, "pid", &f.shared_pid, p + ".shared_with");
      d.Get(*sw, "fd", &f.shared_fd, p + ".shared_with");
    }
    if (const json* sh = d.Field(e, "shmem", p)) {
      const std::string q = p + ".shmem";
      d.Get(*sh, "id", &f.shmem_id, q);
      d.Get(*sh, "size", &f.shmem_size, q);
      d.Array(*sh, "data", q, SIZE_MAX, [&](const json& r, size_t, const std::string& rp) {
        ShmemRun run;
        d.Get(r, "offset", &run.offset, rp);
        d.Binary(r, "bytes", rp, nullptr, 0, &run.bytes);
        f.shmem_data.push_back(std::move(run));
      });
    }
    // Absent for non-terminals and in images written before terminals were recorded.
    if (const json* t = d.Field(e, "terminal", p)) {
      TerminalState ts;
      const std::string q = p + ".terminal";
      d.Get(*t, "iflag", &ts.iflag, q);
      d.Get(*t, "oflag", &ts.oflag, q);
      d.Get(*t, "cflag", &ts.cflag, q);
      d.Get(*t, "lflag", &ts.lflag, q);
      d.Get(*t, "line", &ts.line, q);
      d.Binary(*t, "cc", q, nullptr, 0, &ts.cc);
      d.Get(*t, "rows", &ts.rows, q);
      d.Get(*t, "cols", &ts.cols, q);
      d.Get(*t, "xpixel", &ts.xpixel, q);
      d.Get(*t, "ypixel", &ts.ypixel, q);
      d.Get(*t, "device", &ts.device, q);
      d.Get(*t, "controlling", &ts.controlling, q);
      d.Get(*t, "foreground_pgid", &ts.foreground_pgid, q);
      f.terminal = std::move(ts);
    }
    // Absent unless the file was saved (--save-files), and in older images.
    if (const json* sv = d.Field(e, "saved", p)) f.saved = DecodeSavedFile(d, *sv, p + ".saved");
    img.fds.push_back(std::move(f));
  });
  // Absent in images written before pipe contents were recorded: none.
  d.Array(j, "pipes", r, 1 << 16, [&](const json& e, size_t, const std::string& p) {
    PipeContents pc;
    d.Get(e, "inode", &pc.inode, p);
    d.Binary(e, "bytes", p, nullptr, 0, &pc.bytes);
    img.pipes.push_back(std::move(pc));
  });
  d.Array(j, "save_files", r, 1 << 12, [&](const json& e, size_t, const std::string& p) {
    if (!e.is_string()) return d.Fail(p, "expected a string");
    img.save_files.push_back(e.get<std::string>());
  });
  // Absent unless writable shared mappings were saved, and in older images.
  d.Array(j, "saved_mappings", r, 1 << 16, [&](const json& e, size_t, const std::string& p) {
    ImageSavedMapping m;
    d.Get(e, "path", &m.path, p);
    if (const json* sv = d.Field(e, "saved", p)) m.saved = DecodeSavedFile(d, *sv, p + ".saved");
    if (d.status.ok() && (m.path.empty() || m.path[0] != '/')) d.Fail(p + ".path", "not an absolute path");
    img.saved_mappings.push_back(std::move(m));
  });
  d.Array(j, "absent_files", r, 1 << 16, [&](const json& e, size_t, const std::string& p) {
    if (!e.is_string() || e.get<std::string>().empty() || e.get<std::string>()[0] != '/')
      return d.Fail(p, "expected an absolute path");
    img.absent_files.push_back(e.get<std::string>());
  });
  d.Array(j, "warnings", r, 1 << 16, [&](const json& e, size_t, const std::string& p) {
    if (!e.is_string()) return d.Fail(p, "expected a string");
    img.warnings.push_back(e.get<std::string>());
  });
  if (const json* a = d.Field(j, "agent", r)) {
    d.Get(*a, "control_block", &img.agent.control_block, "agent");
    d.Get(*a, "socket_fd", &img.agent.socket_fd, "agent");
    d.Get(*a, "path", &img.agent.path, "agent");
    d.Get(*a, "stasis_version", &img.agent.stasis_version, "agent");
  }
  if (!d.status.ok()) return d.status;
  return img;
}

std::vector<uint8_t> EncodeMetadata(const ProcessImage& img) {
  // to_cbor cannot fail on a value we built (no invalid UTF-8 checks in CBOR).
  return json::to_cbor(MetadataToJson(img));
}

StatusOr<ProcessImage> DecodeMetadata(const uint8_t* data, size_t size) {
  // Depth-limited: nlohmann's CBOR reader recurses per nesting level.
  auto j = ParseJsonLimited(data, size, json::input_format_t::cbor);
  if (!j.ok()) return j.status().With("metadata is not valid CBOR");
  try {
    return MetadataFromJson(*j);
  } catch (const std::exception& e) {  // defensive: get<>() on unexpected shapes
    return Status::Error(std::string("metadata: ") + e.what());
  }
}

}  // namespace stasis::image
