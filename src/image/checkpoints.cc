#include "image/checkpoints.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "image/manifest.h"
#include "image/reader.h"

namespace stasis::image {
namespace {

bool AllDigits(const std::string& s) {
  return !s.empty() && s.size() <= 19 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Generation of "stasis_manifest_<G>.json" (kind 'm') or
// "ckpt_..._<G>.stasis[.tmp]" (kind 'i', tmp set for ".tmp").
std::optional<uint64_t> GenerationOf(std::string name, char* kind, bool* tmp) {
  *tmp = EndsWith(name, ".tmp");
  if (*tmp) name.resize(name.size() - 4);
  const std::string mp = "stasis_manifest_";
  if (name.rfind(mp, 0) == 0 && EndsWith(name, ".json")) {
    std::string g = name.substr(mp.size(), name.size() - mp.size() - 5);
    *kind = 'm';
    if (AllDigits(g)) return std::stoull(g);
    return std::nullopt;
  }
  if (name.rfind("ckpt_", 0) == 0 && EndsWith(name, ".stasis")) {
    std::string stem = name.substr(0, name.size() - 7);
    size_t us = stem.rfind('_');
    *kind = 'i';
    if (us != std::string::npos && AllDigits(stem.substr(us + 1))) return std::stoull(stem.substr(us + 1));
  }
  return std::nullopt;
}

struct Found {
  std::string manifest;
  std::vector<std::string> images;  // names, incl. .tmp
  size_t tmp = 0;
  uint64_t bytes = 0;
  double mtime = 0;
};

// The first reason checkpoint `m` (in `dir`) cannot be restarted as stored,
// with its code; OK if complete.
Status CheckComplete(const std::string& dir, const Manifest& m, bool verify) {
  if (m.processes.empty()) return Status::DataLoss("the manifest lists no process");
  for (const auto& p : m.processes) {
    const std::string path = dir + "/" + p.image;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return Status::DataLoss(p.image + ": missing");
    if (p.image_size != 0 && static_cast<uint64_t>(st.st_size) != p.image_size) {
      return Status::DataLoss(p.image + ": " + std::to_string(st.st_size) + " bytes, the manifest says " +
                              std::to_string(p.image_size) + " (truncated or replaced)");
    }
    auto reader = ImageReader::Open(path);
    if (!reader.ok()) return reader.status();
    if ((*reader)->metadata().generation != m.generation) {
      return Status::DataLoss(p.image + ": an image of generation " +
                              std::to_string((*reader)->metadata().generation));
    }
    if (verify) RETURN_IF_ERROR((*reader)->Verify().status());
  }
  return Status::Ok();
}

}  // namespace

const char* StateName(CheckpointEntry::State s) {
  switch (s) {
    case CheckpointEntry::State::kComplete: return "complete";
    case CheckpointEntry::State::kDamaged: return "damaged";
    case CheckpointEntry::State::kIncomplete: return "incomplete";
  }
  return "?";
}

StatusOr<std::vector<CheckpointEntry>> ListCheckpoints(const std::string& dir, bool verify) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return Status::Errno(dir + ": cannot list directory");
  std::map<uint64_t, Found, std::greater<>> by_gen;
  while (struct dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    char kind = 0;
    bool tmp = false;
    auto g = GenerationOf(name, &kind, &tmp);
    if (!g) continue;
    Found& f = by_gen[*g];
    if (kind == 'm' && !tmp) f.manifest = dir + "/" + name;
    if (kind == 'i') {
      f.images.push_back(name);
      f.tmp += tmp ? 1 : 0;
    }
    struct stat st {};
    if (::stat((dir + "/" + name).c_str(), &st) == 0) {
      if (kind == 'i') f.bytes += static_cast<uint64_t>(st.st_size);
      f.mtime = std::max(f.mtime, static_cast<double>(st.st_mtim.tv_sec) + st.st_mtim.tv_nsec / 1e9);
    }
  }
  ::closedir(d);

  std::vector<CheckpointEntry> out;
  bool decided = false;  // restart's choice is made (picked, or it would refuse)
  for (auto& [gen, f] : by_gen) {
    CheckpointEntry c;
    c.generation = gen;
    c.manifest = f.manifest;
    c.time = f.mtime;
    c.bytes = f.bytes;
    c.processes = f.images.size() - f.tmp;
    if (f.manifest.empty()) {
      c.state = CheckpointEntry::State::kIncomplete;
      c.processes = f.images.size();
      c.problem = "no manifest (" + std::to_string(f.images.size()) + " image file(s), " + std::to_string(f.tmp) +
                  " of them .tmp): interrupted or still being written; never restarted";
      out.push_back(std::move(c));
      continue;
    }
    Status st;
    auto m = ReadManifest(f.manifest);
    if (m.ok()) {
      c.time = m->time;
      c.processes = m->processes.size();
      st = CheckComplete(dir, *m, verify);
    } else {
      st = m.status();
    }
    if (st.ok()) {
      c.state = CheckpointEntry::State::kComplete;
    } else {
      c.state = CheckpointEntry::State::kDamaged;
      c.problem = st.message();
      c.fallback_ok = st.IsDataLoss();
    }
    if (!decided) {
      if (st.ok()) c.restart_pick = decided = true;
      else if (!c.fallback_ok) decided = true;  // restart stops here with this error
    }
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace stasis::image
