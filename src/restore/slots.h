// Pre-restorer memory work (runs in the process being restored, see
// restorer.cc): plan the layout (layout.h), reserve the restorer region,
// map one slot per image area inside it, stream the image's pages into the
// slots, build the vDSO proxy, and describe it all in BlobArgs.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "common/status.h"
#include "image/format.h"
#include "image/model.h"
#include "image/reader.h"
#include "restore/blob/blob_args.h"
#include "restore/layout.h"
#include "state/vdso.h"

namespace stasis::restore {

struct Slots {
  Layout layout;
  std::vector<state::KernelVdsoArea> vdso_group;  // the current kernel's, sorted
  uint64_t proxy_len = 0;                         // bytes of the proxy slot (0: none)
};

// Plans the layout, reserves the region (PROT_NONE, MAP_FIXED_NOREPLACE;
// re-plans if something appeared there meanwhile), maps BlobArgs, the blob
// stacks, the vDSO proxy (if needed) and one slot per area: anonymous
// memory, or the area's file mapped again (MAP_PRIVATE: COW pages are
// overwritten by LoadPages; MAP_SHARED: the file holds the data).
// Errors name the area and file.
// `shmem_fds`: the recreated shared memory objects by shmem id (state/
// shmem.h); an area with a shmem id is mapped MAP_SHARED from its object.
StatusOr<Slots> BuildSlots(const image::ProcessImage& img, bool force_proxy,
                           const std::map<uint64_t, int>& shmem_fds);

// Streams and verifies every page block of the image into the slots
// (ImageReader::ReadPages); checks each run against its area's bounds.
Status LoadPages(image::ImageReader& reader, const Slots& slots);

// Fills args->areas (sorted by start, incl. the proxy), the vDSO fields.
Status FillAreaArgs(const image::ProcessImage& img, const Slots& slots, BlobArgs* args);

}  // namespace stasis::restore
