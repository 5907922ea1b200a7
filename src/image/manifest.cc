#include "image/manifest.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>

#include "common/safe_file.h"
#include "common/json_parse.h"
#include "common/scoped_fd.h"
#include "image/format.h"
#include "image/io_util.h"

namespace stasis::image {
namespace {

using json = nlohmann::json;

constexpr char kManifestPrefix[] = "stasis_manifest_";
constexpr char kManifestSuffix[] = ".json";
constexpr char kImagePrefix[] = "ckpt_";
constexpr char kImageSuffix[] = ".stasis";
constexpr char kTmpSuffix[] = ".tmp";
constexpr char kSavedPrefix[] = "saved_";
constexpr char kSavedSuffix[] = ".data";

bool StartsWith(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }
bool EndsWith(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

std::optional<uint64_t> ParseDigits(const std::string& s) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

std::string Gen6(uint64_t g) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%06llu", static_cast<unsigned long long>(g));
  return buf;
}

std::string Sanitize(const std::string& s) {
  std::string out;
  for (char c : s) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-';
    out.push_back(ok ? c : '_');
  }
  return out.empty() ? "_" : out;
}

// Generation of a manifest name "stasis_manifest_<gen>.json".
std::optional<uint64_t> ManifestGeneration(const std::string& name) {
  if (!StartsWith(name, kManifestPrefix) || !EndsWith(name, kManifestSuffix)) return std::nullopt;
  return ParseDigits(name.substr(sizeof kManifestPrefix - 1,
                                 name.size() - (sizeof kManifestPrefix - 1) - (sizeof kManifestSuffix - 1)));
}

// Generation of an image name "ckpt_<program>_<job>_<pid>_<gen>.stasis": the
// digits after the last '_' (program and job id may themselves contain '_').
std::optional<uint64_t> ImageGeneration(const std::string& name) {
  if (!StartsWith(name, kImagePrefix) || !EndsWith(name, kImageSuffix)) return std::nullopt;
  const std::string stem = name.substr(0, name.size() - (sizeof kImageSuffix - 1));
  auto us = stem.find_last_of('_');
  if (us == std::string::npos || us < sizeof kImagePrefix - 1) return std::nullopt;
  return ParseDigits(stem.substr(us + 1));
}

// Generation of a saved file copy "saved_<job>_<key>_<gen>.data".
std::optional<uint64_t> SavedGeneration(const std::string& name) {
  if (!StartsWith(name, kSavedPrefix) || !EndsWith(name, kSavedSuffix)) return std::nullopt;
  const std::string stem = name.substr(0, name.size() - (sizeof kSavedSuffix - 1));
  auto us = stem.find_last_of('_');
  if (us == std::string::npos || us < sizeof kSavedPrefix - 1) return std::nullopt;
  return ParseDigits(stem.substr(us + 1));
}

// Generation of any file name Stasis writes in a checkpoint directory,
// including their "*.tmp" forms.
std::optional<uint64_t> AnyGeneration(std::string name) {
  if (EndsWith(name, kTmpSuffix)) name.resize(name.size() - (sizeof kTmpSuffix - 1));
  if (auto g = ManifestGeneration(name)) return g;
  if (auto g = SavedGeneration(name)) return g;
  return ImageGeneration(name);
}

StatusOr<std::vector<std::string>> ListDir(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return Status::Errno(dir + ": cannot list directory");
  std::vector<std::string> names;
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(std::move(n));
  }
  ::closedir(d);
  return names;
}

std::string Join(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

json ToJsonManifest(const Manifest& m) {
  json procs = json::array();
  for (const auto& p : m.processes) {
    procs.push_back({{"pid", p.pid}, {"ppid", p.ppid}, {"program", p.program}, {"image", p.image},
                     {"image_size", p.image_size}});
  }
  return json{{"format_version", m.format_version},
              {"job_id", m.job_id},
              {"generation", m.generation},
              {"time", m.time},
              {"hostname", m.hostname},
              {"processes", std::move(procs)},
              {"interval", m.interval},
              {"keep", m.keep},
              {"compression", m.compression},
              {"total_bytes", m.total_bytes()},
              {"stasis_version", m.stasis_version}};
}

// Reads `key` of `obj` into *out; required keys must be present.
template <typename T>
Status Field(const json& obj, const char* key, bool required, T* out, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    if (required) return Status::DataLoss("missing field \"" + where + key + "\"");
    return Status::Ok();
  }
  bool type_ok;
  if constexpr (std::is_same_v<T, std::string>) type_ok = it->is_string();
  else if constexpr (std::is_floating_point_v<T>) type_ok = it->is_number();
  else if constexpr (std::is_unsigned_v<T>) type_ok = it->is_number_unsigned();
  else type_ok = it->is_number_integer();
  if (!type_ok) return Status::DataLoss("field \"" + where + key + "\" has the wrong type");
  try {
    *out = it->get<T>();
  } catch (const std::exception& e) {
    return Status::DataLoss("field \"" + where + key + "\": " + e.what());
  }
  return Status::Ok();
}

