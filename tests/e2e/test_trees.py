"""Checkpoint/restart of process trees: every process comes back with its
pid, parent, process group and session; unreaped children come back as
zombies; a shell script that forks a command per step finishes its log.
Outputs are compared with what an uninterrupted run prints."""

import json
import pathlib
import re

import pytest

from conftest import (WORKLOADS_SRC, assert_concatenation, both_users, flip_byte_in_page_block,
                      read_lines, wait_until)

TREE_N = 60
TREE_DELAY = 0.03
LINE = re.compile(r"(child\d) i=(\d+) pid=(\d+) ppid=(\d+) pgid=(\d+) sid=(\d+)$")


def _streams(lines):
    """{'parent': [...], 'child1': [...], 'child2': [...]} of tree output."""
    out = {"parent": [], "child1": [], "child2": []}
    for l in lines:
        m = LINE.match(l)
        out[m.group(1) if m else "parent"].append(l)
    return out


def _check_tree(pre, posts, mode="session"):
    """pre: launch output; posts: outputs of restarts of the same checkpoint.
    Each child's lines, launch + restart, are exactly i=1..N with one
    identity; identities relate as fork and setsid make them; the parent
    reaps both children with their exit codes."""
    s_pre = _streams(pre)
    assert s_pre["parent"], f"no parent line before the checkpoint: {pre!r}"
    m = re.match(r"parent pid=(\d+) ppid=(\d+) pgid=(\d+) sid=(\d+)$", s_pre["parent"][0])
    assert m, s_pre["parent"]
    ppid_, _, ppgid, psid = (int(x) for x in m.groups())
    ids = {}
    for k in ("child1", "child2"):
        assert s_pre[k], f"{k} printed nothing before the checkpoint: {pre!r}"
        ids[k] = tuple(int(x) for x in LINE.match(s_pre[k][0]).groups()[2:])
    c1, c2 = ids["child1"], ids["child2"]
    assert c1[1] == ppid_ and c2[1] == ppid_, (ids, ppid_)
    if mode == "session":
        assert (c1[2], c1[3]) == (ppgid, psid), "child1 inherits the parent's group and session"
        assert c2[2] == c2[0] and c2[3] == c2[0], "child2 leads its own session and group"
    else:
        assert (c1[2], c1[3]) == (c1[0], psid), "child1 leads a group in the parent's session"
        assert (c2[2], c2[3]) == (c1[0], psid), "child2 joins child1's group"
    for post in posts:
        s_post = _streams(post)
        for k in ("child1", "child2"):
            pid, ppid, pgid, sid = ids[k]
            expected = [f"{k} i={i} pid={pid} ppid={ppid} pgid={pgid} sid={sid}"
                        for i in range(1, TREE_N + 1)]
            assert s_pre[k] + s_post[k] == expected, (k, s_pre[k], s_post[k])
        assert s_pre["parent"][1:] == []
        assert s_post["parent"] == [f"parent: child1 pid={c1[0]} status=11",
                                    f"parent: child2 pid={c2[0]} status=12",
                                    "parent: no more children"], s_post["parent"]


def _launch_tree_and_checkpoint(h, mode="session"):
    launch = h.launch(h.wl("tree", TREE_N, TREE_DELAY, mode))

    def both_running():
        s = _streams(launch.lines())
        return len(s["child1"]) >= 3 and len(s["child2"]) >= 3

    wait_until(both_running, 30, "both children to print 3 lines", h.diag, alive=launch.running)
    gen, manifest = h.checkpoint(kill=True)
    assert launch.wait(30) == 0, f"launch must exit 0 after checkpoint --kill\n{h.diag()}"
    h.assert_no_job_processes()
    assert len(h.manifest_images(manifest)) == 3, h.manifest_images(manifest)
    return launch.lines(), manifest


@both_users
def test_tree_fork_waitpid(h):
    """(a, d) A parent and two children, checkpointed while all run."""
    pre, _ = _launch_tree_and_checkpoint(h)
    r = h.restart(h.ckpt)
    assert r.wait(120) == 0, f"restarted tree must exit 0\n{h.diag()}"
    _check_tree(pre, [r.lines()])


def test_tree_process_group_joined_by_sibling(h):
    """child2 is in child1's process group (setpgid to a sibling's group):
    restored by creating child1 first and joining child2 to its group."""
    pre, _ = _launch_tree_and_checkpoint(h, "group")
    r = h.restart(h.ckpt)
    assert r.wait(120) == 0, f"restarted tree must exit 0\n{h.diag()}"
    _check_tree(pre, [r.lines()], "group")


def test_tree_restart_twice(h):
    """(e) The same checkpoint restarted twice gives the same continuation."""
    pre, manifest = _launch_tree_and_checkpoint(h)
    posts = []
    for i in range(2):
        r = h.restart(manifest, name=f"restart{i}")
        assert r.wait(120) == 0, f"restart {i} must exit 0\n{h.diag()}"
        h.assert_no_job_processes()
        posts.append(r.lines())
    _check_tree(pre, posts)
    assert posts[0] == posts[1] or sorted(posts[0]) == sorted(posts[1])


@pytest.mark.parametrize("which", ["root", "leaf"])
def test_tree_corrupt_image_nothing_runs(h, which):
    """A corrupt page in any image of the tree: the restart fails naming
    that image, no process of the tree runs, nothing is left behind."""
    pre, manifest = _launch_tree_and_checkpoint(h)
    procs = sorted(json.loads(pathlib.Path(manifest).read_text())["processes"],
                   key=lambda p: p["pid"])
    image = pathlib.Path(manifest).parent / procs[0 if which == "root" else -1]["image"]
    flip_byte_in_page_block(image)
    r = h.restart(manifest)
    rc = r.wait(60)
    err = r.err_text()
    assert rc != 0, f"restart with a corrupt image must fail\n{h.diag()}"
    assert image.name in err, f"stderr does not name {image.name}: {err!r}"
    assert re.search(r"checksum|corrupt", err, re.I), err
    h.assert_no_job_processes()
    assert r.lines() == [], f"a process ran after a failed restart: {r.lines()}"


