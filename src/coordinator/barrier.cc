// The checkpoint barrier (protocol.h): quiesce all -> dump all -> manifest,
// restart script, prune -> resume or kill.  Any failure before the manifest
// is durable aborts the checkpoint on every supervisor; the previous
// checkpoint is untouched because only a new manifest can supersede it.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <system_error>
#include <utility>

#include "common/pause_point.h"
#include "common/version.h"
#include "coordinator/coordinator_impl.h"

namespace stasis::coordinator::internal {

namespace {

const char* PhaseVerb(Checkpoint::Phase phase) {
  switch (phase) {
    case Checkpoint::Phase::kQuiesce: return "quiesce";
    case Checkpoint::Phase::kDump: return "dump";
    case Checkpoint::Phase::kKill: return "kill";
  }
  return "?";
}

std::string Hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "";
  return buf;
}

std::string Seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", s);
  return buf;
}

}  // namespace

void CoordinatorImpl::RequestCheckpoint(std::optional<uint64_t> client, bool kill) {
  if (ckpt_ && kill) {
    // Checkpoint-and-kill joins the running checkpoint: the job stays
    // quiesced from its quiesce phase until the kill, so that checkpoint
    // holds the final state anyway.  A second checkpoint could not start
    // after the kill.
    if (!ckpt_->kill) Log("checkpoint " + std::to_string(ckpt_->generation) + " will end the job");
    ckpt_->kill = true;
    if (client) ckpt_->clients.push_back(*client);
    return;
  }
  if (ckpt_) {
    // The running checkpoint may already be past the point this request
    // wants to capture; it gets the result of the next one.
    queued_ = true;
    queued_kill_ |= kill;
    if (client) queued_clients_.push_back(*client);
    return;
  }
  std::vector<uint64_t> clients;
  if (client) clients.push_back(*client);
  StartCheckpoint(std::move(clients), kill);
}

void CoordinatorImpl::JobRequestsStop(const std::string& requested_by) {
  if (quitting_ || SupervisorCount() == 0) return;
  if (ckpt_) {
    if (ckpt_->requested_by.empty()) ckpt_->requested_by = requested_by;
    RequestCheckpoint(std::nullopt, true);
    return;
  }
  StartCheckpoint({}, true);
  if (ckpt_) ckpt_->requested_by = requested_by;
}

void CoordinatorImpl::AnswerStopWaiters(const Json& reply) {
  for (uint64_t id : std::exchange(stop_waiters_, {})) SendTo(id, reply);
}

void CoordinatorImpl::StartCheckpoint(std::vector<uint64_t> clients, bool kill) {
  const uint64_t generation = std::max(next_generation_, image::HighestGeneration(ckptdir_) + 1);
  next_generation_ = generation + 1;  // never reused, even if this one fails
  Checkpoint c;
  c.generation = generation;
  c.kill = kill;
  c.clients = std::move(clients);
  c.start = MonotonicNow();
  c.deadline = c.start + opts_.phase_timeout;
  c.phase = Checkpoint::Phase::kQuiesce;
  for (const auto& [id, p] : peers_) {
    if (p->role == Peer::Role::kSupervisor) c.members.insert(id);
  }
  c.waiting = c.members;
  ckpt_ = std::move(c);
  Log("checkpoint " + std::to_string(generation) + " started (" + std::to_string(ckpt_->members.size()) +
      " supervisor" + (ckpt_->members.size() == 1 ? "" : "s") + ", dir " + ckptdir_ + ")");
  std::error_code ec;
  std::filesystem::create_directories(ckptdir_, ec);
  if (ec) {
    FailCheckpoint("checkpoint " + std::to_string(generation) + " failed: cannot create " + ckptdir_ + ": " +
                   ec.message());
    return;
  }
  if (ckpt_->members.empty()) {
    FailCheckpoint("checkpoint " + std::to_string(generation) + " failed: no supervisor is connected");
    return;
  }
  for (uint64_t id : ckpt_->members) {
    if (Peer* p = Find(id)) SendRequest(*p, "quiesce", {{"generation", generation}, {"dir", ckptdir_}});
  }
}

