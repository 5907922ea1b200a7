// Tests of src/restore/tree: the process-tree plan on synthetic trees.
#include <gtest/gtest.h>

#include "restore/objects.h"
#include "test_images.h"
#include "restore/tree.h"

namespace stasis::restore {
namespace {

using Group = TreeNode::Group;

TreeProcess P(int32_t pid, int32_t ppid, int32_t pgid = 0, int32_t sid = 0) {
  TreeProcess p;
  p.pid = pid;
  p.ppid = ppid;
  p.pgid = pgid;
  p.sid = sid;
  p.tids = {pid};
  return p;
}

const TreeNode& NodeOf(const TreePlan& plan, int32_t pid) {
  for (const auto& n : plan.nodes)
    if (n.pid == pid) return n;
  ADD_FAILURE() << "no node for pid " << pid;
  return plan.nodes.at(0);
}

std::vector<int32_t> ChildPids(const TreePlan& plan, int32_t pid) {
  std::vector<int32_t> out;
  for (size_t c : NodeOf(plan, pid).children) out.push_back(plan.nodes[c].pid);
  return out;
}

TEST(TreePlan, SingleProcessIsOneRoot) {
  auto plan = PlanTree({P(2, 1)});
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  ASSERT_EQ(plan->roots.size(), 1u);
  EXPECT_EQ(plan->nodes[plan->roots[0]].pid, 2);
  EXPECT_EQ(plan->nodes[0].group, Group::kInherit);
  EXPECT_FALSE(plan->nodes[0].setsid);
}

TEST(TreePlan, ParentCreatesChildrenInPidOrder) {
  auto plan = PlanTree({P(5, 2), P(2, 1), P(3, 2), P(7, 3)});
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  ASSERT_EQ(plan->roots.size(), 1u);
  EXPECT_EQ(plan->nodes[plan->roots[0]].pid, 2);
  EXPECT_EQ(ChildPids(*plan, 2), (std::vector<int32_t>{3, 5}));
  EXPECT_EQ(ChildPids(*plan, 3), (std::vector<int32_t>{7}));
  // Subtree: depth first in creation order.
  std::vector<int32_t> sub;
  for (size_t k : plan->Subtree(plan->roots[0])) sub.push_back(plan->nodes[k].pid);
  EXPECT_EQ(sub, (std::vector<int32_t>{2, 3, 7, 5}));
  EXPECT_EQ(plan->nodes[plan->node_of_process[0]].pid, 5);
}

TEST(TreePlan, OrphansAreRoots) {
  auto plan = PlanTree({P(9, 1), P(4, 1), P(10, 0)});
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  ASSERT_EQ(plan->roots.size(), 3u);
  EXPECT_EQ(plan->nodes[plan->roots[0]].pid, 4);
  EXPECT_EQ(plan->nodes[plan->roots[2]].pid, 10);
}

TEST(TreePlan, ZombiesAreChildrenOfTheirParent) {
  TreeProcess parent = P(2, 1);
  parent.zombies = {{6, 7 << 8}, {4, 9}};
  auto plan = PlanTree({parent, P(3, 2)});
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  EXPECT_EQ(ChildPids(*plan, 2), (std::vector<int32_t>{3, 4, 6}));
  const TreeNode& z = NodeOf(*plan, 6);
  EXPECT_TRUE(z.zombie);
  EXPECT_EQ(z.exit_status, 7 << 8);
  EXPECT_EQ(z.process, SIZE_MAX);
}

TEST(TreePlan, RejectsDuplicatePidsAndTids) {
  EXPECT_FALSE(PlanTree({P(2, 1), P(2, 1)}).ok());
  TreeProcess threaded = P(2, 1);
  threaded.tids = {2, 3};
  auto st = PlanTree({threaded, P(3, 2)});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.status().message().find("pid 3"), std::string::npos) << st.status().message();
  TreeProcess zp = P(2, 1);
  zp.zombies = {{2, 0}};
  EXPECT_FALSE(PlanTree({zp}).ok());
  EXPECT_FALSE(PlanTree({P(1, 0)}).ok());
}

TEST(TreePlan, RejectsMissingParentAndCycles) {
  auto st = PlanTree({P(2, 1), P(5, 4)});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.status().message().find("pid 5"), std::string::npos) << st.status().message();
  st = PlanTree({P(2, 1), P(3, 4), P(4, 3)});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.status().message().find("cycle"), std::string::npos) << st.status().message();
  EXPECT_FALSE(PlanTree({P(3, 3)}).ok());
}

TEST(TreePlan, SessionLeadersCallSetsid) {
  // 2 leads session 2 and group 2; 3 inherits both; 4 leads its own group.
  auto plan = PlanTree({P(2, 1, 2, 2), P(3, 2, 2, 2), P(4, 2, 4, 2)});
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  EXPECT_TRUE(NodeOf(*plan, 2).setsid);
  EXPECT_EQ(NodeOf(*plan, 3).group, Group::kInherit);
  EXPECT_FALSE(NodeOf(*plan, 3).setsid);
  EXPECT_EQ(NodeOf(*plan, 4).group, Group::kOwn);
  // Group leaders are created first.
  EXPECT_EQ(ChildPids(*plan, 2), (std::vector<int32_t>{4, 3}));
}

