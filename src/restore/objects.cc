// Shared-object plan; see objects.h.
#include "restore/objects.h"

#include <fcntl.h>
#include <sys/socket.h>

#include <algorithm>
#include <map>
#include <set>

#include "state/pipes.h"
#include "state/shmem.h"
#include "state/sockets.h"

namespace stasis::restore {
namespace {

using FdKind = image::FileDescriptor::Kind;

// The deepest common ancestor of the nodes holding `ends` (SIZE_MAX: none).
size_t CommonAncestor(const TreePlan& plan, const std::vector<ObjectEnd>& ends) {
  auto chain = [&](size_t n) {
    std::vector<size_t> c;
    for (; n != SIZE_MAX; n = plan.nodes[n].parent) c.insert(c.begin(), n);
    return c;
  };
  std::vector<size_t> common = chain(ends.at(0).node);
  for (const ObjectEnd& e : ends) {
    std::vector<size_t> c = chain(e.node);
    size_t k = 0;
    while (k < common.size() && k < c.size() && common[k] == c[k]) ++k;
    common.resize(k);
  }
  return common.empty() ? SIZE_MAX : common.back();
}

StatusOr<std::vector<PlannedObject>> PlanPipes(const TreePlan& plan,
                                               const std::vector<const image::ProcessImage*>& images) {
  constexpr size_t kMaxPipeBytes = 1 << 20;
  std::map<uint64_t, PlannedObject> by_inode;
  std::set<uint64_t> has_reader;
  for (size_t i = 0; i < images.size(); ++i) {
    const size_t node = plan.node_of_process[i];
    for (const image::FileDescriptor& f : images[i]->fds) {
      const uint64_t ino = state::PipeKey(f);
      if (ino == 0 || f.fd == images[i]->agent.socket_fd) continue;
      const int acc = f.flags & O_ACCMODE;
      const int end = acc == O_RDONLY ? 0 : acc == O_WRONLY ? 1 : 2;
      PlannedObject& o = by_inode[ino];
      o.kind = PlannedObject::Kind::kPipe;
      o.inode = ino;
      if (f.kind == FdKind::kFifo) {
        o.pipe.fifo_path = f.path;
        o.what = "FIFO " + f.path;
      } else {
        o.what = "pipe:[" + std::to_string(ino) + "]";
      }
      o.pipe.what = o.what;
      o.ends.push_back({node, f.fd, end, f.cloexec});
      o.pipe.want[end] = true;
      if (f.flags & O_NONBLOCK) o.pipe.nonblock[end] = true;
      if (end != 1 && f.stdio_alias < 0) has_reader.insert(ino);
    }
    for (const image::PipeContents& pc : images[i]->pipes) {
      auto it = by_inode.find(pc.inode);
      if (it != by_inode.end() && it->second.pipe.bytes.empty()) it->second.pipe.bytes = pc.bytes;
    }
  }
  std::vector<PlannedObject> out;
  for (auto& [ino, o] : by_inode) {
    if (!has_reader.count(ino)) continue;
    if (o.pipe.bytes.size() > kMaxPipeBytes)
      return Status::Error(o.what + " holds " + std::to_string(o.pipe.bytes.size()) + " bytes; at most " +
                           std::to_string(kMaxPipeBytes) + " can be restored");
    o.creator = CommonAncestor(plan, o.ends);
    out.push_back(std::move(o));
  }
  return out;
}

void PlanSockets(const TreePlan& plan, const std::vector<const image::ProcessImage*>& images,
                 std::vector<PlannedObject>* out) {
  // Every socket of the job by inode, with all descriptors that refer to it.
  struct Held {
    const image::FileDescriptor* f = nullptr;
    std::vector<ObjectEnd> ends;  // `end` filled in below
  };
  std::map<uint64_t, Held> by_inode;
  for (size_t i = 0; i < images.size(); ++i) {
    for (const image::FileDescriptor& f : images[i]->fds) {
      if (f.kind != FdKind::kSocket || f.stdio_alias >= 0 || f.fd == images[i]->agent.socket_fd) continue;
      const uint64_t ino = state::SocketInode(f.path);
      if (ino == 0 || f.socket.family == 0) continue;  // not captured (old image): /dev/null
      Held& h = by_inode[ino];
      if (h.f == nullptr) h.f = &f;
      h.ends.push_back({plan.node_of_process[i], f.fd, 0, f.cloexec});
    }
  }
  std::vector<PlannedObject> pairs, singles, connecting;
  std::set<uint64_t> done;
  auto make = [&](PlannedObject::Kind kind, const Held& a, const Held* b) {
    PlannedObject o;
    o.kind = kind;
    o.inode = a.f->socket.inode;
    o.what = "socket:[" + std::to_string(o.inode) + "]";
    o.desc[0] = a.f;
    o.ends = a.ends;
    if (b) {
      o.desc[1] = b->f;
      for (ObjectEnd e : b->ends) {
        e.end = 1;
        o.ends.push_back(e);
      }
    }
    return o;
  };
  // Peers: Unix by inode, inet by address pair.
  std::map<uint64_t, uint64_t> unix_peer;
  for (auto& [ino, h] : by_inode) {
    if (done.count(ino)) continue;
    const image::SocketInfo& s = h.f->socket;
    const Held* peer = nullptr;
    uint64_t peer_ino = 0;
    if (s.state == image::SocketInfo::State::kConnected) {
      if (s.family == AF_UNIX) {
        auto it = by_inode.find(s.peer_inode);
        if (it != by_inode.end() && it->first != ino && state::IsConnectionPair(s, it->second.f->socket)) {
          peer = &it->second;
          peer_ino = it->first;
        }
      } else {
        for (auto& [ino2, h2] : by_inode) {
          if (ino2 != ino && !done.count(ino2) && state::IsConnectionPair(s, h2.f->socket)) {
            peer = &h2;
            peer_ino = ino2;
            break;
          }
        }
      }
    }
    done.insert(ino);
    if (peer) {
      done.insert(peer_ino);
      pairs.push_back(make(PlannedObject::Kind::kSocketPair, h, peer));
    } else if (state::ConnectsToAddress(s)) {
      connecting.push_back(make(PlannedObject::Kind::kSocket, h, nullptr));
    } else {
      singles.push_back(make(PlannedObject::Kind::kSocket, h, nullptr));
    }
  }
  for (auto* v : {&singles, &pairs, &connecting})
    for (auto& o : *v) out->push_back(std::move(o));
}

void PlanShmem(const TreePlan& plan, const std::vector<const image::ProcessImage*>& images,
               std::vector<PlannedObject>* out) {
  std::map<uint64_t, PlannedObject> by_id;
  for (size_t i = 0; i < images.size(); ++i) {
    const size_t node = plan.node_of_process[i];
    for (const image::MemoryArea& a : images[i]->areas) {
      if (a.shmem_id == 0) continue;
      PlannedObject& o = by_id[a.shmem_id];
      if (o.ends.empty()) {
        o.kind = PlannedObject::Kind::kShmem;
        o.shmem_id = a.shmem_id;
        o.shmem_name = a.name;
        o.what = "shared memory " + (a.name.empty() ? std::string("(anonymous)") : a.name);
      }
      if (o.shmem_path.empty()) o.shmem_path = state::ShmemPath(a);
      o.shmem_size = std::max({o.shmem_size, a.file_offset + a.size(), o.shmem_path.empty() ? 0 : a.file_size});
      bool have = false;
      for (const ObjectEnd& e : o.ends) have |= e.node == node;
      if (!have) o.ends.push_back({node, -1, 0, true});
    }
    for (const image::FileDescriptor& f : images[i]->fds) {
      if (f.shmem_id == 0 || f.stdio_alias >= 0) continue;
      PlannedObject& o = by_id[f.shmem_id];
      if (o.ends.empty()) {
        o.kind = PlannedObject::Kind::kShmem;
        o.shmem_id = f.shmem_id;
        o.shmem_name = f.path;
        o.what = "shared memory " + f.path;
      }
      const bool deleted = f.path.size() > 10 && f.path.compare(f.path.size() - 10, 10, " (deleted)") == 0;
      if (o.shmem_path.empty() && f.path.rfind("/dev/shm/", 0) == 0 && !deleted) o.shmem_path = f.path;
      o.shmem_size = std::max(o.shmem_size, f.shmem_size);
      if (!f.shmem_data.empty()) o.shmem_data.push_back(&f.shmem_data);
      o.shmem_offset = f.offset;
      std::erase_if(o.ends, [&](const ObjectEnd& e) { return e.node == node && e.fd < 0; });
      o.ends.push_back({node, f.fd, 0, f.cloexec});
    }
  }
  for (auto& [id, o] : by_id) {
    o.creator = CommonAncestor(plan, o.ends);
    out->push_back(std::move(o));
  }
}

void PlanSharedAnon(const TreePlan& plan, const std::vector<const image::ProcessImage*>& images,
                    std::vector<PlannedObject>* out) {
  std::map<std::pair<int32_t, int32_t>, PlannedObject> by_holder;
  for (size_t i = 0; i < images.size(); ++i) {
    for (const image::FileDescriptor& f : images[i]->fds) {
      if (f.shared_pid == 0 || f.stdio_alias >= 0) continue;
      PlannedObject& o = by_holder[{f.shared_pid, f.shared_fd}];
      o.kind = PlannedObject::Kind::kAnon;
      // Recreated from the lowest holder's own record if it is in the job.
      if (o.desc[0] == nullptr || (images[i]->pid == f.shared_pid && f.fd == f.shared_fd)) o.desc[0] = &f;
      o.what = "pid " + std::to_string(f.shared_pid) + " fd " + std::to_string(f.shared_fd) + " (" + f.path + ")";
      o.ends.push_back({plan.node_of_process[i], f.fd, 0, f.cloexec});
    }
  }
  for (auto& [key, o] : by_holder) {
    o.creator = CommonAncestor(plan, o.ends);
    out->push_back(std::move(o));
  }
}

}  // namespace

StatusOr<std::vector<PlannedObject>> PlanObjects(const TreePlan& plan,
                                                 const std::vector<const image::ProcessImage*>& images) {
  ASSIGN_OR_RETURN(std::vector<PlannedObject> out, PlanPipes(plan, images));
  PlanShmem(plan, images, &out);
  PlanSharedAnon(plan, images, &out);
  PlanSockets(plan, images, &out);
  return out;
}

bool IsPlannedFd(const std::vector<PlannedObject>& objects, const TreePlan& plan, size_t process, int32_t fd) {
  const size_t node = plan.node_of_process[process];
  for (const PlannedObject& o : objects)
    for (const ObjectEnd& e : o.ends)
      if (e.node == node && e.fd == fd && fd >= 0) return true;
  return false;
}

}  // namespace stasis::restore
