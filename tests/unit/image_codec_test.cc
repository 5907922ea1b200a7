// Metadata codec: every field of model.h survives CBOR, bad input is an
// error (never an exception), and the display JSON is text-safe.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "image/codec.h"

namespace stasis::image {
namespace {

ProcessImage FullImage() {
  ProcessImage m;
  m.program = "python3";
  m.exe = "/usr/bin/python3.11";
  m.argv = {"python3", "-c", "print('hi \xc3\xa9')", ""};
  m.pid = 7;
  m.ppid = 1;
  m.pgid = 7;
  m.sid = 2;
  m.uid = 1000;
  m.gid = 1001;
  m.hostname = "node-17";
  m.kernel_release = "6.1.0-18-amd64";
  m.checkpoint_time = 1717171717.123456;
  m.generation = 42;
  m.job_id = "j1234";
  MemoryArea a;
  a.start = 0x400000;
  a.end = 0x402000;
  a.prot = 5;
  a.kind = MemoryArea::Kind::kFilePrivate;
  a.name = "/usr/bin/python3.11";
  a.file_offset = 0x1000;
  a.file_size = 123456;
  a.file_mtime_ns = -5;  // negative values must survive too
  m.areas.push_back(a);
  for (int k = 0; k <= 6; ++k) {
    MemoryArea b;
    b.start = 0x7f0000000000 + k * 0x10000;
    b.end = b.start + 0x3000;
    b.prot = static_cast<uint32_t>(k & 7);
    b.kind = static_cast<MemoryArea::Kind>(k);
    b.name = k == 0 ? "[heap]" : "";
    m.areas.push_back(b);
  }
  m.mm = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  m.auxv = {33, 0x7ffff7fc1000, 16, 0xbfebfbff, 0, 0, UINT64_MAX};
  m.vdso.vdso_start = 0x7ffff7fc1000;
  m.vdso.vdso_end = 0x7ffff7fc3000;
  for (int i = 0; i < 8192; ++i) m.vdso.vdso_bytes.push_back(static_cast<uint8_t>(i * 7));
  m.vdso.symbols = {{"__vdso_clock_gettime", 0xc10}, {"__vdso_getcpu", 0xc80}};
  for (int t = 0; t < 3; ++t) {
    Thread th;
    th.tid = 7 + t;
    th.comm = "worker" + std::to_string(t);
    th.sigframe_sp = 0x7ffe0000 + t;
    th.fs_base = 0x7ff000 + t;
    th.gs_base = 3 + t;
    th.clear_child_tid = 0x1230 + t;
    th.robust_list = 0x4560 + t;
    th.robust_list_len = 24;
    th.rseq_addr = 0x7890 + t;
    th.rseq_len = 32;
    th.rseq_sig = 0x53053053;
    th.sigmask = 1ull << 63 | t;
    PendingSignal ps;
    ps.signo = 10 + t;
    for (size_t i = 0; i < ps.siginfo.size(); ++i) ps.siginfo[i] = static_cast<uint8_t>(i + t);
    th.pending.push_back(ps);
    m.threads.push_back(th);
  }
  for (size_t i = 0; i < m.sigactions.size(); ++i)
    m.sigactions[i] = {i * 11, i * 13, i * 17, UINT64_MAX - i};
  PendingSignal sp;
  sp.signo = 14;
  sp.siginfo[0] = 14;
  sp.siginfo[127] = 0xff;
  m.shared_pending = {sp, sp};
  m.itimers = {IntervalTimer{1, 2}, IntervalTimer{3, 4}, IntervalTimer{5, 6}};
  m.cwd = "/home/u/work dir";
  m.umask = 027;
  m.personality = 0x0400000;
  for (size_t i = 0; i < m.rlimits.size(); ++i) m.rlimits[i] = {i, i == 3 ? UINT64_MAX : i * 2};
  m.caps = {1, 2, 3, 4, 5};
  for (int k = 0; k <= 7; ++k) {
    FileDescriptor f;
    f.fd = k;
    f.kind = static_cast<FileDescriptor::Kind>(k);
    f.flags = 02 | 02000;
    f.cloexec = k % 2;
    f.offset = 1000 + k;
    f.path = "/tmp/f" + std::to_string(k);
    f.size = 77 + k;
    f.mtime_ns = 1717171717000000000 + k;
    f.rdev = 0x8801 + k;
    f.stdio_alias = k < 3 ? k : -1;
    m.fds.push_back(f);
  }
  m.agent = {0x7ffff7f00000, 1023, "/opt/stasis/lib/stasis/0.1.0/libstasis_agent.so", "0.1.0 (git abc)"};
  return m;
}

void ExpectSamePending(const std::vector<PendingSignal>& a, const std::vector<PendingSignal>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].signo, b[i].signo);
    EXPECT_EQ(a[i].siginfo, b[i].siginfo);
  }
}

}  // namespace

