// Slurm helpers for `stasis run` (cmd_run.cc): Slurm's time format, the
// job's end time and requeue (the checkpoint directory lock: ckpt_lock.h).  They talk to
// Slurm only through its commands (squeue, scontrol) so nothing links
// against libslurm.
#pragma once

#include <ctime>
#include <string>

#include "common/status.h"

namespace stasis::cli::slurm {

// Parses a duration in Slurm's --time format and returns seconds:
// "M", "M:S", "H:M:S", "D-H", "D-H:M", "D-H:M:S" (e.g. Gizmo's
// SLURM_CHECKPOINT=0-0:45 is 45 minutes; "0-0:00:10" is 10 s).  A plain
// number with a unit suffix "s", "m", "h" is also accepted ("90s").
// Errors: a message quoting the text and the accepted forms.
StatusOr<double> ParseDuration(const std::string& text);

// The end time (epoch seconds) Slurm has for job `job_id`: `squeue -h -j ID
// -o %e` (local time "YYYY-MM-DDTHH:MM:SS").  Errors: squeue missing or
// failing, or no end time ("Unknown", "N/A" for jobs without a limit).
StatusOr<std::time_t> JobEndTime(const std::string& job_id);

// `scontrol requeue JOB_ID`; waits for it.  Errors carry scontrol's exit code.
Status Requeue(const std::string& job_id);

// getenv(name) or "unset".
std::string EnvOrUnset(const char* name);

}  // namespace stasis::cli::slurm