TEST(TreePlan, PipelineMembersJoinAnEarlierSiblingsGroup) {
  // A shell (2) with the pipeline 5 | 6 in group 5 and job 7 | 8 in group 8.
  auto plan = PlanTree({P(2, 1, 2, 2), P(5, 2, 5, 2), P(6, 2, 5, 2), P(7, 2, 8, 2), P(8, 2, 8, 2)});
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  EXPECT_EQ(ChildPids(*plan, 2), (std::vector<int32_t>{5, 8, 6, 7}));
  EXPECT_EQ(NodeOf(*plan, 6).group, Group::kJoin);
  EXPECT_EQ(NodeOf(*plan, 6).pgid, 5);
  EXPECT_EQ(NodeOf(*plan, 7).group, Group::kJoin);
  EXPECT_EQ(NodeOf(*plan, 8).group, Group::kOwn);
}

TEST(TreePlan, RejectsUnsupportedSessionsAndGroups) {
  // Session leader outside its own group.
  EXPECT_FALSE(PlanTree({P(2, 1, 3, 2)}).ok());
  // Child in a session that is neither its own nor its parent's.
  auto st = PlanTree({P(2, 1, 2, 2), P(3, 2, 9, 9)});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.status().message().find("session"), std::string::npos);
  // Group whose leader has exited (not in the tree, not the parent's).
  st = PlanTree({P(2, 1, 2, 2), P(3, 2, 42, 2)});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.status().message().find("process group 42"), std::string::npos);
  // Grandchild's group joined upward: 3 is in 4's group, 4 is 3's child.
  EXPECT_FALSE(PlanTree({P(2, 1, 2, 2), P(3, 2, 4, 2), P(4, 3, 4, 2)}).ok());
}

TEST(TreePlan, RootsInheritTheSupervisorsSessionAndGroup) {
  // Outside-namespace leaders show as 0; children inherit.
  auto plan = PlanTree({P(2, 1, 0, 0), P(3, 2, 0, 0), P(4, 2, 4, 0)});
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  EXPECT_EQ(NodeOf(*plan, 2).group, Group::kInherit);
  EXPECT_EQ(NodeOf(*plan, 3).group, Group::kInherit);
  EXPECT_EQ(NodeOf(*plan, 4).group, Group::kOwn);
}

}  // namespace
}  // namespace stasis::restore

namespace stasis::restore {
namespace {

image::FileDescriptor PipeFd(int32_t fd, uint64_t ino, bool write, int32_t alias = -1) {
  image::FileDescriptor f;
  f.fd = fd;
  f.kind = image::FileDescriptor::Kind::kPipe;
  f.path = "pipe:[" + std::to_string(ino) + "]";
  f.flags = write ? 01 : 0;  // O_WRONLY : O_RDONLY
  f.stdio_alias = alias;
  return f;
}

image::ProcessImage Img(int32_t pid, int32_t ppid) { return testing::MinimalImage(pid, ppid); }

TEST(TreePipes, CreatorIsTheDeepestCommonAncestor) {
  // 2 -> {3 -> {5, 6}, 4}; pipe 100 between 5 and 6 (created by 3), pipe
  // 200 between 3 and 4 (created by 2), pipe 300 only written (not planned).
  std::vector<image::ProcessImage> imgs = {Img(2, 1), Img(3, 2), Img(4, 2), Img(5, 3), Img(6, 3)};
  imgs[3].fds = {PipeFd(1, 100, true)};
  imgs[4].fds = {PipeFd(0, 100, false)};
  imgs[4].pipes = {{100, {'h', 'i'}}};
  imgs[1].fds = {PipeFd(7, 200, false)};
  imgs[2].fds = {PipeFd(8, 200, true), PipeFd(9, 300, true)};
  std::vector<TreeProcess> procs;
  std::vector<const image::ProcessImage*> ptrs;
  for (const auto& i : imgs) {
    procs.push_back(TreeProcessOf(i));
    ptrs.push_back(&i);
  }
  auto plan = PlanTree(procs);
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  auto pipes = PlanObjects(*plan, ptrs);
  ASSERT_TRUE(pipes.ok()) << pipes.status().message();
  ASSERT_EQ(pipes->size(), 2u);
  const PlannedObject& a = (*pipes)[0];
  EXPECT_EQ(a.inode, 100u);
  EXPECT_EQ(plan->nodes[a.creator].pid, 3);
  EXPECT_EQ(a.pipe.bytes, (std::vector<uint8_t>{'h', 'i'}));
  ASSERT_EQ(a.ends.size(), 2u);
  const PlannedObject& b = (*pipes)[1];
  EXPECT_EQ(plan->nodes[b.creator].pid, 2);
  EXPECT_TRUE(IsPlannedFd(*pipes, *plan, 4, 0));
  EXPECT_FALSE(IsPlannedFd(*pipes, *plan, 2, 9));
}

TEST(TreePipes, StdioReadersAndSeparateRoots) {
  std::vector<image::ProcessImage> imgs = {Img(2, 1), Img(3, 1)};
  imgs[0].fds = {PipeFd(0, 100, false, 0), PipeFd(4, 200, true)};  // stdin from outside
  imgs[1].fds = {PipeFd(5, 200, false)};
  std::vector<TreeProcess> procs = {TreeProcessOf(imgs[0]), TreeProcessOf(imgs[1])};
  auto plan = PlanTree(procs);
  ASSERT_TRUE(plan.ok());
  auto pipes = PlanObjects(*plan, {&imgs[0], &imgs[1]});
  ASSERT_TRUE(pipes.ok());
  ASSERT_EQ(pipes->size(), 1u);
  EXPECT_EQ((*pipes)[0].inode, 200u);
  EXPECT_EQ((*pipes)[0].creator, SIZE_MAX);  // the supervisor

  imgs[1].pipes = {{200, std::vector<uint8_t>((1 << 20) + 1, 'x')}};
  EXPECT_FALSE(PlanObjects(*plan, {&imgs[0], &imgs[1]}).ok());
}

}  // namespace
}  // namespace stasis::restore