void CoordinatorImpl::OnSupervisorReply(Peer& p, const SentRequest& req, const Json& reply) {
  if (quitting_ && req.type == "kill") {
    Disconnect(p.id, "killed ('stasis quit')");
    return;
  }
  if (!ckpt_ || req.generation != ckpt_->generation || req.type != PhaseVerb(ckpt_->phase) ||
      !ckpt_->waiting.count(p.id)) {
    return;  // resume/abort acknowledgements, or stale replies
  }
  if (!GetBool(reply, "ok")) {
    if (ckpt_->phase == Checkpoint::Phase::kKill) {
      Log(p.Name() + ": kill failed: " + GetString(reply, "error"));
    } else {
      std::string err = GetString(reply, "error", "unknown error");
      FailCheckpoint("checkpoint " + std::to_string(ckpt_->generation) + " failed: " + p.Name() + ": " + err);
      return;
    }
  }
  if (ckpt_->phase == Checkpoint::Phase::kDump) {
    auto it = reply.find("processes");
    if (it == reply.end() || !it->is_array() || it->empty()) {
      FailCheckpoint("checkpoint " + std::to_string(ckpt_->generation) + " failed: " + p.Name() +
                     ": dump reply lists no process images");
      return;
    }
    for (const auto& e : *it) {
      image::ManifestProcess mp;
      mp.pid = GetInteger<int32_t>(e, "pid");
      mp.ppid = GetInteger<int32_t>(e, "ppid");
      mp.program = GetString(e, "program");
      mp.image = GetString(e, "image");
      mp.image_size = GetInteger<uint64_t>(e, "image_size");
      if (mp.image.empty() || mp.image.find('/') != std::string::npos) {
        FailCheckpoint("checkpoint " + std::to_string(ckpt_->generation) + " failed: " + p.Name() +
                       ": bad image file name '" + mp.image + "' in dump reply");
        return;
      }
      ckpt_->processes.push_back(std::move(mp));
    }
    if (auto w = reply.find("warnings"); w != reply.end() && w->is_array()) {
      for (const auto& e : *w)
        if (e.is_string()) ckpt_->warnings.push_back(p.Name() + ": " + e.get<std::string>());
    }
  }
  ckpt_->waiting.erase(p.id);
  if (ckpt_->waiting.empty()) AdvanceCheckpoint();
}

void CoordinatorImpl::OnSupervisorGone(uint64_t id, const std::string& why) {
  if (!ckpt_ || !ckpt_->members.count(id)) return;
  ckpt_->members.erase(id);
  if (ckpt_->phase == Checkpoint::Phase::kKill) {
    ckpt_->waiting.erase(id);
    if (ckpt_->waiting.empty()) CompleteCheckpoint();
    return;
  }
  FailCheckpoint("checkpoint " + std::to_string(ckpt_->generation) + " failed: " + why);
}

void CoordinatorImpl::AdvanceCheckpoint() {
  Checkpoint& c = *ckpt_;
  const std::string gen = std::to_string(c.generation);
  if (c.phase == Checkpoint::Phase::kQuiesce) {
    c.phase = Checkpoint::Phase::kDump;
    c.waiting = c.members;
    c.deadline = MonotonicNow() + opts_.phase_timeout;
    for (uint64_t id : c.members) {
      if (Peer* p = Find(id)) SendRequest(*p, "dump", {{"generation", c.generation}, {"dir", ckptdir_}});
    }
    return;
  }
  if (c.phase == Checkpoint::Phase::kKill) {
    CompleteCheckpoint();
    return;
  }
  // All images are durable: the manifest makes the checkpoint exist.
  MaybePause("dumped", c.generation, ckptdir_, gen + "\n");
  // A manifest lists only files that are there: an image removed meanwhile
  // (a concurrent prune of another writer, a user) fails the checkpoint.
  for (const auto& p : c.processes) {
    const std::string path = (std::filesystem::path(ckptdir_) / p.image).string();
    if (::access(path.c_str(), F_OK) != 0) {
      FailCheckpoint("checkpoint " + gen + " failed: image " + path + " is missing after the dump");
      return;
    }
  }
  image::Manifest m;
  m.job_id = job_id_;
  m.generation = c.generation;
  m.time = WallNow();
  m.hostname = Hostname();
  m.processes = c.processes;
  m.interval = interval_;
  m.keep = keep_;
  m.compression = compression_;
  const std::string manifest = (std::filesystem::path(ckptdir_) / image::ManifestFileName(c.generation)).string();
  m.stasis_version = StasisVersion();
  if (Status st = image::WriteManifest(ckptdir_, m); !st.ok()) {
    // It may have been renamed into place before the directory fsync
    // failed: it must not outlive the abort, which deletes its images.
    ::unlink(manifest.c_str());
    FailCheckpoint("checkpoint " + gen + " failed: " + st.message());
    return;
  }
  // The checkpoint exists now, durably; later problems are warnings only,
  // and from here on nothing but a prune after a newer manifest may delete
  // its files (a supervisor that loses us now keeps them).
  MaybePause("manifest", c.generation, ckptdir_, manifest + "\n");
  if (Status st = WriteRestartScript(ckptdir_, opts_.stasis_exe); !st.ok()) {
    Log("warning: checkpoint " + gen + ": " + st.message());
  }
  auto before_unlink = [&](const std::string& path) { MaybePause("prune", c.generation, ckptdir_, path + "\n"); };
  if (Status st = image::PruneCheckpoints(ckptdir_, keep_, before_unlink); !st.ok()) {
    Log("warning: checkpoint " + gen + ": pruning old checkpoints: " + st.message());
  }
  Json images = Json::array();
  for (const auto& p : c.processes) images.push_back((std::filesystem::path(ckptdir_) / p.image).string());
  const double seconds = MonotonicNow() - c.start;
  c.result = {{"ok", true},
              {"generation", c.generation},
              {"manifest", manifest},
              {"bytes", m.total_bytes()},
              {"seconds", seconds},
              {"images", images}};
  if (!c.requested_by.empty()) c.result["requested_by"] = c.requested_by;
  if (!c.warnings.empty()) c.result["warnings"] = c.warnings;
  for (const auto& w : c.warnings) Log("warning: checkpoint " + gen + ": restart will not restore: " + w);
  last_checkpoint_ = {{"generation", c.generation},
                      {"manifest", manifest},
                      {"time", m.time},
                      {"bytes", m.total_bytes()},
                      {"seconds", seconds}};
  ++checkpoints_taken_;
  Log("checkpoint " + gen + " complete: " + manifest + " (" + std::to_string(m.total_bytes()) + " bytes in " +
      Seconds(seconds) + " s)");
  if (!c.kill) {
    for (uint64_t id : c.members) {
      if (Peer* p = Find(id)) SendRequest(*p, "resume", Json::object());
    }
    CompleteCheckpoint();
    return;
  }
  c.phase = Checkpoint::Phase::kKill;
  c.waiting = c.members;
  c.deadline = MonotonicNow() + 30;
  for (uint64_t id : c.members) {
    if (Peer* p = Find(id)) SendRequest(*p, "kill", Json::object());
  }
}