StatusOr<Manifest> FromJsonManifest(const json& j) {
  if (!j.is_object()) return Status::DataLoss("not a JSON object");
  Manifest m;
  RETURN_IF_ERROR(Field(j, "format_version", true, &m.format_version, ""));
  if (m.format_version > kFormatVersion) {
    // Not damage: an older checkpoint is no help.
    return Status::Error("manifest format version " + std::to_string(m.format_version) +
                         " is newer than this stasis supports (" + std::to_string(kFormatVersion) + ")");
  }
  RETURN_IF_ERROR(Field(j, "job_id", true, &m.job_id, ""));
  RETURN_IF_ERROR(Field(j, "generation", true, &m.generation, ""));
  RETURN_IF_ERROR(Field(j, "time", false, &m.time, ""));
  RETURN_IF_ERROR(Field(j, "hostname", false, &m.hostname, ""));
  RETURN_IF_ERROR(Field(j, "interval", false, &m.interval, ""));
  RETURN_IF_ERROR(Field(j, "keep", false, &m.keep, ""));
  RETURN_IF_ERROR(Field(j, "compression", false, &m.compression, ""));
  RETURN_IF_ERROR(Field(j, "stasis_version", false, &m.stasis_version, ""));
  auto it = j.find("processes");
  if (it == j.end()) return Status::DataLoss("missing field \"processes\"");
  if (!it->is_array()) return Status::DataLoss("field \"processes\" has the wrong type");
  for (size_t i = 0; i < it->size(); ++i) {
    const json& e = (*it)[i];
    const std::string where = "processes[" + std::to_string(i) + "].";
    if (!e.is_object()) return Status::DataLoss("field \"" + where.substr(0, where.size() - 1) + "\" is not an object");
    ManifestProcess p;
    RETURN_IF_ERROR(Field(e, "pid", true, &p.pid, where));
    RETURN_IF_ERROR(Field(e, "ppid", false, &p.ppid, where));
    RETURN_IF_ERROR(Field(e, "program", false, &p.program, where));
    RETURN_IF_ERROR(Field(e, "image", true, &p.image, where));
    RETURN_IF_ERROR(Field(e, "image_size", false, &p.image_size, where));
    // Images are names inside the directory; refuse anything that escapes it.
    if (p.image.empty() || p.image.find('/') != std::string::npos || p.image == "." || p.image == "..")
      return Status::DataLoss("field \"" + where + "image\" is not a plain file name: \"" + p.image + "\"");
    m.processes.push_back(std::move(p));
  }
  return m;
}

Status WriteFileAtomically(const std::string& path, const std::string& data) {
  // "<path>.tmp" created without following symlinks, renamed relative to the
  // same directory descriptor (common/safe_file.h).
  return WriteFileAtomic(path, data, 0600);
}

}  // namespace

std::string ManifestFileName(uint64_t generation) {
  return std::string(kManifestPrefix) + Gen6(generation) + kManifestSuffix;
}

std::string ImageFileName(const std::string& program, const std::string& job_id, int32_t pid,
                          uint64_t generation) {
  return std::string(kImagePrefix) + Sanitize(program) + "_" + Sanitize(job_id) + "_" + std::to_string(pid) +
         "_" + Gen6(generation) + kImageSuffix;
}

std::string SavedFileName(const std::string& job_id, uint64_t key, uint64_t generation) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(key));
  return std::string(kSavedPrefix) + Sanitize(job_id) + "_" + hex + "_" + Gen6(generation) + kSavedSuffix;
}

Status WriteManifest(const std::string& dir, const Manifest& m) {
  std::string text = ToJsonManifest(m).dump(2, ' ', false, json::error_handler_t::replace) + "\n";
  return WriteFileAtomically(Join(dir, ManifestFileName(m.generation)), text);
}

StatusOr<Manifest> ReadManifest(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in && errno == ENOENT) return Status::DataLoss(path + ": open: " + std::strerror(ENOENT));
  if (!in) return Status::Errno(path + ": open");
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Status::Errno(path + ": read");
  auto m = ParseManifest(ss.str());
  if (!m.ok()) return m.status().With(path);
  return m;
}

StatusOr<Manifest> ParseManifest(const std::string& text) {
  if (text.empty()) return Status::DataLoss("empty file");
  auto j = ParseJsonLimited(reinterpret_cast<const uint8_t*>(text.data()), text.size(), json::input_format_t::json);
  if (!j.ok()) return Status::DataLoss("not a valid JSON manifest");
  return FromJsonManifest(*j);
}

StatusOr<std::vector<std::string>> ListManifests(const std::string& dir) {
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(dir));
  std::vector<std::pair<uint64_t, std::string>> found;
  for (const auto& n : names)
    if (auto g = ManifestGeneration(n)) found.emplace_back(*g, n);
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second > b.second;
  });
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(Join(dir, f.second));
  return out;
}

