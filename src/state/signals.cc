// Signals: dispositions, process-directed pending signals and interval
// timers, copied from the agent's control block into the image and from the
// image into the blob's arguments.  See signals.h.
#include "state/signals.h"

#include <algorithm>
#include <cstring>

namespace stasis::state {

void CaptureSignals(const agent::ControlBlock& cb, image::ProcessImage* img) {
  for (int i = 0; i < 64; ++i) {
    img->sigactions[i].handler = cb.sigactions[i].handler;
    img->sigactions[i].flags = cb.sigactions[i].flags;
    img->sigactions[i].restorer = cb.sigactions[i].restorer;
    img->sigactions[i].mask = cb.sigactions[i].mask;
  }
  for (int i = 0; i < 3; ++i) {
    img->itimers[i].interval_us = cb.itimers[i].interval_us;
    img->itimers[i].value_us = cb.itimers[i].value_us;
  }
  // The count comes from another process's memory: never trust it past the array.
  int n = std::clamp(cb.n_shared_pending, 0, agent::kMaxSharedPending);
  img->shared_pending.clear();
  for (int i = 0; i < n; ++i) {
    image::PendingSignal p;
    p.signo = cb.shared_pending[i].signo;
    std::memcpy(p.siginfo.data(), cb.shared_pending[i].siginfo, p.siginfo.size());
    img->shared_pending.push_back(p);
  }
}

Status PrepareSignals(const image::ProcessImage& img, restore::BlobArgs* args) {
  for (int i = 0; i < 64; ++i) {
    args->sigactions[i].handler = img.sigactions[i].handler;
    args->sigactions[i].flags = img.sigactions[i].flags;
    args->sigactions[i].restorer = img.sigactions[i].restorer;
    args->sigactions[i].mask = img.sigactions[i].mask;
  }
  for (int i = 0; i < 3; ++i) {
    args->itimers[i].interval_us = img.itimers[i].interval_us;
    args->itimers[i].value_us = img.itimers[i].value_us;
  }
  if (img.shared_pending.size() > static_cast<size_t>(agent::kMaxSharedPending)) {
    return Status::Error("image has " + std::to_string(img.shared_pending.size()) +
                         " process-directed pending signals; at most " +
                         std::to_string(agent::kMaxSharedPending) + " are supported");
  }
  for (size_t i = 0; i < img.shared_pending.size(); ++i) {
    const image::PendingSignal& p = img.shared_pending[i];
    if (p.signo < 1 || p.signo > 64) {
      return Status::Error("image has a pending signal with bad number " + std::to_string(p.signo));
    }
    args->shared_pending[i].signo = p.signo;
    args->shared_pending[i].pad = 0;
    std::memcpy(args->shared_pending[i].siginfo, p.siginfo.data(),
                sizeof args->shared_pending[i].siginfo);
  }
  args->n_shared_pending = static_cast<int32_t>(img.shared_pending.size());
  return Status::Ok();
}

}  // namespace stasis::state
