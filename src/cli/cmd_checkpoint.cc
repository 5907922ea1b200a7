// stasis checkpoint [--kill]  and  stasis quit
#include <cstdio>
#include <iostream>

#include "cli/cli.h"

namespace stasis::cli {

using coordinator::GetNumber;
using coordinator::GetString;

Action AddCheckpoint(CLI::App& app, GlobalOptions& g) {
  auto kill = std::make_shared<bool>(false);
  CLI::App* sub = app.add_subcommand(
      "checkpoint",
      "Checkpoint the job of the coordinator at --coord-host:--coord-port now and wait until the checkpoint is\n"
      "complete (manifest written).  If a checkpoint is already running, waits for the next one.");
  sub->add_flag("-k,--kill,--kcheckpoint", *kill, "Kill the job once the checkpoint is complete");
  return [kill, &g]() -> int {
    auto client = ConnectToCoordinator(g);
    if (!client.ok()) {
      PrintError("checkpoint", client.status().message());
      return 1;
    }
    // No timeout: the coordinator bounds each phase itself.
    auto reply = (*client)->Request({{"type", "checkpoint"}, {"kill", *kill}}, -1);
    if (!reply.ok()) {
      PrintError("checkpoint", reply.status().message());
      return 1;
    }
    if (Status st = coordinator::ReplyError(*reply); !st.ok()) {
      PrintError("checkpoint", st.message());
      return 1;
    }
    if (!g.quiet) {
      char secs[32];
      std::snprintf(secs, sizeof secs, "%.2f", GetNumber(*reply, "seconds"));
      std::cout << "stasis: checkpoint " << static_cast<uint64_t>(GetNumber(*reply, "generation")) << " complete: "
                << GetString(*reply, "manifest") << " ("
                << HumanBytes(static_cast<uint64_t>(GetNumber(*reply, "bytes"))) << " in " << secs << " s)"
                << (*kill ? "; job killed" : "") << std::endl;
    }
    // Said even with --quiet: the checkpoint is not the whole job.
    if (auto w = reply->find("warnings"); w != reply->end() && w->is_array()) {
      for (const auto& e : *w)
        if (e.is_string()) std::cerr << "stasis: warning: restart will not restore: " << e.get<std::string>() << "\n";
    }
    return 0;
  };
}

Action AddQuit(CLI::App& app, GlobalOptions& g) {
  app.add_subcommand("quit", "Kill the job of the coordinator at --coord-host:--coord-port (no checkpoint) "
                             "and stop the coordinator");
  return [&g]() -> int {
    auto client = ConnectToCoordinator(g);
    if (!client.ok()) {
      PrintError("quit", client.status().message());
      return 1;
    }
    auto reply = (*client)->Request({{"type", "quit"}}, 60);
    if (!reply.ok()) {
      PrintError("quit", reply.status().message());
      return 1;
    }
    if (Status st = coordinator::ReplyError(*reply); !st.ok()) {
      PrintError("quit", st.message());
      return 1;
    }
    if (!g.quiet) std::cout << "stasis: job killed, coordinator stopped" << std::endl;
    return 0;
  };
}

}  // namespace stasis::cli
