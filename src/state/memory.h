// Memory areas: capture and restore side by side.
//
// Capture: /proc/<pid>/maps gives the areas; /proc/<pid>/pagemap tells which
// pages exist (bit 63 present, bit 62 swapped) and whether a page of a
// private file mapping is still the file's (bit 61 set) or an anonymous
// copy-on-write copy (Documentation/admin-guide/mm/pagemap.rst).  Stored are:
// present/swapped pages of anonymous areas that are not all zero, and COW
// pages of private file mappings.  File pages and untouched pages are not
// stored; the file is mapped again at restart.
//
// Restore (runs in the pre-restorer, i.e. in the process being restarted):
// every area is first built in a "slot" inside the restorer region -- an
// address range free both in the current process and in the image -- and the
// blob later moves slots into place with mremap(2), after CRIU's premap.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "image/model.h"
#include "image/reader.h"
#include "image/writer.h"
#include "state/proc_target.h"
#include "state/shmem.h"

namespace stasis::state {

// Parses /proc/<pid>/maps into areas (kind, prot, name, offset, file
// identity).  Skips [vsyscall].  Areas listed in `exclude` (start,len pairs,
// e.g. a previous restorer region) are dropped.  A file that was deleted
// keeps its maps name, which ends in " (deleted)"; CheckAreaFiles reports it.
StatusOr<std::vector<image::MemoryArea>> CaptureAreas(
    const ProcTarget& target, const std::vector<std::pair<uint64_t, uint64_t>>& exclude = {});

// Streams the pages that must be stored (see above; shared memory objects:
// shmem.h) into `writer`; sets areas[i].stored_pages.  `shmem_done`: the
// pages of shared objects already stored in this checkpoint (updated;
// nullptr: store them all).  Returns the number of pages stored.
StatusOr<uint64_t> DumpPages(const ProcTarget& target, std::vector<image::MemoryArea>& areas,
                             image::ImageWriter& writer, ShmemPages* shmem_done = nullptr);

// Checks, before any process is created, that every file a file-backed area
// needs exists with the size and mtime recorded at checkpoint.  The error
// names the file and the difference.
Status CheckAreaFiles(const image::ProcessImage& img);

// --- Helpers, exposed for tests and the restorer. ---

// Parses the text of a maps file (proc(5)) without touching any file: kind,
// prot, name and offset are set, file identity is not.  Skips [vsyscall].
// Errors name the line number.
StatusOr<std::vector<image::MemoryArea>> ParseMaps(const std::string& text);

// True if the 4096 bytes at `page` are all zero (vectorised, early exit).
bool IsZeroPage(const void* page);

// "anon-private", "file-shared", ... for messages.
const char* AreaKindName(image::MemoryArea::Kind kind);

}  // namespace stasis::state
