// stasis inspect [--json] PATH...
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "cli/cli.h"
#include "image/checkpoints.h"
#include "image/inspect.h"
#include "image/manifest.h"
#include "image/trust.h"
#include "job/job.h"

namespace stasis::cli {

namespace {

namespace fs = std::filesystem;
using coordinator::Json;

// Inspects one image; in JSON mode returns the parsed object (or the text
// as a string if it is not JSON) in *json_out.
Status InspectOne(const std::string& path, bool json, Json* json_out) {
  if (!json) return image::InspectImage(path, false, std::cout);
  std::ostringstream buf;
  Status st = image::InspectImage(path, true, buf);
  Json j = Json::parse(buf.str(), nullptr, false);
  if (j.is_discarded()) j = buf.str();
  if (!st.ok() && j.is_object() && !j.contains("error")) j["error"] = st.message();
  *json_out = std::move(j);
  return st;
}

// Lists the checkpoints of a manifest or directory and inspects their images.
bool InspectCheckpoints(const std::vector<std::string>& manifests, bool json, Json* out) {
  bool ok = true;
  for (const auto& path : manifests) {
    auto m = image::ReadManifest(path);
    if (!m.ok()) {
      PrintError("inspect", m.status().message());
      if (json) out->push_back({{"manifest", path}, {"error", m.status().message()}});
      ok = false;
      continue;
    }
    const fs::path dir = fs::path(path).parent_path();
    Json entry = {{"manifest", path},       {"generation", m->generation}, {"job_id", m->job_id},
                  {"time", m->time},        {"hostname", m->hostname},     {"bytes", m->total_bytes()},
                  {"images", Json::array()}};
    if (!json) {
      std::cout << "checkpoint " << m->generation << " (" << path << ")\n"
                << "  job " << m->job_id << " on " << m->hostname << ", " << LocalTime(m->time) << ", "
                << m->processes.size() << " process" << (m->processes.size() == 1 ? "" : "es") << ", "
                << HumanBytes(m->total_bytes()) << "\n";
      for (const auto& p : m->processes) {
        std::cout << "  pid " << p.pid << " (ppid " << p.ppid << ") " << p.program << ": " << p.image << ", "
                  << HumanBytes(p.image_size) << "\n";
      }
      std::cout << std::endl;
    }
    // What `stasis restart` would refuse (image/trust.h).
    std::vector<std::string> images;
    for (const auto& p : m->processes) images.push_back((dir / p.image).string());
    if (Status st = image::CheckCheckpointOwnership(path, images, dir.string()); !st.ok()) {
      if (json) entry["ownership_problem"] = st.message();
      else std::cout << "  warning: " << st.message() << "\n\n";
    }
    entry["foreign_images"] = Json::array();
    for (const auto& img : images) {
      Status st = image::CheckImageBelongs(*m, path, img);
      if (st.ok() || !fs::exists(img)) continue;  // a missing image is reported below
      ok = false;
      if (json) entry["foreign_images"].push_back(st.message());
      else PrintError("inspect", st.message());
    }
    for (const auto& p : m->processes) {
      Json j;
      Status st = InspectOne((dir / p.image).string(), json, &j);
      if (!st.ok()) {
        ok = false;
        if (!json) PrintError("inspect", st.message());
      }
      if (json) entry["images"].push_back(std::move(j));
      else std::cout << std::endl;
    }
    if (json) out->push_back(std::move(entry));
  }
  return ok;
}

// `stasis inspect DIR`: one line per checkpoint found, and restart's pick.
// Returns false if a checkpoint is damaged or none can be restarted (exit 1).
bool ListDirectory(const std::string& dir, bool json, Json* out) {
  auto list = image::ListCheckpoints(dir);
  if (!list.ok()) {
    PrintError("inspect", list.status().message());
    return false;
  }
  bool ok = true;
  const image::CheckpointEntry* pick = nullptr;
  Json entries = Json::array();
  for (const auto& c : *list) {
    ok &= c.state != image::CheckpointEntry::State::kDamaged;
    if (c.restart_pick) pick = &c;
    entries.push_back({{"generation", c.generation},
                       {"manifest", c.manifest.empty() ? Json(nullptr) : Json(c.manifest)},
                       {"time", c.time},
                       {"processes", c.processes},
                       {"bytes", c.bytes},
                       {"state", image::StateName(c.state)},
                       {"problem", c.problem.empty() ? Json(nullptr) : Json(c.problem)},
                       {"restart", c.restart_pick}});
  }
  // What `stasis restart DIR` does: the pick, or the error it stops at.
  std::string refuse;
  for (const auto& c : *list) {
    if (c.restart_pick) break;
    if (c.state == image::CheckpointEntry::State::kDamaged && !c.fallback_ok) {
      refuse = "generation " + std::to_string(c.generation) + ": " + c.problem;
      break;
    }
  }
  if (!pick) {
    ok = false;  // nothing to restart is a failure too
    if (list->empty()) PrintError("inspect", dir + ": no complete checkpoint found");
  }
  // Whose files, which job: what restart would refuse without --allow-foreign-owner.
  std::string ownership;
  if (pick) {
    if (Status st = job::PrecheckRestart(pick->manifest, {}, false); !st.ok()) ownership = st.message();
  }
  if (json) {
    Json j = {{"dir", dir}, {"checkpoints", std::move(entries)}, {"restart", nullptr}};
    if (!ownership.empty()) j["ownership_problem"] = ownership;
    if (pick) j["restart"] = {{"generation", pick->generation}, {"manifest", pick->manifest}};
    if (!refuse.empty()) j["restart_error"] = refuse;
    out->push_back(std::move(j));
    return ok;
  }
  std::cout << "checkpoints in " << dir << " (newest first):\n";
  if (list->empty()) std::cout << "  none\n";
  char line[512];
  for (const auto& c : *list) {
    std::snprintf(line, sizeof line, "  %6llu  %-23s  %3zu process%s  %10s  %s",
                  static_cast<unsigned long long>(c.generation), LocalTime(c.time).c_str(), c.processes,
                  c.processes == 1 ? "  " : "es", HumanBytes(c.bytes).c_str(), image::StateName(c.state));
    std::cout << line;
    if (!c.problem.empty()) std::cout << ": " << c.problem;
    if (c.restart_pick) std::cout << "   <- stasis restart picks this one";
    std::cout << "\n";
  }
  if (pick) {
    std::cout << "stasis restart " << dir << " restarts generation " << pick->generation << " ("
              << fs::path(pick->manifest).filename().string() << ")\n";
    if (!ownership.empty()) std::cout << "  warning: " << ownership << "\n";
  } else if (!refuse.empty()) {
    std::cout << "stasis restart " << dir << " would refuse: " << refuse << "\n";
  } else {
    std::cout << "stasis restart " << dir << " has no complete checkpoint to restart\n";
  }
  std::cout.flush();
  return ok;
}

}  // namespace

Action AddInspect(CLI::App& app, GlobalOptions& g) {
  struct Opts {
    bool json = false;
    std::vector<std::string> paths;
  };
  auto opts = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "inspect",
      "Verify and describe checkpoints: image files (*.stasis) are checked block by block and printed; a\n"
      "manifest lists its processes and inspects each image; a checkpoint directory lists its checkpoints\n"
      "(generation, time, processes, bytes, complete/damaged/incomplete and why) and the one that\n"
      "'stasis restart DIR' would pick.  Exit 1 if anything is damaged (or a directory has nothing to restart).");
  sub->add_flag("--json", opts->json, "Print JSON instead of text");
  sub->add_option("PATH", opts->paths, "Image files, manifests or checkpoint directories")->required();
  (void)g;
  return [opts]() -> int {
    bool ok = true;
    Json all = Json::array();
    for (const auto& path : opts->paths) {
      std::error_code ec;
      if (fs::is_directory(path, ec)) {
        ok &= ListDirectory(fs::absolute(path).lexically_normal().string(), opts->json, &all);
      } else if (fs::path(path).extension() == ".json") {
        ok &= InspectCheckpoints({path}, opts->json, &all);
      } else {
        Json j;
        Status st = InspectOne(path, opts->json, &j);
        const std::string abs = fs::absolute(path).lexically_normal().string();
        Status own = image::CheckCheckpointOwnership("", {abs}, fs::path(abs).parent_path().string());
        if (!own.ok() && fs::exists(path)) {
          if (opts->json && j.is_object()) j["ownership_problem"] = own.message();
          else if (!opts->json) std::cout << "warning: " << own.message() << "\n";
        }
        if (!st.ok()) {
          ok = false;
          if (!opts->json) PrintError("inspect", st.message());
        }
        if (opts->json) all.push_back(std::move(j));
        else if (opts->paths.size() > 1) std::cout << std::endl;
      }
    }
    if (opts->json) std::cout << (all.size() == 1 ? all[0] : all).dump(2) << std::endl;
    return ok ? 0 : 1;
  };
}

}  // namespace stasis::cli
