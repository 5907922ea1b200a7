// Signals: dispositions, process-directed pending signals and interval
// timers; capture and restore side by side.  (Per-thread mask, alternate
// stack and thread-directed pending signals belong to threads.h.)
//
// Capture comes from the agent control block: the agent queries
// rt_sigaction(2) for every signal, dequeues pending signals with
// sigtimedwait(2) (re-queueing them with rt_tgsigqueueinfo(2) when the
// process resumes) and reads getitimer(2).  Restore: the blob calls
// rt_sigaction, rt_sigqueueinfo and setitimer.
#pragma once

#include "agent/control_block.h"
#include "common/status.h"
#include "image/model.h"
#include "restore/blob/blob_args.h"

namespace stasis::state {

void CaptureSignals(const agent::ControlBlock& cb, image::ProcessImage* img);
Status PrepareSignals(const image::ProcessImage& img, restore::BlobArgs* args);

}  // namespace stasis::state