void CoordinatorImpl::CompleteCheckpoint() {
  Checkpoint c = std::move(*ckpt_);
  ckpt_.reset();
  timer_base_ = MonotonicNow();
  if (c.kill) {
    // Before the supervisors are dropped (that answers "the job ended").
    AnswerStopWaiters(c.result);
    // The job is gone: drop its supervisors now, and with --exit-on-last
    // stop listening before replying, so a `stasis restart` issued right
    // after `stasis checkpoint --kill` starts a fresh coordinator.
    for (uint64_t id : c.members) Disconnect(id, "killed after the checkpoint");
    if (opts_.exit_on_last && SupervisorCount() == 0) {
      Log("the job was killed after checkpoint " + std::to_string(c.generation) + "; exiting");
      StopListening();
      stop_ = true;
    }
  }
  for (uint64_t client : c.clients) SendTo(client, c.result);
  StartQueuedCheckpoint();
}

void CoordinatorImpl::FailCheckpoint(const std::string& error) {
  Checkpoint c = std::move(*ckpt_);
  ckpt_.reset();
  Log(error);
  last_error_ = error;
  timer_base_ = MonotonicNow();
  for (uint64_t id : c.members) {
    if (Peer* p = Find(id)) {
      Json msg = {{"type", "abort"}, {"generation", c.generation}};
      p->sent.push_back({"abort", c.generation});
      Send(*p, msg);
    }
  }
  for (uint64_t client : c.clients) SendTo(client, {{"ok", false}, {"error", error}});
  StartQueuedCheckpoint();
}

void CoordinatorImpl::StartQueuedCheckpoint() {
  if (!queued_ || stop_ || quitting_) {
    if (queued_ && (stop_ || quitting_)) {
      for (uint64_t client : queued_clients_) {
        SendTo(client, {{"ok", false}, {"error", "the job ended before the checkpoint could start"}});
      }
      queued_clients_.clear();
      queued_ = queued_kill_ = false;
    }
    return;
  }
  std::vector<uint64_t> clients = std::move(queued_clients_);
  const bool kill = queued_kill_;
  queued_clients_.clear();
  queued_ = queued_kill_ = false;
  if (SupervisorCount() == 0) {
    for (uint64_t client : clients) {
      SendTo(client, {{"ok", false}, {"error", "no job is running under this coordinator (no supervisor connected)"}});
    }
    return;
  }
  StartCheckpoint(std::move(clients), kill);
}

std::string CoordinatorImpl::WaitingNames() const {
  std::string names;
  for (uint64_t id : ckpt_->waiting) {
    auto it = peers_.find(id);
    if (it == peers_.end()) continue;
    if (!names.empty()) names += ", ";
    names += it->second->Name();
  }
  return names;
}

void CoordinatorImpl::CheckpointTimeout() {
  if (ckpt_->phase == Checkpoint::Phase::kKill) {
    Log("checkpoint " + std::to_string(ckpt_->generation) + ": no kill acknowledgement from " + WaitingNames());
    CompleteCheckpoint();
    return;
  }
  FailCheckpoint("checkpoint " + std::to_string(ckpt_->generation) + " failed: timed out after " +
                 Seconds(opts_.phase_timeout) + " s waiting for " + WaitingNames() + " to " +
                 PhaseVerb(ckpt_->phase));
}

}  // namespace stasis::coordinator::internal
