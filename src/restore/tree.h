// The plan for restarting a process tree (pure, unit tested): which process
// creates which, in what order, and how each gets its session and process
// group.  Recreation is top-down as in CRIU (criu/cr-restore.c: a task
// forks its own children with their old pids, sessions and groups are set
// up before the children that inherit them): the supervisor creates the
// roots, every pre-restorer creates its own children (and zombies) with
// clone3(set_tid) before it loads its memory.
//
// Sessions and groups can only be inherited at fork or changed with
// setsid(2) / setpgid(2), so the plan supports, for a process P with
// parent Q (Q's values are those after Q's own setsid/setpgid):
//   * sid:  P.sid == P.pid (setsid; then P.pgid must be P.pid too), or
//           P.sid == Q.sid (inherited);
//   * pgid: P.pgid == P.pid (new group), P.pgid == Q.pgid (inherited), or
//           the group of a sibling created before P in the same session
//           (Q forks group leaders first, then calls setpgid(P, pgid) as a
//           shell does for a pipeline).
// Roots (ppid 1, or 0) inherit the supervisor's session and group unless
// they lead their own; their recorded values are not checked.  Not
// supported, rejected with an error naming the pid: a session whose leader
// is another process that is not the parent's session, a group whose
// leader is neither the process, its parent's group nor a sibling's group
// (e.g. a group whose leader exited, or a grandchild's group joined
// upward).  CRIU handles these with helper tasks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "image/model.h"

namespace stasis::restore {

// What the plan needs from one image.
struct TreeProcess {
  int32_t pid = 0, ppid = 0, pgid = 0, sid = 0;
  std::vector<int32_t> tids;                // all threads (tids[0] == pid)
  std::vector<image::ZombieChild> zombies;  // unreaped children
};

struct TreeNode {
  enum class Group : uint8_t {
    kInherit,  // keep the parent's group (or the supervisor's, for a root)
    kOwn,      // setpgid(0, 0): leads a new group
    kJoin,     // setpgid(pid, pgid): join a sibling's group
  };
  int32_t pid = 0;
  int32_t pgid = 0;               // image value (meaningful for kOwn/kJoin)
  bool zombie = false;
  int32_t exit_status = 0;        // zombies: wait(2) status to reproduce
  size_t process = SIZE_MAX;      // index into the TreeProcess input (SIZE_MAX: zombie)
  size_t parent = SIZE_MAX;       // node index (SIZE_MAX: root, created by the supervisor)
  bool setsid = false;            // call setsid(2) before creating children
  Group group = Group::kInherit;
  std::vector<size_t> children;   // node indices in creation order
};

struct TreePlan {
  std::vector<TreeNode> nodes;
  std::vector<size_t> roots;           // node indices, ascending pid
  std::vector<size_t> node_of_process; // TreeProcess index -> node index

  // `node` and all its descendants (node first, then depth-first in
  // creation order).
  std::vector<size_t> Subtree(size_t node) const;
};

// Validates and orders the tree: pids > 1 and unique across processes,
// their threads and zombies; every ppid is 1, 0 or a process of the tree;
// no cycles; the session/group constraints above.  Errors name the pid.
StatusOr<TreePlan> PlanTree(const std::vector<TreeProcess>& procs);

// TreeProcess of an image.
TreeProcess TreeProcessOf(const image::ProcessImage& img);

}  // namespace stasis::restore