def test_tree_status_lists_every_process(h):
    """`stasis status` shows all three processes of a running tree."""
    launch = h.launch(h.wl("tree", 400, 0.05))
    wait_until(lambda: len(_streams(launch.lines())["child2"]) >= 1, 30, "child2 output",
               h.diag, alive=launch.running)

    def three():
        r = h.stasis("status")
        return r.returncode == 0 and len(re.findall(r"pid \d+  tree", r.stdout)) >= 3 and r.stdout
    wait_until(three, 30, "three processes in stasis status", h.diag)


def test_zombie_children_survive_restart(h):
    """(b) Unreaped children at checkpoint are zombies after restart: the
    parent's waitpid returns their pids and statuses."""
    go = h.path("go")
    launch = h.launch(h.wl("zombie", go))
    m = launch.wait_match(r"zombies a=(\d+) b=(\d+)")
    a, b = int(m.group(1)), int(m.group(2))
    _, manifest = h.checkpoint(kill=True)
    assert launch.wait(30) == 0, h.diag()
    go.touch()  # the restored parent reaps as soon as it runs
    h.own(go)
    r = h.restart(h.ckpt)
    assert r.wait(120) == 0, f"restarted program must exit 0\n{h.diag()}"
    assert r.lines() == [f"reaped {a} exited 7", f"reaped {b} signaled 15", "no more children"], h.diag()


@pytest.mark.parametrize("delay", [0.05, 0.002])
def test_bash_steps_log(h, delay):
    """(c) bash runs `sleep` and /bin/echo >> LOG per step; checkpointed
    mid-run and restarted, the log is complete and in order.  With a short
    delay the checkpoints land while processes fork and exec: two
    checkpoints that resume, then one that kills."""
    log = h.path("steps.log")
    n = 40 if delay > 0.01 else 400
    launch = h.launch(["/bin/bash", WORKLOADS_SRC / "steps.sh", log, n, delay])
    for k, at in enumerate([5, n // 4, n // 2]):
        wait_until(lambda: len(read_lines(log)) >= at, 30, f"{at} steps in the log", h.diag,
                   alive=launch.running)
        h.checkpoint(kill=(k == 2))
    assert launch.wait(30) == 0, h.diag()
    r = h.restart(h.ckpt)
    assert r.wait(120) == 0, f"restarted script must exit 0\n{h.diag()}"
    assert read_lines(log) == [f"step {i}" for i in range(1, n + 1)] + ["done"]


@pytest.mark.parametrize("writer", ["running", "exited"])
def test_pipe_between_processes(h, reference, writer):
    """A pipe from a child to its parent with bytes in flight at the
    checkpoint: after restart the parent reads every line once, in order,
    then end-of-file.  The writer is still writing, or has exited (its
    zombie and the bytes it left in the pipe are restored)."""
    n = 40
    wdelay = 0.03 if writer == "running" else 0.0
    ref = reference(h.wl("pipes", n, 0, 0))
    launch = h.launch(h.wl("pipes", n, wdelay, 0.05))
    launch.wait_line("got line 3")
    h.checkpoint(kill=True)
    assert launch.wait(30) == 0, h.diag()
    r = h.restart(h.ckpt)
    assert r.wait(120) == 0, f"restarted program must exit 0\n{h.diag()}"
    # (A forked child may warn about the parent agent's socket it inherited.)
    assert not re.search(r"pipe:\[\d+\].*cannot be restored", r.err_text()), r.err_text()
    assert_concatenation([launch.lines(), r.lines()], ref)


def test_bash_pipeline(h):
    """bash runs `count | while read`: the pipe between two children of the
    shell (created by the shell, which no longer holds it) is restored with
    the lines waiting in it."""
    log = h.path("pipeline.log")
    n = 60
    launch = h.launch(["/bin/bash", WORKLOADS_SRC / "pipeline.sh", log, n, h.wl("count")[0]])
    wait_until(lambda: len(read_lines(log)) >= 5, 30, "5 lines in the log", h.diag,
               alive=launch.running)
    h.checkpoint(kill=True)
    assert launch.wait(30) == 0, h.diag()
    r = h.restart(h.ckpt)
    assert r.wait(120) == 0, f"restarted pipeline must exit 0\n{h.diag()}"
    assert read_lines(log) == [f"got {i}" for i in range(1, n + 1)] + ["done"]


def test_tree_chain_checkpoint_after_restart(h):
    """A restarted tree is checkpointed and restarted again: the second
    checkpoint has every process (all agents reconnected) and the output
    still continues exactly."""
    pre, _ = _launch_tree_and_checkpoint(h)
    r1 = h.restart(h.ckpt, name="restart1")

    def progressed():
        s = _streams(r1.lines())
        return len(s["child1"]) >= 3 and len(s["child2"]) >= 3

    wait_until(progressed, 30, "restarted children to print 3 lines", h.diag, alive=r1.running)
    gen, manifest = h.checkpoint(kill=True)
    assert gen == 2
    assert len(h.manifest_images(manifest)) == 3, h.manifest_images(manifest)
    assert r1.wait(30) == 0, h.diag()
    r2 = h.restart(manifest, name="restart2")
    assert r2.wait(120) == 0, f"second restart must exit 0\n{h.diag()}"
    _check_tree(pre + r1.lines(), [r2.lines()])
