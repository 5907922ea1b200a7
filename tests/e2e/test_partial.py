"""Never a silently partial checkpoint.

* A program the job starts with an environment of its own (`env -i`, execve
  with an empty envp, execle, fexecve, posix_spawn, Python's subprocess
  with env={})
  keeps the agent (the exec family is interposed) and comes back at restart.
* A process that cannot have the agent (a static binary) fails the
  checkpoint with its pid and program; the job keeps running.
* A thread that cannot reach the checkpoint handler (io_uring, a vfork
  parent) fails the checkpoint at once, naming it; a thread that blocks the
  checkpoint signal fails it after one agent timeout, not five.
* What a restart will not restore (inotify, pidfd, a pty master, a deleted
  file without saved contents) is said at checkpoint time and listed by
  `stasis inspect`; with --strict (or STASIS_STRICT=1) such a checkpoint
  fails, the job keeps running and the previous checkpoint stays.
"""

import pathlib
import re
import time

import pytest

from conftest import _proc_state, assert_concatenation, both_users, wait_until

N, DELAY = 40, 0.05


def _lines_with(proc, prefix):
    return [l for l in proc.lines() if l.startswith(prefix)]


def _failed_checkpoint(h, timeout=120):
    """`stasis checkpoint` that must fail; returns (message, seconds)."""
    t0 = time.monotonic()
    r = h.stasis("checkpoint", timeout=timeout)
    took = time.monotonic() - t0
    assert r.returncode != 0, f"checkpoint should have failed:\n{r.stdout}\n{r.stderr}\n{h.diag()}"
    return r.stdout + r.stderr, took


def _keeps_running(h, proc, prefix):
    """The job goes on printing `prefix` lines after a failed checkpoint."""
    n = len(_lines_with(proc, prefix))
    wait_until(lambda: len(_lines_with(proc, prefix)) >= n + 3, 30,
               f"the job to go on printing '{prefix}' lines", h.diag, alive=proc.running)


def _job_pids(h, needle):
    """pids of the job's processes whose command line contains `needle`."""
    return [pid for pid, cmd in h.job_processes() if needle in cmd]


def _exec_env_argv(h, mode):
    exec_env = h.wl("exec_env")[0]
    if mode == "python":
        return h.wl("env_subprocess.py", exec_env, N, DELAY)
    return h.wl("exec_env", mode, N, DELAY)


# --------------------------------------------------------------------------
# 1. programs started with an environment of their own keep the agent
# --------------------------------------------------------------------------

@both_users
@pytest.mark.parametrize("mode", ["envi", "empty", "execle", "fexecve", "spawn", "python"])
def test_child_with_own_environment_comes_back(h, reference, mode):
    argv = _exec_env_argv(h, mode)
    ref = reference(argv)
    launch = h.launch(argv)
    wait_until(lambda: len(_lines_with(launch, "child ")) >= 5, 30, "the child to print 5 lines",
               h.diag, alive=launch.running)
    gen, manifest = h.checkpoint(kill=True)
    assert launch.wait(30) == 0, h.diag()
    images = h.manifest_images(manifest)
    assert len(images) == 2, f"parent and child must both be in the checkpoint: {images}\n{h.diag()}"
    restart = h.restart(manifest)
    assert restart.wait(60) == 0, h.diag()
    assert_concatenation([launch.lines(), restart.lines()], ref)


def test_injected_environment_keeps_the_programs_own(h):
    """execle with {"ONLY=1"}: the child has ONLY=1, the agent once in
    LD_PRELOAD and each STASIS_* variable once, and nothing else of the
    parent's environment (no PATH)."""
    launch = h.launch(h.wl("exec_env", "execle", 100000, 0.01))
    wait_until(lambda: _lines_with(launch, "child "), 30, "the child to start", h.diag,
               alive=launch.running)
    pids = wait_until(lambda: [p for p in _job_pids(h, " child ")], 10, "the child's pid", h.diag)
    env = pathlib.Path(f"/proc/{pids[0]}/environ").read_bytes().decode().split("\0")[:-1]
    names = [e.split("=", 1)[0] for e in env]
    assert "ONLY=1" in env, env
    assert "PATH" not in names, env
    assert len(names) == len(set(names)), f"a variable twice: {env}"
    preload = [e for e in env if e.startswith("LD_PRELOAD=")]
    assert len(preload) == 1 and preload[0].count("libstasis_agent.so") == 1, env
    assert "STASIS_SUPERVISOR_SOCKET" in names and "STASIS_JOB_ID" in names, env


