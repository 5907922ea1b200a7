"""eventfd, timerfd, signalfd and epoll across checkpoint/restart
(tests/workloads/anon_fds.c): a loop driven by a periodic timerfd through
epoll, with an eventfd counter, a signalfd and a self-pipe, checkpointed
mid-run and restarted twice from the same checkpoint; the output must
continue the uninterrupted run exactly."""

import json
import re

from conftest import PY, assert_concatenation, both_users, wait_until

STEPS = 60
PERIOD_MS = 40


@both_users
def test_anon_fds_restart_twice(h, reference):
    ref = reference(h.wl("anon_fds", STEPS, 0 + 1))
    launch = h.launch(h.wl("anon_fds", STEPS, PERIOD_MS))
    # After step 12: the eventfd holds 8+...+12, SIGUSR1 (value 10) is
    # pending for the signalfd, "pipe 12" waits in the pipe.
    launch.wait_line("step 12 signal 10 value 10 ready pipe eventfd")
    _, manifest = h.checkpoint(kill=True)
    assert launch.wait(30) == 0, h.diag()
    assert "warning" not in launch.err_text(), launch.err_text()

    (image,) = h.manifest_images(manifest)
    r = h.stasis("inspect", "--json", image)
    assert r.returncode == 0, r.stderr
    by_kind = {}
    for f in json.loads(r.stdout)["fds"]:
        by_kind.setdefault(f["kind"], []).append(f)
    (efd,), (sfd,), (ep,) = by_kind["eventfd"], by_kind["signalfd"], by_kind["epoll"]
    # The counter holds the steps since the last multiple of 7, up to the
    # last printed one (or one more: the checkpoint may fall inside a step).
    last = int(launch.lines()[-1].split()[1])
    sums = [sum(range(7 * (n // 7) + 1, n + 1)) for n in (last, last + 1)]
    assert efd["eventfd"]["count"] in sums, (efd, last)
    assert sfd["signalfd"]["sigmask"] == 1 << (10 - 1), sfd
    timers = sorted((t["timerfd"] for t in by_kind["timerfd"]), key=lambda t: t["clockid"])
    assert [t["clockid"] for t in timers] == [0, 1], timers  # CLOCK_REALTIME, CLOCK_MONOTONIC
    assert timers[0]["settime_flags"] == 1 and timers[0]["interval_ns"] == 0, timers
    assert 3000 * 10**9 < timers[0]["value_ns"] <= 3600 * 10**9, timers
    assert timers[1]["interval_ns"] == PERIOD_MS * 10**6, timers
    assert 0 < timers[1]["value_ns"] <= PERIOD_MS * 10**6, timers
    targets = ep["epoll"]["targets"]
    assert sorted(t["data"] for t in targets) == [1, 2, 3, 4] and all(t["restorable"] for t in targets), ep
    text = h.stasis("inspect", image)
    assert text.returncode == 0 and re.search(r"target fd \d+ events 0x\w+ data 0x3", text.stdout), text.stdout

    posts = []
    for i in range(2):
        rs = h.restart(manifest, name=f"restart{i}")
        assert rs.wait(120) == 0, f"restart {i} must exit 0\n{h.diag()}"
        assert "warning" not in rs.err_text(), rs.err_text()
        h.assert_no_job_processes()
        posts.append(rs.lines())
        assert_concatenation([launch.lines(), rs.lines()], ref, f"output with restart {i}")
    assert posts[0] == posts[1]


SHARED = r"""
import os, sys, time
efd = os.eventfd(0)
n = int(sys.argv[1])
pid = os.fork()
if pid == 0:  # the child counts on the eventfd it shares with its parent
    for i in range(n):
        os.eventfd_write(efd, 1)
        time.sleep(0.03)
    os._exit(0)
total = 0
while total < n:
    before = total
    total += os.eventfd_read(efd)
    for k in range(before // 10 + 1, total // 10 + 1):
        print("reached", k * 10, flush=True)
os.waitpid(pid, 0)
print("done", flush=True)
"""


@both_users
def test_eventfd_shared_by_two_processes(h):
    """An eventfd inherited across fork stays one object shared by parent
    and child after the restart: the parent keeps receiving the child's
    counts (a copy per process would leave it waiting forever)."""
    n = 80
    script = h.path("shared.py")
    script.write_text(SHARED)
    h.own(script)
    launch = h.launch([PY, str(script), n])
    launch.wait_line("reached 20")
    h.checkpoint(kill=True)
    assert launch.wait(30) == 0, h.diag()
    assert "each process gets its own copy" not in launch.err_text(), launch.err_text()
    ref = [f"reached {k * 10}" for k in range(1, n // 10 + 1)] + ["done"]
    for k in range(2):
        r = h.restart(h.ckpt, name=f"restart{k}")
        assert r.wait(60) == 0, h.diag()
        assert launch.lines() + r.lines() == ref, (launch.lines(), r.lines())