// Shared with image_format_test.cc.
ProcessImage TestFullProcessImage() { return FullImage(); }

void ExpectSameImage(const ProcessImage& a, const ProcessImage& b) {
  EXPECT_EQ(a.program, b.program);
  EXPECT_EQ(a.exe, b.exe);
  EXPECT_EQ(a.argv, b.argv);
  EXPECT_EQ(a.pid, b.pid);
  EXPECT_EQ(a.ppid, b.ppid);
  EXPECT_EQ(a.pgid, b.pgid);
  EXPECT_EQ(a.sid, b.sid);
  EXPECT_EQ(a.uid, b.uid);
  EXPECT_EQ(a.gid, b.gid);
  EXPECT_EQ(a.hostname, b.hostname);
  EXPECT_EQ(a.kernel_release, b.kernel_release);
  EXPECT_EQ(a.checkpoint_time, b.checkpoint_time);
  EXPECT_EQ(a.generation, b.generation);
  EXPECT_EQ(a.job_id, b.job_id);
  ASSERT_EQ(a.areas.size(), b.areas.size());
  for (size_t i = 0; i < a.areas.size(); ++i) {
    const MemoryArea &x = a.areas[i], &y = b.areas[i];
    EXPECT_EQ(x.start, y.start);
    EXPECT_EQ(x.end, y.end);
    EXPECT_EQ(x.prot, y.prot);
    EXPECT_EQ(x.kind, y.kind);
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.file_offset, y.file_offset);
    EXPECT_EQ(x.file_size, y.file_size);
    EXPECT_EQ(x.file_mtime_ns, y.file_mtime_ns);
  }
  const MmLayout &p = a.mm, &q = b.mm;
  EXPECT_EQ(p.start_code, q.start_code);
  EXPECT_EQ(p.end_code, q.end_code);
  EXPECT_EQ(p.start_data, q.start_data);
  EXPECT_EQ(p.end_data, q.end_data);
  EXPECT_EQ(p.start_brk, q.start_brk);
  EXPECT_EQ(p.brk, q.brk);
  EXPECT_EQ(p.start_stack, q.start_stack);
  EXPECT_EQ(p.arg_start, q.arg_start);
  EXPECT_EQ(p.arg_end, q.arg_end);
  EXPECT_EQ(p.env_start, q.env_start);
  EXPECT_EQ(p.env_end, q.env_end);
  EXPECT_EQ(a.auxv, b.auxv);
  EXPECT_EQ(a.vdso.vdso_start, b.vdso.vdso_start);
  EXPECT_EQ(a.vdso.vdso_end, b.vdso.vdso_end);
  EXPECT_EQ(a.vdso.vdso_bytes, b.vdso.vdso_bytes);
  ASSERT_EQ(a.vdso.symbols.size(), b.vdso.symbols.size());
  for (size_t i = 0; i < a.vdso.symbols.size(); ++i) {
    EXPECT_EQ(a.vdso.symbols[i].name, b.vdso.symbols[i].name);
    EXPECT_EQ(a.vdso.symbols[i].offset, b.vdso.symbols[i].offset);
  }
  ASSERT_EQ(a.threads.size(), b.threads.size());
  for (size_t i = 0; i < a.threads.size(); ++i) {
    const Thread &x = a.threads[i], &y = b.threads[i];
    EXPECT_EQ(x.tid, y.tid);
    EXPECT_EQ(x.comm, y.comm);
    EXPECT_EQ(x.sigframe_sp, y.sigframe_sp);
    EXPECT_EQ(x.fs_base, y.fs_base);
    EXPECT_EQ(x.gs_base, y.gs_base);
    EXPECT_EQ(x.clear_child_tid, y.clear_child_tid);
    EXPECT_EQ(x.robust_list, y.robust_list);
    EXPECT_EQ(x.robust_list_len, y.robust_list_len);
    EXPECT_EQ(x.rseq_addr, y.rseq_addr);
    EXPECT_EQ(x.rseq_len, y.rseq_len);
    EXPECT_EQ(x.rseq_sig, y.rseq_sig);
    EXPECT_EQ(x.sigmask, y.sigmask);
    ExpectSamePending(x.pending, y.pending);
  }
  for (size_t i = 0; i < a.sigactions.size(); ++i) {
    EXPECT_EQ(a.sigactions[i].handler, b.sigactions[i].handler);
    EXPECT_EQ(a.sigactions[i].flags, b.sigactions[i].flags);
    EXPECT_EQ(a.sigactions[i].restorer, b.sigactions[i].restorer);
    EXPECT_EQ(a.sigactions[i].mask, b.sigactions[i].mask);
  }
  ExpectSamePending(a.shared_pending, b.shared_pending);
  for (size_t i = 0; i < a.itimers.size(); ++i) {
    EXPECT_EQ(a.itimers[i].interval_us, b.itimers[i].interval_us);
    EXPECT_EQ(a.itimers[i].value_us, b.itimers[i].value_us);
  }
  EXPECT_EQ(a.cwd, b.cwd);
  EXPECT_EQ(a.umask, b.umask);
  EXPECT_EQ(a.personality, b.personality);
  for (size_t i = 0; i < a.rlimits.size(); ++i) {
    EXPECT_EQ(a.rlimits[i].cur, b.rlimits[i].cur);
    EXPECT_EQ(a.rlimits[i].max, b.rlimits[i].max);
  }
  EXPECT_EQ(a.caps.inheritable, b.caps.inheritable);
  EXPECT_EQ(a.caps.permitted, b.caps.permitted);
  EXPECT_EQ(a.caps.effective, b.caps.effective);
  EXPECT_EQ(a.caps.bounding, b.caps.bounding);
  EXPECT_EQ(a.caps.ambient, b.caps.ambient);
  ASSERT_EQ(a.fds.size(), b.fds.size());
  for (size_t i = 0; i < a.fds.size(); ++i) {
    const FileDescriptor &x = a.fds[i], &y = b.fds[i];
    EXPECT_EQ(x.fd, y.fd);
    EXPECT_EQ(x.kind, y.kind);
    EXPECT_EQ(x.flags, y.flags);
    EXPECT_EQ(x.cloexec, y.cloexec);
    EXPECT_EQ(x.offset, y.offset);
    EXPECT_EQ(x.path, y.path);
    EXPECT_EQ(x.size, y.size);
    EXPECT_EQ(x.mtime_ns, y.mtime_ns);
    EXPECT_EQ(x.rdev, y.rdev);
    EXPECT_EQ(x.stdio_alias, y.stdio_alias);
  }
  EXPECT_EQ(a.agent.control_block, b.agent.control_block);
  EXPECT_EQ(a.agent.socket_fd, b.agent.socket_fd);
  EXPECT_EQ(a.agent.path, b.agent.path);
  EXPECT_EQ(a.agent.stasis_version, b.agent.stasis_version);
}