@both_users
def test_static_child_fails_the_checkpoint(h):
    static = h.build / "workloads" / "static_child"
    launch = h.launch(h.wl("exec_env", "program", 100000, 0.01, static))
    wait_until(lambda: len(_lines_with(launch, "static ")) >= 5, 30, "the static child to print",
               h.diag, alive=launch.running)
    msg, _ = _failed_checkpoint(h)
    pid = _job_pids(h, "static_child")
    assert "static_child" in msg and "no Stasis agent" in msg and re.search(r"pid \d+", msg), msg
    assert not h.manifests(), "no manifest may exist after a failed checkpoint"
    assert not h.images(), "no image may be left behind"
    assert pid, "the static child must still run"
    _keeps_running(h, launch, "static ")


# --------------------------------------------------------------------------
# 3. threads the checkpoint handler cannot reach
# --------------------------------------------------------------------------

@both_users
def test_io_uring_fails_at_once(h):
    launch = h.launch(h.wl("unreachable", "uring", 300))
    wait_until(lambda: "ready" in launch.lines(), 30, "the ring", h.diag, alive=launch.running)
    msg, took = _failed_checkpoint(h)
    assert "io_uring" in msg and "unreachable" in msg, msg
    assert took < 5, f"refused after {took:.1f} s, not at once: {msg}"
    assert not h.manifests()
    _keeps_running(h, launch, "tick ")


@both_users
def test_vfork_parent_fails_at_once(h):
    launch = h.launch(h.wl("unreachable", "vfork", 300))
    wait_until(lambda: "ready" in launch.lines(), 30, "ready", h.diag, alive=launch.running)
    wait_until(lambda: any(_proc_state(p) == "D" for p in _job_pids(h, "unreachable vfork")), 30,
               "the vfork parent to be suspended", h.diag)
    msg, took = _failed_checkpoint(h)
    assert "vfork" in msg, msg
    assert took < 5, f"refused after {took:.1f} s, not at once: {msg}"
    assert not h.manifests()
    assert launch.running()


def test_blocked_thread_fails_after_one_timeout(h):
    """A thread that blocked the checkpoint signal with a raw system call:
    one quiesce attempt of STASIS_QUIESCE_TIMEOUT (2 s), not five."""
    launch = h.launch(h.wl("unreachable", "blocked", 300), env_extra={"STASIS_QUIESCE_TIMEOUT": "2"})
    wait_until(lambda: "ready" in launch.lines(), 30, "ready", h.diag, alive=launch.running)
    msg, took = _failed_checkpoint(h)
    assert "did not reach the checkpoint handler" in msg and "(unreachable)" in msg, msg
    assert took < 6, f"failed after {took:.1f} s: the attempt was retried"
    assert not h.manifests()
    _keeps_running(h, launch, "tick ")


# --------------------------------------------------------------------------
# 2. what a restart will not restore is said at checkpoint time
# --------------------------------------------------------------------------

LOSSY = {"inotify": "anon_inode:inotify", "pidfd": "anon_inode:[pidfd]", "ptmx": "/dev/ptmx",
         "deleted": "(deleted)"}


@both_users
@pytest.mark.parametrize("mode", sorted(LOSSY))
def test_losses_said_at_checkpoint(h, mode):
    launch = h.launch(h.wl("lossy", mode))
    wait_until(lambda: "ready" in launch.lines(), 30, "ready", h.diag, alive=launch.running)
    r = h.stasis("checkpoint")
    assert r.returncode == 0, r.stderr
    said = [l for l in r.stderr.splitlines() if "restart will not restore" in l]
    assert said and LOSSY[mode] in said[0] and "lossy" in said[0], r.stderr
    assert any("restart will not restore" in l and LOSSY[mode] in l
               for l in launch.err_text().splitlines()), launch.err_text()
    (gen, manifest), = h.manifests().items()
    text = h.stasis("inspect", h.manifest_images(manifest)[0]).stdout
    listed = [l for l in text.splitlines() if l.startswith("not restored:")]
    assert listed and LOSSY[mode] in listed[0], text
    _keeps_running(h, launch, "tick ")


@both_users
@pytest.mark.parametrize("how", ["flag", "env"])
@pytest.mark.parametrize("mode", ["inotify", "deleted"])
def test_strict_fails_and_keeps_previous(h, mode, how):
    go = h.path("go")
    opts, env = (["--strict"], None) if how == "flag" else ([], {"STASIS_STRICT": "1"})
    launch = h.launch(h.wl("lossy", mode, go), *opts, env_extra=env)
    wait_until(lambda: _lines_with(launch, "tick "), 30, "ticks", h.diag, alive=launch.running)
    gen1, manifest1 = h.checkpoint()
    images1 = h.manifest_images(manifest1)
    go.write_text("")
    wait_until(lambda: "ready" in launch.lines(), 30, "ready", h.diag, alive=launch.running)
    msg, _ = _failed_checkpoint(h)
    assert "--strict" in msg and LOSSY[mode] in msg, msg
    assert list(h.manifests()) == [gen1], h.manifests()
    assert sorted(h.images()) == sorted(images1), "only the first checkpoint's images may exist"
    _keeps_running(h, launch, "tick ")
