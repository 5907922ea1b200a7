"""`stasis doctor`: says what this node allows, and what to fix when a job
cannot start.  The failing case is made real, not simulated: the test runs
inside a user namespace of its own whose user.max_user_namespaces is 0
(that sysctl is per user namespace), exactly what RHEL/STIG nodes set."""

import json
import shutil
import subprocess

import pytest

from conftest import both_users


@both_users
def test_doctor_ok_on_this_node(h):
    r = h.stasis("doctor", "-c", h.ckpt)
    assert r.returncode == 0, r.stdout + r.stderr
    for name in ("user namespaces", "clone3 set_tid", "PAGEMAP_SCAN", "ckpt dir", "agent library"):
        assert name in r.stdout, r.stdout
    assert "Stasis can run jobs on this node." in r.stdout
    r = h.stasis("doctor", "--json", "-c", h.ckpt)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] is True
    verdicts = {f["name"]: f["verdict"] for f in report["findings"]}
    assert verdicts["user namespaces"] == "ok", report
    assert verdicts["clone3 set_tid"] == "ok", report


def _in_userns_without_userns(h, argv):
    """Runs argv in a fresh user namespace whose max_user_namespaces is 0."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare(1) (util-linux) is not installed")
    # Root of that namespace is the test's user outside: a runtime dir of
    # its own keeps Stasis from looking at /tmp/stasis-0.
    rt = h.path("runtime")
    rt.mkdir(mode=0o700, exist_ok=True)
    h.own(rt)
    script = 'echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"'
    return h.run(["unshare", "--user", "--map-root-user", "/bin/sh", "-c", script, "sh"] + argv,
                 env_extra={"XDG_RUNTIME_DIR": str(rt)})


@both_users
def test_doctor_names_the_cause_and_fix(h):
    r = _in_userns_without_userns(h, [h.stasis_bin, "doctor", "-c", str(h.ckpt)])
    assert r.returncode == 1, r.stdout + r.stderr
    assert "FAIL  user namespaces" in r.stdout, r.stdout
    assert "user.max_user_namespaces=0" in r.stdout, r.stdout
    assert "sysctl -w user.max_user_namespaces=" in r.stdout, r.stdout
    assert "cannot run jobs here" in r.stdout


@both_users
def test_launch_that_cannot_start_gives_the_diagnosis(h):
    out = h.path("never.txt")
    r = _in_userns_without_userns(h, [h.stasis_bin, "launch", "--coord-port", str(h.port), "-c",
                                      str(h.ckpt), "/bin/sh", "-c", f"echo ran > {out}"])
    assert r.returncode != 0, r.stdout + r.stderr
    assert "user.max_user_namespaces is 0" in r.stderr, r.stderr
    assert "stasis doctor" in r.stderr, r.stderr
    assert not out.exists()
