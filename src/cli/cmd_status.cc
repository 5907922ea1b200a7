// stasis status [--json]
#include <cstdio>
#include <ctime>
#include <iostream>

#include "cli/cli.h"
#include "image/checkpoints.h"

namespace stasis::cli {

using coordinator::GetNumber;
using coordinator::GetString;
using coordinator::Json;

namespace {

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

void PrintHuman(const Json& r, const std::string& where) {
  auto& out = std::cout;
  out << "coordinator:  " << where << "\n";
  const Json& job = r.contains("job_id") ? r["job_id"] : Json(nullptr);
  out << "job:          " << (job.is_string() ? job.get<std::string>() : "(none)") << "\n";
  out << "state:        " << GetString(r, "state", "?") << "\n";
  const double interval = GetNumber(r, "interval");
  out << "interval:     " << (interval > 0 ? Num(interval) + " s" : "none (checkpoint on request)") << "\n";
  out << "ckptdir:      " << GetString(r, "ckptdir") << "\n";
  out << "keep:         " << static_cast<uint64_t>(GetNumber(r, "keep")) << " checkpoints, compression "
      << GetString(r, "compression") << "\n";
  auto procs = r.find("processes");
  if (procs != r.end() && procs->is_array() && !procs->empty()) {
    out << "processes:\n";
    for (const auto& p : *procs) {
      out << "  pid " << static_cast<int64_t>(GetNumber(p, "pid")) << "  " << GetString(p, "program");
      std::string host = GetString(p, "host");
      if (!host.empty()) out << "  (" << host << ")";
      out << "\n";
    }
  } else {
    out << "processes:    none\n";
  }
  auto last = r.find("last_checkpoint");
  if (last != r.end() && last->is_object()) {
    char secs[32];
    std::snprintf(secs, sizeof secs, "%.2f", GetNumber(*last, "seconds"));
    out << "last checkpoint: generation " << static_cast<uint64_t>(GetNumber(*last, "generation")) << " at "
        << LocalTime(GetNumber(*last, "time")) << ", " << HumanBytes(static_cast<uint64_t>(GetNumber(*last, "bytes")))
        << " in " << secs << " s\n"
        << "                 " << GetString(*last, "manifest") << "\n";
  } else {
    out << "last checkpoint: none\n";
  }
  out << "checkpoints taken: " << static_cast<uint64_t>(GetNumber(r, "checkpoints_taken")) << "\n";
  std::string err = GetString(r, "last_error");
  if (!err.empty()) out << "last error:   " << err << "\n";
  auto cps = r.find("checkpoints");
  if (cps != r.end() && cps->is_array() && !cps->empty()) {
    out << "checkpoints in ckptdir (verify: stasis inspect " << GetString(r, "ckptdir") << "):\n";
    for (const auto& c : *cps) {
      out << "  generation " << static_cast<uint64_t>(GetNumber(c, "generation")) << "  " << GetString(c, "state");
      if (!GetString(c, "problem").empty()) out << ": " << GetString(c, "problem");
      if (c.value("restart", false)) out << "   <- stasis restart picks this one";
      out << "\n";
    }
  }
  out.flush();
}

// The checkpoints of the job's directory (image headers only: a quick look
// at a running job; `stasis inspect DIR` verifies every block).
void AddCheckpoints(Json& r) {
  const std::string dir = GetString(r, "ckptdir");
  if (dir.empty()) return;
  auto list = image::ListCheckpoints(dir, /*verify=*/false);
  if (!list.ok()) return;
  Json cps = Json::array();
  for (const auto& c : *list) {
    cps.push_back({{"generation", c.generation},
                   {"state", image::StateName(c.state)},
                   {"problem", c.problem},
                   {"restart", c.restart_pick}});
  }
  r["checkpoints"] = std::move(cps);
}

}  // namespace

Action AddStatus(CLI::App& app, GlobalOptions& g) {
  auto json = std::make_shared<bool>(false);
  CLI::App* sub = app.add_subcommand(
      "status",
      "Show the job of the coordinator at --coord-host:--coord-port: state, processes, last checkpoint, and the\n"
      "checkpoints of its directory with the one a restart would pick");
  sub->add_flag("--json", *json, "Print the coordinator's status reply as JSON");
  return [json, &g]() -> int {
    auto client = ConnectToCoordinator(g);
    if (!client.ok()) {
      PrintError("status", client.status().message());
      return 1;
    }
    auto reply = (*client)->Request({{"type", "status"}}, 10);
    if (!reply.ok()) {
      PrintError("status", reply.status().message());
      return 1;
    }
    if (Status st = coordinator::ReplyError(*reply); !st.ok()) {
      PrintError("status", st.message());
      return 1;
    }
    AddCheckpoints(*reply);
    if (*json) {
      std::cout << reply->dump(2) << std::endl;
    } else {
      PrintHuman(*reply, (*client)->peer());
    }
    return 0;
  };
}

}  // namespace stasis::cli