uint64_t HighestGeneration(const std::string& dir) {
  auto names = ListDir(dir);
  if (!names.ok()) return 0;
  uint64_t best = 0;
  for (const auto& n : *names)
    if (auto g = AnyGeneration(n)) best = std::max(best, *g);
  return best;
}

namespace {

// Deletes what is not part of the newest `keep` checkpoints (SIZE_MAX: of
// any checkpoint), see PruneCheckpoints and RemoveLeftovers.
Status Prune(const std::string& dir, size_t keep, const BeforeUnlink& before_unlink) {
  ASSIGN_OR_RETURN(std::vector<std::string> manifests, ListManifests(dir));
  if (manifests.empty()) return Status::Ok();

  // Everything a kept manifest refers to is protected.  A kept manifest that
  // cannot be read protects nothing explicitly, so deletion is restricted to
  // files of generations without a manifest.
  std::set<std::string> protected_names;
  std::set<uint64_t> manifest_generations;  // of every manifest, readable or not
  uint64_t newest_kept = 0;
  std::string job_id;
  for (size_t i = 0; i < manifests.size(); ++i) {
    const std::string name = internal::BaseName(manifests[i]);
    const uint64_t g = ManifestGeneration(name).value_or(0);
    manifest_generations.insert(g);
    if (i >= keep) continue;
    protected_names.insert(name);
    newest_kept = std::max(newest_kept, g);
    auto m = ReadManifest(manifests[i]);
    if (!m.ok()) continue;
    if (job_id.empty()) job_id = m->job_id;
    for (const auto& p : m->processes) protected_names.insert(p.image);
  }

  Status first_error;
  // True if `name` is gone (deleted now, or it was not there).
  auto remove = [&](const std::string& name) {
    if (protected_names.count(name)) return false;
    const std::string path = Join(dir, name);
    if (::access(path.c_str(), F_OK) != 0 && errno == ENOENT) return true;
    if (before_unlink) before_unlink(path);
    if (::unlink(path.c_str()) == 0 || errno == ENOENT) return true;
    if (first_error.ok()) first_error = Status::Errno(path + ": cannot delete");
    return false;
  };

  // Older manifests first, then their images.  The manifest is what makes a
  // checkpoint exist, so unlinking it (one atomic directory operation, made
  // durable before any image goes) retires the whole checkpoint at once: a
  // prune killed at any unlink leaves every remaining manifest complete, and
  // at worst images of a retired generation without a manifest, which the
  // leftover rule below removes at the next prune.  The other order would
  // leave, when killed between two images, a manifest that lists missing
  // images: a checkpoint that looks complete and cannot restart.
  for (size_t i = keep; i < manifests.size(); ++i) {
    auto m = ReadManifest(manifests[i]);
    if (!remove(internal::BaseName(manifests[i]))) {  // it still lists its images: keep them
      if (m.ok())
        for (const auto& p : m->processes) protected_names.insert(p.image);
      continue;
    }
    (void)internal::FsyncParentDir(manifests[i]);
    manifest_generations.erase(ManifestGeneration(internal::BaseName(manifests[i])).value_or(0));
    if (m.ok())
      for (const auto& p : m->processes) remove(p.image);
  }

  // Leftovers: "*.tmp" of any generation up to the newest complete one (a
  // killed writer's; a writer only ever writes a generation newer than every
  // manifest it saw); images and saved file copies of this job that no kept
  // manifest lists, of a generation older than the newest checkpoint that
  // has no manifest (left): a checkpoint that failed, or whose writer was
  // killed, before its manifest, or a generation pruned now or by a prune
  // that was interrupted.  A generation whose manifest is unreadable or
  // could not be deleted keeps its files.
  auto names = ListDir(dir);
  if (!names.ok()) return names.status();
  const std::string job_tag = "_" + Sanitize(job_id) + "_";
  for (const auto& n : *names) {
    auto g = AnyGeneration(n);
    if (!g) continue;
    if (EndsWith(n, kTmpSuffix)) {
      if (*g <= newest_kept) remove(n);
    } else if ((ImageGeneration(n) || StartsWith(n, std::string(kSavedPrefix) + Sanitize(job_id) + "_")) &&
               !job_id.empty() && n.find(job_tag) != std::string::npos && *g < newest_kept &&
               !manifest_generations.count(*g)) {
      remove(n);
    }
  }
  return first_error;
}

}  // namespace

Status PruneCheckpoints(const std::string& dir, uint32_t keep, const BeforeUnlink& before_unlink) {
  // never delete the checkpoint just written
  return Prune(dir, std::max<uint32_t>(keep, 1), before_unlink);
}

Status RemoveLeftovers(const std::string& dir, const BeforeUnlink& before_unlink) {
  return Prune(dir, SIZE_MAX, before_unlink);
}

}  // namespace stasis::image