namespace {

TEST(ImageCodec, CborRoundTripEveryField) {
  const ProcessImage m = FullImage();
  std::vector<uint8_t> cbor = EncodeMetadata(m);
  auto back = DecodeMetadata(cbor.data(), cbor.size());
  ASSERT_TRUE(back.ok()) << back.status().message();
  ExpectSameImage(m, *back);
}

TEST(ImageCodec, DefaultImageRoundTrips) {
  const ProcessImage m;
  std::vector<uint8_t> cbor = EncodeMetadata(m);
  auto back = DecodeMetadata(cbor.data(), cbor.size());
  ASSERT_TRUE(back.ok()) << back.status().message();
  ExpectSameImage(m, *back);
}

TEST(ImageCodec, GarbageIsAnErrorNotAnException) {
  const uint8_t junk[] = {0xff, 0x00, 0x13, 0x37, 0x42};
  auto r = DecodeMetadata(junk, sizeof junk);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("CBOR"), std::string::npos) << r.status().message();
  auto e = DecodeMetadata(nullptr, 0);
  EXPECT_FALSE(e.ok());
}

// Found by tests/fuzz/metadata_fuzz.cc: 60 KB of nested one-element CBOR
// arrays (0x81 ...) overflowed the stack of the recursive CBOR reader.
TEST(ImageCodec, DeepNestingIsAnErrorNotACrash) {
  std::vector<uint8_t> deep(1 << 20, 0x81);
  deep.push_back(0x00);
  auto r = DecodeMetadata(deep.data(), deep.size());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("nested deeper than 64 levels"), std::string::npos) << r.status().message();
  // Nesting below the limit still decodes (to the wrong type: an error naming the root).
  std::vector<uint8_t> shallow(10, 0x81);
  shallow.push_back(0x00);
  auto s = DecodeMetadata(shallow.data(), shallow.size());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("expected an object"), std::string::npos) << s.status().message();
}

