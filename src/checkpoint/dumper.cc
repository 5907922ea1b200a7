// The dumper: writes the image of one quiesced process.
//
// Order, and why:
//   1. Open /proc/<pid>/mem (ProcTarget) -- fails early if the process is gone.
//   2. Read the agent's ControlBlock from the target's memory and check its
//      magic and version: everything per-thread and per-signal comes from it.
//   3. Capture memory areas (/proc/<pid>/maps) minus excluded ranges (a
//      previous restorer region the agent has not unmapped yet), then the
//      vDSO (needs the areas), threads, signals, file descriptors (minus the
//      agent's socket; stdio judged against the job's; files selected by
//      --save-files and files written in place (written_files.h: open for
//      writing, writable shared mappings) copied into the checkpoint
//      directory), its sockets and the
//      bytes in flight in its pipes (need the descriptors), process attributes (needs the
//      areas for brk) and unreaped children.
//      All of this is read-only: a failure leaves the process untouched.
//   4. Only then create <path>.tmp, write the metadata, stream the pages
//      (state::DumpPages reads /proc/<pid>/mem) and Commit (fsync, rename).
//      Capturing first means a process we cannot describe never costs a
//      partly written image; any failure destroys the uncommitted writer,
//      which removes the temp file, so an older image at <path> survives.
#include "checkpoint/dumper.h"

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <memory>

#include "agent/control_block.h"
#include "common/version.h"
#include "state/files.h"
#include "state/losses.h"
#include "state/memory.h"
#include "state/proc_target.h"
#include "state/pipes.h"
#include "state/process.h"
#include "state/signals.h"
#include "state/sockets.h"
#include "state/threads.h"
#include "state/vdso.h"

