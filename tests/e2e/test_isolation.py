"""Jobs do not disturb each other: each job numbers its processes from a
pid base of its own (not pid 2 for every job, which made pid-named files in
/tmp and /dev/shm collide between concurrent jobs), kept across restart; a
second job cannot join a coordinator that already serves one; GNU screen
and tmux run inside a job; the installed agent is versioned so that
checkpoints outlive a reinstall, and images name the Stasis that wrote them."""

import json
import os
import pathlib
import re
import shutil
import subprocess

import pytest

from conftest import PY, Harness, both_users, read_lines, wait_until

PID_ROOM = 1000  # src/job/pid_range.h kPidRoom

PROBE = """
import os, sys, time
n, delay = int(sys.argv[1]), float(sys.argv[2])
print(f"main {os.getpid()}", flush=True)
def child(tag):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    print(f"child {tag} {pid}", flush=True)
child(0)
for i in range(1, n + 1):
    print(f"step {i} {os.getpid()}", flush=True)
    if i % 5 == 0:
        child(i)
    time.sleep(delay)
"""


def _probe(h, n=400, delay=0.05):
    path = h.path("pidprobe.py")
    path.write_text(PROBE)
    return [PY, str(path), str(n), str(delay)]


def _pids(lines, kind):
    return [int(l.split()[-1]) for l in lines if l.startswith(kind + " ")]


def _check_range(lines):
    (main,) = _pids(lines, "main")
    assert main >= 1000, f"main pid {main}: the job's pids should start at its own base, not 2"
    children = _pids(lines, "child")
    assert children, lines
    for c in children:
        assert main < c < main + PID_ROOM, f"child pid {c} is outside the job's range from {main}"
    return main


@both_users
def test_concurrent_jobs_get_different_pids(h):
    h2 = Harness(h.build, h.user, h.request)
    try:
        a = h.launch(_probe(h))
        b = h2.launch(_probe(h2))
        a.wait_match(r"^child 5 ")
        b.wait_match(r"^child 5 ")
        main_a, main_b = _check_range(a.lines()), _check_range(b.lines())
        assert main_a != main_b, (f"two concurrent jobs both have main pid {main_a}: pid-named files "
                                  f"in /tmp and /dev/shm would collide")
    finally:
        h2.cleanup()


@both_users
def test_pids_after_restart_stay_in_the_jobs_range(h):
    launch = h.launch(_probe(h, n=200, delay=0.05))
    launch.wait_match(r"^step 12 ")
    h.checkpoint(kill=True)
    launch.wait(30)
    pre = launch.lines()
    main = _check_range(pre)
    restart = h.restart(h.ckpt)
    restart.wait_match(r"^child 200 ", timeout=60)
    assert restart.wait(60) == 0, restart.err_text()
    post = restart.lines()
    steps = [l for l in post if l.startswith("step ")]
    assert steps and all(int(l.split()[2]) == main for l in steps), (
        f"the restarted main process should keep pid {main}: {steps[:3]}")
    new_children = _pids(post, "child")
    assert new_children, post
    for c in new_children:
        assert main < c < main + PID_ROOM, f"child {c} created after the restart is outside the range from {main}"


def test_second_launch_on_a_busy_coordinator_is_refused(h):
    first = h.launch(_probe(h))
    first.wait_match(r"^step 3 ")
    marker = h.path("second_ran")
    r = h.stasis("launch", "--coord-port", h.port, "-c", h.ckpt, "sh", "-c", f"touch {marker}")
    assert r.returncode != 0, f"a second launch on a busy coordinator must fail: {r.stdout} {r.stderr}"
    assert "already serves job" in r.stderr and "--coord-port" in r.stderr and "stasis quit" in r.stderr, r.stderr
    assert not marker.exists(), "the refused program must not run"
    # The first job is undisturbed and still checkpoints.
    n = len(first.lines())
    first.wait_nlines(n + 2)
    h.checkpoint()


def _grows(path, h, what):
    wait_until(lambda: len(read_lines(path)) >= 3, 30, f"{what} writing to {path}", h.diag)
    n = len(read_lines(path))
    wait_until(lambda: len(read_lines(path)) >= n + 3, 30, f"{what} still writing to {path}", h.diag)


def _refuses_pty_checkpoint(h):
    """A pty created inside the job is not restored yet: the checkpoint says
    so, naming the master (state/losses.h; --strict would fail it), and
    the job goes on."""
    r = h.stasis("checkpoint")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "/dev/ptmx" in r.stdout + r.stderr, (r.stdout, r.stderr)