TEST(ImageCodec, WrongTypeNamesTheField) {
  nlohmann::json j = MetadataToJson(FullImage());
  j["threads"][1]["tid"] = "seven";
  auto r = MetadataFromJson(j);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("threads[1].tid"), std::string::npos) << r.status().message();

  j = MetadataToJson(FullImage());
  j["areas"][0]["kind"] = "teleporter";
  r = MetadataFromJson(j);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("teleporter"), std::string::npos) << r.status().message();

  j = MetadataToJson(FullImage());
  j["pid"] = -1ll - INT32_MAX - 10;  // out of int32 range
  EXPECT_FALSE(MetadataFromJson(j).ok());

  j = MetadataToJson(FullImage());
  j["rlimits"].push_back({{"cur", 1}, {"max", 1}});  // 17 > 16
  EXPECT_FALSE(MetadataFromJson(j).ok());
}

TEST(ImageCodec, UnknownKeysIgnoredMissingKeysDefault) {
  nlohmann::json j = MetadataToJson(FullImage());
  j["some_future_field"] = {1, 2, 3};
  j.erase("personality");
  auto r = MetadataFromJson(j);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->personality, 0u);
  EXPECT_EQ(r->pid, 7);
}

TEST(ImageCodec, DisplayJsonSummarisesBytesAndDumps) {
  ProcessImage m = FullImage();
  m.areas[1].stored_pages = 2;
  nlohmann::json j = ToJson(m);
  EXPECT_EQ(j["vdso"]["vdso_bytes"]["size"], 8192);
  EXPECT_EQ(j["vdso"]["vdso_bytes"]["xxh3"].get<std::string>().size(), 16u);
  EXPECT_EQ(j["threads"][0]["pending"][0]["siginfo"]["size"], 128);
  EXPECT_EQ(j["areas"][1]["stored_pages"], 2);
  EXPECT_EQ(j["areas"][0]["kind"], "file_private");
  EXPECT_EQ(j["fds"][3]["kind"], "tty");
  EXPECT_NO_THROW(j.dump());
}

}  // namespace
}  // namespace stasis::image
