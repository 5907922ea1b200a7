"""Signal state across checkpoint/restart (tests/workloads/signals.c):
thread-directed and process-directed pending signals keep their siginfo,
dispositions and an interval timer survive, and the same holds when the
restart uses the vDSO proxy (STASIS_VDSO_PROXY=1) instead of moving the new
kernel's vDSO into place."""

import pytest

from conftest import assert_concatenation, both_users


def _run(h, reference, env_extra=None):
    ref_go = h.path("ref-go")
    ref_go.touch()
    ref = reference(h.wl("signals", ref_go))
    go = h.path("go")
    launch = h.launch(h.wl("signals", go))
    launch.wait_line("ready")
    h.checkpoint(kill=True)
    assert launch.wait(30) == 0, h.diag()
    r = h.restart(h.ckpt, env_extra=env_extra)
    # The restarted program is parked until the go file exists; create it
    # only once the restart is under way, so the signals stay pending
    # through the whole restore.
    go.touch()
    assert r.wait(120) == 0, h.diag()
    assert_concatenation([launch.lines(), r.lines()], ref)


@both_users
def test_pending_signals_dispositions_itimer(h, reference):
    _run(h, reference)


def test_vdso_proxy_restart(h, reference):
    _run(h, reference, env_extra={"STASIS_VDSO_PROXY": "1"})
