// Shared memory objects: capture and restore side by side.
//
// Which shared mappings are saved: every MAP_SHARED area backed by shmem
// that cannot be reopened as the same object at restart -- shared anonymous
// memory (MAP_SHARED|MAP_ANONYMOUS, "/dev/zero (deleted)"), memfd_create(2)
// memory ("/memfd:name (deleted)"), SysV segments ("/SYSV<key> (deleted)"),
// POSIX shared memory (shm_open(3): "/dev/shm/<name>", also once unlinked,
// e.g. Python multiprocessing's semaphores), and any other shared mapping of
// a file deleted while mapped.  The object is identified by the device and
// inode of its maps line (proc(5)), the same in every process that maps it.
//
// Capture (state/memory.cc DumpPages): every page of such an area is read
// (not only the pages present in this process's page tables: a page another
// process wrote may be mapped nowhere else), all-zero pages are skipped, and
// each page of an object is stored once per checkpoint, in the image of the
// first process dumped that maps it (ShmemPages).
//
// A descriptor of such an object (memfd_create, shm_open then shm_unlink)
// is an end of the same object: the pages not stored through a mapping are saved with the
// descriptor (CaptureShmemFds) and the descriptor is installed from the
// recreated object, at its offset.
//
// Restore (restore/objects.h plans, restorer.cc carries out): the object is
// created once, by the deepest common ancestor of the processes that map it
// (children inherit its descriptor), as a memfd -- or, for a /dev/shm name
// that still existed at checkpoint, at that path again, emptied and sized --
// and every process maps it MAP_SHARED into its slot before loading pages,
// so the pages a process loads are seen by all.  Sharing between the
// processes is thus kept.  Not kept: SysV identity (shmget(2) ids, shmctl,
// shmdt of a restored segment fails with EINVAL: it is now a memfd mapping)
// and memfd seals.  Technique after CRIU (criu/shmem.c: one process restores
// each object, the others map it); the code is our own.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/scoped_fd.h"
#include "common/status.h"
#include "image/model.h"
#include "state/proc_target.h"

namespace stasis::state {

// The identity of a saved shared object for a maps line: non-zero iff the
// area is shared (`shared`), shmem-backed or deleted, and not a regular file
// that still exists outside /dev/shm.  `dev`: makedev(major, minor).
uint64_t ShmemId(const std::string& name, bool shared, uint64_t dev, uint64_t inode);

// Pages of each object (by shmem id, page index in the object) already
// stored in an image of the current checkpoint.
using ShmemPages = std::map<uint64_t, std::vector<bool>>;

// For every regular-file descriptor of `fds` (not stdio) that refers to a
// shared memory object that cannot be reopened by path (a memfd, an
// unlinked /dev/shm file; a /dev/shm file that still exists is reopened
// like any file): sets
// shmem_id/shmem_size and saves in shmem_data the object's non-zero pages
// that no earlier image of this checkpoint stored (`done`, updated; the
// file is read through /proc/<pid>/fd/<n>, holes skipped with SEEK_DATA).
// A page is saved once even if it is also mapped.  Errors name the fd.
Status CaptureShmemFds(const ProcTarget& target, std::vector<image::FileDescriptor>* fds, ShmemPages* done);

// The path at which a saved object is recreated: its /dev/shm name if it had
// one and was not deleted, else "" (a memfd).
std::string ShmemPath(const image::MemoryArea& a);

// Creates the object for restart: `size` bytes, all zero.  `path` "":
// memfd_create(2) named after `name`; else the /dev/shm file at `path`,
// created or truncated.  Error names the object.
StatusOr<ScopedFd> CreateShmemObject(const std::string& name, const std::string& path, uint64_t size);

// Writes the saved runs into a recreated object.  Error names the object.
Status FillShmemObject(int fd, const std::vector<image::ShmemRun>& runs, const std::string& what);

}  // namespace stasis::state
