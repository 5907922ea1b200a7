// Builders of image models for unit tests of the restore plans.
#pragma once

#include <cstdint>

#include "image/model.h"

namespace stasis::testing {

// A process image with one thread (tid == pid) and nothing else.
inline image::ProcessImage MinimalImage(int32_t pid, int32_t ppid) {
  image::ProcessImage img;
  img.pid = pid;
  img.ppid = ppid;
  image::Thread t;
  t.tid = pid;
  img.threads = {t};
  return img;
}

}  // namespace stasis::testing
