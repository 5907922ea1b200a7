// Process-tree plan; see tree.h.  Facts on what the kernel allows from
// setsid(2), setpgid(2) and CRIU's restore order (criu/cr-restore.c); the
// code is our own.
#include "restore/tree.h"

#include <algorithm>
#include <map>
#include <set>

namespace stasis::restore {
namespace {

std::string Pid(int32_t pid) { return "pid " + std::to_string(pid); }

}  // namespace

std::vector<size_t> TreePlan::Subtree(size_t node) const {
  std::vector<size_t> out;
  std::vector<size_t> stack = {node};
  while (!stack.empty()) {
    size_t n = stack.back();
    stack.pop_back();
    out.push_back(n);
    const auto& ch = nodes[n].children;
    for (auto it = ch.rbegin(); it != ch.rend(); ++it) stack.push_back(*it);
  }
  return out;
}

TreeProcess TreeProcessOf(const image::ProcessImage& img) {
  TreeProcess p;
  p.pid = img.pid;
  p.ppid = img.ppid;
  p.pgid = img.pgid;
  p.sid = img.sid;
  for (const auto& t : img.threads) p.tids.push_back(t.tid);
  p.zombies = img.zombies;
  return p;
}

StatusOr<TreePlan> PlanTree(const std::vector<TreeProcess>& procs) {
  if (procs.empty()) return Status::Error("the checkpoint has no processes");
  TreePlan plan;
  std::map<int32_t, std::string> used;  // every pid and tid -> what uses it
  auto claim = [&](int32_t id, const std::string& what) -> Status {
    if (id <= 1) return Status::Error(what + ": invalid pid " + std::to_string(id));
    auto [it, fresh] = used.emplace(id, what);
    if (!fresh) return Status::Error(what + ": pid " + std::to_string(id) + " is also " + it->second);
    return Status::Ok();
  };

  std::map<int32_t, size_t> node_by_pid;
  for (size_t i = 0; i < procs.size(); ++i) {
    const TreeProcess& p = procs[i];
    RETURN_IF_ERROR(claim(p.pid, "process " + std::to_string(p.pid)));
    TreeNode n;
    n.pid = p.pid;
    n.pgid = p.pgid;
    n.process = i;
    node_by_pid[p.pid] = plan.nodes.size();
    plan.node_of_process.push_back(plan.nodes.size());
    plan.nodes.push_back(n);
  }
  for (const TreeProcess& p : procs) {
    for (int32_t tid : p.tids) {
      if (tid == p.pid) continue;
      RETURN_IF_ERROR(claim(tid, "thread " + std::to_string(tid) + " of " + Pid(p.pid)));
    }
  }
  // Parent links of processes, then zombies as children of their parent.
  for (size_t i = 0; i < procs.size(); ++i) {
    const TreeProcess& p = procs[i];
    const size_t n = plan.node_of_process[i];
    auto it = node_by_pid.find(p.ppid);
    if (it != node_by_pid.end()) {
      if (it->second == n) return Status::Error(Pid(p.pid) + " is its own parent");
      plan.nodes[n].parent = it->second;
    } else if (p.ppid == 1 || p.ppid == 0) {
      plan.roots.push_back(n);
    } else {
      return Status::Error(Pid(p.pid) + ": its parent, pid " + std::to_string(p.ppid) +
                           ", is not part of the checkpoint (only the supervisor, pid 1, may be outside)");
    }
    for (const image::ZombieChild& z : p.zombies) {
      RETURN_IF_ERROR(claim(z.pid, "unreaped child " + std::to_string(z.pid) + " of " + Pid(p.pid)));
      TreeNode zn;
      zn.pid = z.pid;
      zn.zombie = true;
      zn.exit_status = z.exit_status;
      zn.parent = n;
      plan.nodes.push_back(zn);
    }
  }
  std::sort(plan.roots.begin(), plan.roots.end(),
            [&](size_t a, size_t b) { return plan.nodes[a].pid < plan.nodes[b].pid; });
  if (plan.roots.empty()) return Status::Error("the process tree has no root (a cycle of parent links)");

  // Children lists: group leaders first (so later siblings can join their
  // groups), then by pid.
  auto leads = [&](const TreeNode& n) {
    if (n.zombie) return false;
    const TreeProcess& p = procs[n.process];
    return p.pgid == p.pid || p.sid == p.pid;
  };
  for (size_t n = 0; n < plan.nodes.size(); ++n) {
    if (plan.nodes[n].parent != SIZE_MAX) plan.nodes[plan.nodes[n].parent].children.push_back(n);
  }
  for (TreeNode& n : plan.nodes) {
    std::sort(n.children.begin(), n.children.end(), [&](size_t a, size_t b) {
      const TreeNode &x = plan.nodes[a], &y = plan.nodes[b];
      if (leads(x) != leads(y)) return leads(x);
      return x.pid < y.pid;
    });
  }

  // Sessions and groups, parents before children.
  std::vector<int32_t> eff_sid(plan.nodes.size(), 0), eff_pgid(plan.nodes.size(), 0);
  std::vector<bool> seen(plan.nodes.size(), false);
  size_t reached = 0;
  std::vector<size_t> order(plan.roots.begin(), plan.roots.end());
  for (size_t at = 0; at < order.size(); ++at) {
    const size_t n = order[at];
    seen[n] = true;
    ++reached;
    TreeNode& node = plan.nodes[n];
    if (!node.zombie) {
      const TreeProcess& p = procs[node.process];
      eff_sid[n] = p.sid;
      eff_pgid[n] = p.pgid;
      if (p.sid == p.pid) {
        if (p.pgid != p.pid)
          return Status::Error(Pid(p.pid) + " leads session " + std::to_string(p.sid) +
                               " but is in process group " + std::to_string(p.pgid));
        node.setsid = true;
      } else if (node.parent == SIZE_MAX) {
        node.group = p.pgid == p.pid ? TreeNode::Group::kOwn : TreeNode::Group::kInherit;
      } else {
        const size_t q = node.parent;
        if (p.sid != eff_sid[q])
          return Status::Error(Pid(p.pid) + " is in session " + std::to_string(p.sid) + ", its parent in " +
                               std::to_string(eff_sid[q]) + ": restoring that is not supported");
        if (p.pgid == p.pid) {
          node.group = TreeNode::Group::kOwn;
        } else if (p.pgid == eff_pgid[q]) {
          node.group = TreeNode::Group::kInherit;
        } else {
          bool found = false;
          for (size_t s : plan.nodes[q].children) {
            if (s == n) break;
            found |= !plan.nodes[s].zombie && eff_pgid[s] == p.pgid && eff_sid[s] == p.sid;
          }
          if (!found)
            return Status::Error(Pid(p.pid) + " is in process group " + std::to_string(p.pgid) +
                                 ", which is neither its own, its parent's nor an earlier sibling's: "
                                 "restoring that is not supported");
          node.group = TreeNode::Group::kJoin;
        }
      }
    }
    for (size_t c : node.children) order.push_back(c);
  }
  if (reached != plan.nodes.size()) {
    for (size_t n = 0; n < plan.nodes.size(); ++n)
      if (!seen[n]) return Status::Error(Pid(plan.nodes[n].pid) + " is part of a cycle of parent links");
  }
  return plan;
}

}  // namespace stasis::restore
