"""status, inspect, and the CLI's errors: no job, missing program,
unwritable checkpoint directory (at launch and during a run)."""

import json
import os
import re

import pytest

from conftest import NOBODY_GID, NOBODY_UID, assert_suffix, flip_byte_in_page_block


def test_status_and_inspect(h):
    launch = h.launch(h.wl("count", 400, 0.1))
    launch.wait_line("2")

    r = h.stasis("status", "--json")
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["ok"] is True or "ok" not in st
    procs = st["processes"]
    assert len(procs) == 1, procs
    assert "count" in procs[0]["program"], procs
    assert isinstance(procs[0]["pid"], int) and procs[0]["pid"] > 0
    assert st["last_checkpoint"] is None, st
    pid = procs[0]["pid"]

    r = h.stasis("status")
    assert r.returncode == 0, r.stderr
    assert "count" in r.stdout and str(pid) in r.stdout, r.stdout

    gen, manifest = h.checkpoint()
    r = h.stasis("status", "--json")
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["last_checkpoint"]["generation"] == gen, st
    assert os.path.samefile(st["last_checkpoint"]["manifest"], manifest), st
    assert st["checkpoints_taken"] >= 1
    r = h.stasis("status")
    assert r.returncode == 0, r.stderr
    assert os.path.basename(manifest) in r.stdout, (
        f"status should show the last checkpoint ({manifest}):\n{r.stdout}")

    # The job keeps running after the checkpoint.
    n = len(launch.lines())
    launch.wait_nlines(n + 2)

    (image,) = h.manifest_images(manifest)
    r = h.stasis("inspect", image)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "count" in out, out
    assert re.search(r"thread", out, re.I), f"inspect shows no threads:\n{out}"
    assert re.search(r"area", out, re.I), f"inspect shows no memory areas:\n{out}"
    assert re.search(r"\bOK\b", out), f"inspect does not say OK:\n{out}"

    r = h.stasis("inspect", "--json", image)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert "count" in json.dumps(data)

    bad = h.path("flipped.stasis")
    bad.write_bytes(image.read_bytes())
    flip_byte_in_page_block(bad)
    r = h.stasis("inspect", bad)
    assert r.returncode == 1, f"inspect of a corrupt image must exit 1: rc {r.returncode}\n{r.stdout}"
    assert re.search(r"checksum|corrupt", r.stdout + r.stderr, re.I), r.stdout + r.stderr
    assert "flipped.stasis" in r.stdout + r.stderr

    r = h.stasis("quit")
    assert r.returncode == 0, r.stderr
    assert launch.wait(30) is not None
    h.assert_no_job_processes()


def test_checkpoint_without_job(h):
    r = h.stasis("checkpoint", timeout=30)
    assert r.returncode == 1, f"rc {r.returncode}: {r.stdout} {r.stderr}"
    assert re.search(r"no (running )?(job|coordinator|process)|not running|nothing to checkpoint"
                     r"|cannot connect|connection refused",
                     r.stderr, re.I), f"unclear message: {r.stderr!r}"


def test_launch_nonexistent_program(h):
    prog = "/nonexistent/stasis-no-such-program"
    p = h.launch([prog, "1"])
    rc = p.wait(60)
    assert rc != 0
    err = p.err_text()
    assert prog in err or "stasis-no-such-program" in err, err
    assert re.search(r"no such file|not found|cannot (execute|run|find)", err, re.I), err
    h.assert_no_job_processes()
    assert not h.manifests()


def _unwritable_dir(h, name):
    """A directory h.user cannot write: root-owned 0755 for nobody, else 0555."""
    d = h.path(name)
    d.mkdir()
    if h.user == "nobody":
        os.chown(d, 0, 0)
        os.chmod(d, 0o755)
    else:
        os.chmod(d, 0o555)
    return d


@pytest.fixture
def hu(build, unpriv, request):
    """A harness running as a user for whom permissions apply."""
    from conftest import Harness
    harness = Harness(build, unpriv, request)
    yield harness
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(harness.diag())
    harness.cleanup()


def test_launch_unwritable_ckptdir(hu):
    h = hu
    d = _unwritable_dir(h, "readonly-ckpt")
    progress = h.path("progress.txt")
    p = h.launch(h.wl("count", 5, 0.1, progress), ckptdir=d)
    rc = p.wait(60)
    assert rc != 0, f"launch with an unwritable --ckptdir must fail\n{h.diag()}"
    err = p.err_text()
    assert str(d) in err or d.name in err, err
    assert re.search(r"permission denied|not writable|unwritable|cannot write", err, re.I), err
    assert not progress.exists(), "the program ran although launch failed"
    h.assert_no_job_processes()


@pytest.mark.timeout(240)
def test_checkpoint_into_dir_made_unwritable(hu, reference):
    """A checkpoint into a directory that became unwritable fails with a
    message, the program keeps running, the previous checkpoint stays
    complete and restartable."""
    h = hu
    n = 200
    ref = reference(h.wl("count", n, 0))
    launch = h.launch(h.wl("count", n, 0.1))
    launch.wait_line("3")
    before = len(launch.lines())
    gen1, manifest1 = h.checkpoint()
    after = len(launch.lines())
    (image1,) = h.manifest_images(manifest1)
    size1 = image1.stat().st_size

    os.chmod(h.ckpt, 0o555)
    r = h.stasis("checkpoint", timeout=120)
    assert r.returncode != 0, f"checkpoint into a read-only dir must fail\n{r.stdout}{r.stderr}"
    assert re.search(r"permission denied|not writable|read-only|cannot write|unwritable",
                     r.stderr, re.I), f"unclear message: {r.stderr!r}"
    # The program keeps running.
    n_now = len(launch.lines())
    launch.wait_nlines(n_now + 3)
    assert launch.running()
    # The previous checkpoint is intact.
    assert sorted(h.manifests()) == [gen1], sorted(h.manifests())
    assert image1.stat().st_size == size1
    r = h.stasis("inspect", image1)
    assert r.returncode == 0, r.stdout + r.stderr
    # ... and restartable.
    h.kill_all()
    os.chmod(h.ckpt, 0o755)
    rs = h.restart(h.ckpt)
    assert rs.wait(120) == 0, h.diag()
    k = assert_suffix(rs.lines(), ref)
    assert before <= k <= after, (k, before, after)