namespace stasis::checkpoint {
namespace {

std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

// Reads the control block at `addr`: the fixed header, then only the thread
// records in use (the full struct is over a megabyte).
StatusOr<std::unique_ptr<agent::ControlBlock>> ReadControlBlock(const state::ProcTarget& target,
                                                                uint64_t addr) {
  if (addr == 0) return Status::Error("no agent control block address (agent not connected?)");
  auto cb = std::make_unique<agent::ControlBlock>();
  const size_t header = offsetof(agent::ControlBlock, threads);
  Status st = target.ReadMemory(addr, cb.get(), header);
  if (!st.ok()) return st.With("reading the agent control block");
  if (cb->magic != agent::kControlBlockMagic) {
    return Status::Error("agent control block at " + Hex(addr) + ": bad magic " + Hex(cb->magic) +
                         " (expected " + Hex(agent::kControlBlockMagic) + ")");
  }
  if (cb->version != agent::kControlBlockVersion) {
    return Status::Error("agent control block version " + std::to_string(cb->version) +
                         ", this stasis understands version " +
                         std::to_string(agent::kControlBlockVersion) +
                         " (agent library and stasis binary do not match)");
  }
  if (cb->n_threads < 1 || cb->n_threads > agent::kMaxThreads) {
    return Status::Error("agent control block lists " + std::to_string(cb->n_threads) + " threads");
  }
  st = target.ReadMemory(addr + header, cb->threads,
                         sizeof(agent::ThreadRecord) * static_cast<size_t>(cb->n_threads));
  if (!st.ok()) return st.With("reading the agent's thread records");
  return cb;
}

StatusOr<DumpResult> Dump(const DumpRequest& req) {
  const auto t0 = std::chrono::steady_clock::now();

  ASSIGN_OR_RETURN(state::ProcTarget target, state::ProcTarget::Open(req.pid));
  ASSIGN_OR_RETURN(std::unique_ptr<agent::ControlBlock> cb_owner,
                   ReadControlBlock(target, req.control_block));
  const agent::ControlBlock& cb = *cb_owner;
  if (req.generation != 0 && cb.generation != 0 && cb.generation != req.generation) {
    return Status::Error("agent quiesced for checkpoint " + std::to_string(cb.generation) +
                         ", not " + std::to_string(req.generation));
  }

  image::ProcessImage img;
  std::vector<std::pair<uint64_t, uint64_t>> exclude = req.exclude;
  if (cb.restart.restorer_len != 0) exclude.emplace_back(cb.restart.restorer_start, cb.restart.restorer_len);
  auto areas = state::CaptureAreas(target, exclude);
  if (!areas.ok()) return areas.status().With("memory areas");
  img.areas = std::move(areas).value();

  auto vdso = state::CaptureVdso(target, img.areas);
  if (!vdso.ok()) return vdso.status().With("vDSO");
  img.vdso = std::move(vdso).value();

  auto threads = state::CaptureThreads(target, cb);
  if (!threads.ok()) return threads.status().With("threads");
  img.threads = std::move(threads).value();

  state::CaptureSignals(cb, &img);

  auto fds = state::CaptureFiles(target, cb.socket_fd);
  if (!fds.ok()) return fds.status().With("file descriptors");
  img.fds = std::move(fds).value();
  // This supervisor's stdio is the job's (the launching command's).
  state::RelateStdioToJob(target.pid, static_cast<int32_t>(::getpid()), &img);
  if (req.saver != nullptr) {  // after RelateStdioToJob: stdio is never saved
    RETURN_IF_ERROR(req.saver->Save(target, &img.fds).With("saved files"));
    RETURN_IF_ERROR(req.saver->SaveMappings(target, img.areas, &img.saved_mappings).With("saved files"));
    img.absent_files = req.saver->AbsentJournals();
    img.save_files = req.saver->patterns();
  }

  RETURN_IF_ERROR(state::CaptureSockets(target, &img.fds).With("sockets"));
  RETURN_IF_ERROR(state::CaptureShmemFds(target, &img.fds, req.shmem_done).With("shared memory"));

  auto pipes = state::CapturePipes(target, img.fds);  // needs the descriptors
  if (!pipes.ok()) return pipes.status().With("pipe contents");
  img.pipes = std::move(pipes).value();

  RETURN_IF_ERROR(state::CaptureProcess(target, cb, &img).With("process attributes"));

  auto zombies = state::CaptureZombies(target.pid);
  if (!zombies.ok()) return zombies.status().With("unreaped children");
  img.zombies = std::move(zombies).value();

  img.generation = req.generation;
  img.job_id = req.job_id;
  img.checkpoint_time = std::chrono::duration<double>(
      std::chrono::system_clock::now().time_since_epoch()).count();
  img.agent.control_block = req.control_block;
  img.agent.socket_fd = cb.socket_fd;
  img.agent.stasis_version = StasisVersion();
  // The agent this process really maps (a job restarted by a newer Stasis
  // still runs the agent of the version that launched it).
  for (const image::MemoryArea& a : img.areas) {
    const std::string kAgent = "/libstasis_agent.so";
    if (a.name.size() > kAgent.size() &&
        a.name.compare(a.name.size() - kAgent.size(), kAgent.size(), kAgent) == 0) {
      img.agent.path = a.name;
      break;
    }
  }

  img.warnings = state::RestartLosses(img);

  DumpResult result;
  result.warnings = img.warnings;
  for (const image::MemoryArea& a : img.areas) result.memory_bytes += a.size();
  result.program = img.program;
  result.ppid = img.ppid;
  for (const image::FileDescriptor& f : img.fds)
    if (f.kind == image::FileDescriptor::Kind::kSocket) result.sockets.push_back(f);

  ASSIGN_OR_RETURN(std::unique_ptr<image::ImageWriter> writer,
                   image::ImageWriter::Create(req.path, req.compression, req.worker_threads));
  RETURN_IF_ERROR(writer->SetMetadata(img).With("writing metadata"));
  auto pages = state::DumpPages(target, img.areas, *writer, req.shmem_done);
  if (!pages.ok()) return pages.status().With("memory pages");
  result.stored_pages = *pages;
  auto size = writer->Commit();
  if (!size.ok()) return size.status().With("committing the image");
  result.image_size = *size;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

}  // namespace

StatusOr<DumpResult> DumpProcess(const DumpRequest& req) {
  auto result = Dump(req);
  if (result.ok()) return result;
  // State modules name the pid themselves; say it once.
  const std::string who = "pid " + std::to_string(req.pid) + ": ";
  std::string message = result.status().message();
  for (size_t at; (at = message.find(who)) != std::string::npos;) message.erase(at, who.size());
  return Status::Error("checkpoint of pid " + std::to_string(req.pid) + ": " + message);
}

}  // namespace stasis::checkpoint
