// Kernel objects shared by descriptors of the job (pipes, sockets): which
// are recreated at restart, who creates each, and which descriptor of which
// process gets which end.  Pure and unit tested; the pre-restorers and the
// supervisor carry it out (restorer.cc) with the kind's own module
// (state/pipes.h, state/sockets.h).
//
// An object is created once, by the deepest common ancestor of the
// processes that hold it (as CRIU does for pipes), or by the supervisor
// when they are under different roots and for every socket (bound
// addresses and connections are made in one place, in a fixed order);
// children inherit it at fork and each process dup3(2)s its ends to their
// numbers.  Descriptors that share the open file of the job's stdio stay
// the restarting command's stdio and are not planned here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "image/model.h"
#include "restore/tree.h"
#include "state/pipes.h"

namespace stasis::restore {

// One descriptor to install from a planned object.
struct ObjectEnd {
  size_t node = 0;        // who holds it
  int32_t fd = -1;        // its number there (-1: none, the object is only mapped)
  int end = 0;            // which of the object's descriptors (0..2, see Kind)
  bool cloexec = false;
};

struct PlannedObject {
  enum class Kind : uint8_t {
    kPipe,        // a pipe or FIFO (`pipe`): ends 0 read, 1 write, 2 read-write (FIFO)
    kSocketPair,  // a connection with both ends in the job: ends 0 (desc[0]), 1 (desc[1])
    kSocket,      // a socket alone: end 0 (desc[0])
    kShmem,       // a shared memory object (state/shmem.h): end 0, mapped by
                  // its holders (fd -1: no descriptor to install)
    kAnon,        // an eventfd, timerfd or signalfd shared by several
                  // processes (state/anon_inode.h): end 0, from desc[0]
  };
  Kind kind = Kind::kPipe;
  uint64_t inode = 0;            // pipe/socket inode at checkpoint (of end 0 for pairs)
  size_t creator = SIZE_MAX;     // node, or SIZE_MAX: the supervisor
  std::vector<ObjectEnd> ends;
  // kPipe: bytes in flight, ends held in the job, O_NONBLOCK, FIFO path.
  state::PipeSpec pipe;
  // Sockets and kAnon: a descriptor of each end, recreated from its record
  // (SocketInfo, anon-inode state) and open flags.
  const image::FileDescriptor* desc[2] = {nullptr, nullptr};
  // kShmem: id, size in bytes, name, and its /dev/shm path ("": memfd).
  uint64_t shmem_id = 0;
  uint64_t shmem_size = 0;
  std::string shmem_name, shmem_path;
  std::vector<const std::vector<image::ShmemRun>*> shmem_data;  // saved through descriptors
  uint64_t shmem_offset = 0;     // file position of its descriptors
  std::string what;              // "pipe:[123]", "socket:[456]" for messages
};

// The objects of the job to recreate, in creation order:
//   * pipes and FIFOs with a read end in the job that is not stdio; their
//     write ends in the job are recreated too (none: the reader gets the
//     saved bytes, then end-of-file);
//   * shared memory objects: every saved shared mapping or descriptor, by
//     shmem id, sized to cover every mapping of it;
//   * eventfd, timerfd and signalfd objects held by several processes;
//   * sockets: bound/listening ones, then connections (a TCP connection is
//     made through the job's listener at its address), then sockets that
//     connect to an address.
// images[i] is the image of TreeProcess i.  Errors: more saved pipe bytes
// than a pipe can hold (1 MiB, the default /proc/sys/fs/pipe-max-size).
StatusOr<std::vector<PlannedObject>> PlanObjects(const TreePlan& plan,
                                                 const std::vector<const image::ProcessImage*>& images);

// Whether descriptor `fd` of TreeProcess `process` is installed from a
// planned object (and must be left out of RestoreFiles).
bool IsPlannedFd(const std::vector<PlannedObject>& objects, const TreePlan& plan, size_t process, int32_t fd);

}  // namespace stasis::restore