@both_users
def test_screen_runs_in_a_job(h):
    if shutil.which("screen") is None:
        pytest.skip("GNU screen is not installed (apt-get install screen)")
    out = h.path("screen.log")
    out.touch()
    h.own(out)
    session = f"stasis-e2e-{h.port}"
    launch = h.launch(["screen", "-dmS", session, "sh", "-c", f"while :; do echo tick >> {out}; sleep 0.05; done"])
    _grows(out, h, "a loop inside screen")
    r = h.stasis("status", "--json")
    assert r.returncode == 0, r.stderr
    assert any("screen" in p["program"].lower() for p in json.loads(r.stdout)["processes"]), r.stdout
    _refuses_pty_checkpoint(h)
    _grows(out, h, "a loop inside screen after the refused checkpoint")
    h.run(["screen", "-S", session, "-X", "quit"])
    launch.wait(30)


@both_users
def test_tmux_runs_in_a_job(h):
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (apt-get install tmux)")
    out = h.path("tmux.log")
    out.touch()
    h.own(out)
    sock = f"stasis-e2e-{h.port}"
    # tmux runs the command with $SHELL, else the passwd shell (nobody's is
    # nologin).
    launch = h.launch(["tmux", "-L", sock, "new-session", "-d", f"while :; do echo tick >> {out}; sleep 0.05; done"],
                      env_extra={"SHELL": "/bin/sh"})
    _grows(out, h, "a loop inside tmux")
    _refuses_pty_checkpoint(h)
    _grows(out, h, "a loop inside tmux after the refused checkpoint")
    h.run(["tmux", "-L", sock, "kill-server"], env_extra={"SHELL": "/bin/sh"})
    launch.wait(30)


def _project_version():
    text = (pathlib.Path(__file__).resolve().parents[2] / "CMakeLists.txt").read_text()
    return re.search(r"project\(stasis VERSION (\S+)", text).group(1)


def test_version_is_recorded(h):
    version = _project_version()
    r = h.stasis("--version")
    assert r.returncode == 0 and r.stdout.startswith(f"stasis {version}"), (r.stdout, r.stderr)
    launch = h.launch(h.wl("count", 400, 0.05))
    launch.wait_line("3")
    _, manifest = h.checkpoint()
    m = json.loads(pathlib.Path(manifest).read_text())
    assert m["stasis_version"].startswith(version), m
    (image,) = h.manifest_images(manifest)
    r = h.stasis("inspect", "--json", image)
    assert r.returncode == 0, r.stderr
    assert f'"stasis_version": "{version}' in r.stdout, r.stdout[:2000]
    text = h.stasis("inspect", image).stdout
    assert f"stasis version: {version}" in text, text
    assert re.search(r"agent: +/\S+/libstasis_agent\.so", text), text


@pytest.mark.timeout(300)
def test_installed_agent_is_versioned_and_needed_at_restart(h):
    if os.geteuid() != 0 and not os.access(h.build, os.W_OK):
        pytest.skip("cmake --install needs a writable build directory")
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not installed")
    version = _project_version()
    prefix = h.path("prefix")
    r = subprocess.run(["cmake", "--install", str(h.build), "--prefix", str(prefix)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    agent_dir = prefix / "lib" / "stasis" / version
    assert (agent_dir / "libstasis_agent.so").is_file(), list(prefix.rglob("*"))
    stasis = str(prefix / "bin" / "stasis")
    launch = h.start([stasis, "launch", "--coord-port", h.port, "-c", h.ckpt] + h.wl("count", 400, 0.05),
                     "launch")
    launch.wait_line("3")
    h.checkpoint(kill=True)
    launch.wait(30)
    before = launch.lines()
    (image,) = h.images()
    text = h.run([stasis, "inspect", image]).stdout
    assert f"agent:          {agent_dir}/libstasis_agent.so" in text, text

    # The agent of the checkpoint is gone (that version was uninstalled; the
    # restarting Stasis has an agent of its own elsewhere).
    moved = h.path("moved")
    agent_dir.rename(moved)
    bad = h.start([stasis, "restart", image], "restart_missing",
                  env_extra={"STASIS_AGENT_LIB": str(h.build / "lib" / "libstasis_agent.so")})
    assert bad.wait(60) != 0
    assert re.search(r"the Stasis agent \S+libstasis_agent\.so that this process ran with .* is missing",
                     bad.err_text()), bad.err_text()
    assert bad.lines() == []

    moved.rename(agent_dir)
    good = h.start([stasis, "restart", image], "restart")
    assert good.wait(90) == 0, good.err_text()
    after = good.lines()
    assert before + after == [str(i) for i in range(1, 401)], (before[-3:], after[:3])
