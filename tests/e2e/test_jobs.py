"""Whole jobs made of real programs (issue "Whole jobs"): each is started
under `stasis launch`, checkpointed with --kill while its processes work,
and restarted twice from that same checkpoint; each restart must finish
exactly as an uninterrupted run does.  Each case runs as the test's user and
as user nobody.

Programs write files as well as stdout.  The file system is not part of a
checkpoint, so before each restart the test puts back what the checkpoint
saw (a log, a build directory), as a user restarting an older checkpoint
would; a file that a process of the job holds open for writing is instead
saved in the checkpoint and put back by Stasis itself (written_files.h),
and that case is left to Stasis.

Faults: a process killed while the checkpoint is in progress (held there by
the supervisor's STASIS_PAUSE_AT pause point), and a checkpoint set with one
image missing."""

import hashlib
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import tempfile

import pytest

from conftest import (NOBODY_GID, NOBODY_UID, PY, SYS_PATH, WORKLOADS_SRC, assert_suffix,
                      both_users, read_lines, wait_until)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ref_dir():
    """A private directory for files the uninterrupted runs write."""
    d = pathlib.Path(tempfile.mkdtemp(prefix="stasis-ref-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _ref_env():
    return {"PATH": SYS_PATH, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": "/tmp",
            "TMPDIR": "/tmp", "OPENBLAS_NUM_THREADS": "2", "PYTHONDONTWRITEBYTECODE": "1"}


class Snapshot:
    """Copies of files and directory trees as they are right after the
    checkpoint; put() restores them (file contents in place, keeping the
    inode; trees recreated with their modes, times and owners)."""

    def __init__(self, h, paths):
        self.h = h
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="snap-", dir=h.dir))
        self.items = []
        for i, p in enumerate(map(pathlib.Path, paths)):
            copy = self.dir / str(i)
            if p.is_dir():
                shutil.copytree(p, copy, symlinks=True)
            elif p.exists():
                shutil.copy2(p, copy)
            else:
                copy = None
            self.items.append((p, copy))

    def put(self):
        for p, copy in self.items:
            if copy is None:
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()
            elif copy.is_dir():
                shutil.rmtree(p, ignore_errors=True)
                shutil.copytree(copy, p, symlinks=True)
                if self.h.user == "nobody":
                    for root, dirs, files in os.walk(p):
                        for n in [root] + [os.path.join(root, x) for x in dirs + files]:
                            os.lchown(n, NOBODY_UID, NOBODY_GID)
            else:
                existed = p.exists()
                with open(p, "r+b" if existed else "wb") as f:
                    f.write(copy.read_bytes())
                    f.truncate()
                if not existed:
                    self.h.own(p)


def _checkpoint_kill(h, launch, expect_processes=None):
    """checkpoint --kill; the launch exits 0 and nothing of the job is left.
    Returns (manifest path, [process entries of the manifest])."""
    gen, manifest = h.checkpoint(kill=True)
    assert launch.wait(30) == 0, f"launch must exit 0 after checkpoint --kill\n{h.diag()}"
    h.assert_no_job_processes()
    procs = json.loads(pathlib.Path(manifest).read_text())["processes"]
    if expect_processes is not None:
        assert len(procs) >= expect_processes, (
            f"the checkpoint has {len(procs)} process(es), expected at least "
            f"{expect_processes}: {[p['program'] for p in procs]}")
    return manifest, procs


def _restart_twice(h, manifest, snapshot=None, after=None, timeout=120):
    """Restarts `manifest` twice, one after the other, each from the file
    state of the checkpoint; each must exit 0 and leave nothing running.
    Returns [(stdout lines, after())] of both restarts."""
    results = []
    for i in range(2):
        if snapshot is not None:
            snapshot.put()
        r = h.restart(manifest, name=f"restart{i}")
        assert r.wait(timeout) == 0, f"restart {i + 1} of {manifest} must exit 0\n{h.diag()}"
        h.assert_no_job_processes()
        results.append((r.lines(), after() if after else None))
    return results


def _assert_continues(pre, post, ref, which):
    """pre (launch stdout) + post (a restart's stdout) == ref."""
    got = pre + post
    if got != ref:
        first = next((i for i, (a, b) in enumerate(zip(got, ref)) if a != b),
                     min(len(got), len(ref)))
        pytest.fail(f"{which}: launch output ({len(pre)} lines) + restart output "
                    f"({len(post)} lines) differs from the uninterrupted run ({len(ref)} lines) "
                    f"at line {first + 1}: got {got[first:first + 3]!r}, expected "
                    f"{ref[first:first + 3]!r}", pytrace=False)


# --------------------------------------------------------------------------
# 1. bash loop: python3 per step | tee -a log
# --------------------------------------------------------------------------

PYSTEPS = WORKLOADS_SRC / "pysteps.sh"


@both_users
def test_bash_python_tee_log(h, ref_dir):
    """bash runs /usr/bin/python3 for each step and appends its line to a log
    through `| tee -a log` (tee also writes stdout).  test_trees.py covers a
    shell forking /bin/echo >> log and a `count | while read` pipeline; this
    is the issue's script: a python3 started per step, a new pipe and tee
    per step, checkpointed while they run."""
    n, delay = 30, 0.1
    ref_log = ref_dir / f"pysteps-{os.getpid()}-{h.port}.log"
    r = subprocess.run(["/bin/bash", PYSTEPS, ref_log, str(n), "0"], capture_output=True,
                       env=_ref_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    ref = r.stdout.decode().split("\n")[:-1]
    assert read_lines(ref_log) == ref and ref[-1] == "done" and len(ref) == n + 1

    log = h.path("steps.log")
    launch = h.launch(["/bin/bash", PYSTEPS, log, n, delay])
    wait_until(lambda: len(read_lines(log)) >= 5, 60, "5 steps in the log", h.diag,
               alive=launch.running)
    manifest, procs = _checkpoint_kill(h, launch, expect_processes=2)
    pre = launch.lines()
    assert read_lines(log) == pre, "the log and tee's stdout agree up to the checkpoint"
    snap = Snapshot(h, [log])
    for i, (post, logged) in enumerate(_restart_twice(h, manifest, snap,
                                                      after=lambda: read_lines(log))):
        _assert_continues(pre, post, ref, f"restart {i + 1}")
        assert logged == ref, f"restart {i + 1}: log {logged!r}"


# --------------------------------------------------------------------------
# 2. multiprocessing.Pool
# --------------------------------------------------------------------------

@both_users
def test_multiprocessing_pool(h, reference):
    """Pool(2) maps a work function (CPU, then a sleep) over 24 items;
    checkpointed while both workers hold items, the pool's parent waiting
    for their results (pipes, a result-handler thread, the pool's
    semaphores in shared memory)."""
    n, workers, delay = 24, 2, 0.25
    ref = reference(h.wl("pool.py", n, workers, 0))
    launch = h.launch(h.wl("pool.py", n, workers, delay))
    launch.wait_match(r"^item 5 ", timeout=60)
    manifest, procs = _checkpoint_kill(h, launch, expect_processes=1 + workers)
    pre = launch.lines()
    assert len(pre) < n, f"the pool was done before the checkpoint: {pre}"
    for i, (post, _) in enumerate(_restart_twice(h, manifest)):
        _assert_continues(pre, post, ref, f"restart {i + 1}")


# --------------------------------------------------------------------------
# 3. producer/consumer over a pipe and Unix sockets
# --------------------------------------------------------------------------

@both_users
@pytest.mark.parametrize("mode", ["pipe", "socketpair", "dgram", "unix"])
def test_producer_consumer(h, reference, mode):
    """A producer writes 150 records (about 650 KB) as fast as it can; the
    consumer reads slowly, so at the checkpoint the channel is full and the
    producer blocked (or done and exited).  The consumer's per-record CRCs
    and total SHA-256 after restart prove every byte arrived once, in
    order (and, for datagrams, with its boundaries)."""
    n, delay = 150, 0.02
    ref = reference(h.wl("prodcons.py", mode, n, 0))
    launch = h.launch(h.wl("prodcons.py", mode, n, delay))
    launch.wait_match(r"^rec 20 ", timeout=60)
    manifest, procs = _checkpoint_kill(h, launch)
    pre = launch.lines()
    assert len(pre) < n, f"the consumer was done before the checkpoint: {pre[-3:]}"
    for i, (post, _) in enumerate(_restart_twice(h, manifest)):
        _assert_continues(pre, post, ref, f"restart {i + 1}")
        assert post[-1] == "producer exit 0", post[-3:]


# --------------------------------------------------------------------------
# 4. TCP over loopback inside the job
# --------------------------------------------------------------------------

@both_users
def test_tcp_loopback_stream(h, reference):
    """A receiver on 127.0.0.1 (port 0) and a client (a separate python3
    told the port) streaming 300 numbered records, with acks back: the
    connection is checkpointed with records in flight both ways, and after
    restart none is lost, repeated or altered (the receiver checks each)."""
    n, delay = 300, 0.01
    ref = reference(h.wl("tcpstream.py", n, 0))
    launch = h.launch(h.wl("tcpstream.py", n, delay))
    launch.wait_line("record 50", timeout=60)
    manifest, procs = _checkpoint_kill(h, launch, expect_processes=2)
    pre = launch.lines()
    for i, (post, _) in enumerate(_restart_twice(h, manifest)):
        _assert_continues(pre, post, ref, f"restart {i + 1}")
        assert post[-2:] == [f"received {n} records in order", "client exit 0"], post[-3:]


# --------------------------------------------------------------------------
# 5. make -j2
# --------------------------------------------------------------------------

MAKE_NFILES, MAKE_SLOW_EVERY, MAKE_SLOW_SIZE = 36, 6, 1500
_make_reference = {}


def _build_result(proj, run_prog):
    """({object or binary name: sha256}, output of ./prog)."""
    hashes = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
              for p in sorted(proj.iterdir()) if p.suffix == ".o" or p.name == "prog"}
    r = run_prog([str(proj / "prog")])
    assert r.returncode == 0, f"prog failed: {r.stderr}"
    return hashes, r.stdout


def _reference_build(ref_dir):
    if "result" not in _make_reference:
        proj = ref_dir / "make-ref"
        gen = [PY, str(WORKLOADS_SRC / "gen_cproject.py"), str(proj), str(MAKE_NFILES),
               str(MAKE_SLOW_EVERY), str(MAKE_SLOW_SIZE)]
        subprocess.run(gen, check=True, env=_ref_env(), timeout=60)
        r = subprocess.run(["make", "-j2", "-C", str(proj)], capture_output=True,
                           env=_ref_env(), timeout=300)
        assert r.returncode == 0, r.stderr
        _make_reference["result"] = _build_result(
            proj, lambda argv: subprocess.run(argv, capture_output=True, text=True, timeout=30))
    return _make_reference["result"]


@both_users
@pytest.mark.timeout(600)
def test_make_j2(h, ref_dir):
    """`make -j2` of a generated project of 37 C files, twelve of them slow
    to compile: checkpointed while both compilers run on slow files (make,
    two cc drivers, two cc1, the jobserver pipe holding a token), restarted
    twice (each from the build directory and $TMPDIR as the checkpoint saw
    them: half-written .o and the compiler's temporary files).  The build
    finishes and every object, the binary and its output are identical to
    an uninterrupted build's."""
    ref_hashes, ref_out = _reference_build(ref_dir)
    assert len(ref_hashes) == MAKE_NFILES + 2, sorted(ref_hashes)

    proj = h.path("proj")
    r = h.run([PY, WORKLOADS_SRC / "gen_cproject.py", proj, MAKE_NFILES, MAKE_SLOW_EVERY,
               MAKE_SLOW_SIZE])
    assert r.returncode == 0, r.stderr
    launch = h.launch(["make", "-j2", "-C", proj])
    slow = {f"f{k}.c" for k in range(MAKE_NFILES) if k % MAKE_SLOW_EVERY >= MAKE_SLOW_EVERY - 2}

    def both_compilers_on_slow_files():
        if len(list(proj.glob("*.o"))) < 4:
            return False
        busy = [cmd for _, cmd in h.job_processes()
                if cmd.split()[0].endswith("cc1") and slow & set(cmd.split())]
        return len(busy) == 2

    wait_until(both_compilers_on_slow_files, 120,
               "two cc1 compiling slow files after 4 objects", h.diag, alive=launch.running)
    manifest, procs = _checkpoint_kill(h, launch, expect_processes=5)
    programs = [p["program"] for p in procs]
    assert programs.count("cc1") == 2 and "make" in programs, programs
    assert not (proj / "prog").exists(), "the build was finished at the checkpoint"
    done_before = {p.name for p in proj.glob("*.o")}
    assert len(done_before) < MAKE_NFILES + 1, done_before
    snap = Snapshot(h, [proj, h.tmp])
    results = _restart_twice(h, manifest, snap, timeout=300,
                             after=lambda: _build_result(proj, h.run))
    for i, (_, (hashes, out)) in enumerate(results):
        assert set(hashes) == set(ref_hashes), (
            f"restart {i + 1}: files differ: missing {set(ref_hashes) - set(hashes)}, "
            f"extra {set(hashes) - set(ref_hashes)}")
        differ = sorted(k for k in hashes if hashes[k] != ref_hashes[k])
        assert not differ, f"restart {i + 1}: content differs from the reference build: {differ}"
        assert out == ref_out, f"restart {i + 1}: prog output differs"


# --------------------------------------------------------------------------
# 6. Rscript loop (the Gizmo seed)
# --------------------------------------------------------------------------

@both_users
@pytest.mark.parametrize("mode", ["append", "open"])
def test_rscript_looper(h, ref_dir, mode):
    """The Gizmo seed's looper in R: seeded random numbers and a linear
    solve per iteration, each line to stdout and to $TMPDIR/looper.txt.
    append: the file is opened and closed per line (the test puts it back
    before each restart); open: one connection open all along, which
    Stasis puts back as it was at the checkpoint at each restart."""
    if shutil.which("Rscript", path=SYS_PATH) is None:
        pytest.fail("Rscript is not installed (Debian package r-base-core)", pytrace=False)
    n, delay = 30, 0.1
    ref_out = ref_dir / f"looper-{os.getpid()}-{h.port}.txt"
    r = subprocess.run(["Rscript", WORKLOADS_SRC / "looper.R", str(n), "0", ref_out, mode],
                       capture_output=True, env=_ref_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    ref = r.stdout.decode().split("\n")[:-1]
    assert ref[-1] == "done" and read_lines(ref_out) == ref[:-1]

    out = h.tmp / "looper.txt"
    launch = h.launch(["Rscript", WORKLOADS_SRC / "looper.R", n, delay, out, mode])
    launch.wait_nlines(5, timeout=60)
    manifest, procs = _checkpoint_kill(h, launch)
    pre = launch.lines()
    snap = Snapshot(h, [out]) if mode == "append" else None
    for i, (post, lines) in enumerate(_restart_twice(h, manifest, snap,
                                                     after=lambda: read_lines(out))):
        _assert_continues(pre, post, ref, f"restart {i + 1}")
        assert lines == ref[:-1], f"restart {i + 1}: looper.txt {lines!r}"


# --------------------------------------------------------------------------
# 7. a process killed during a checkpoint
# --------------------------------------------------------------------------

def _ns_pid(pid):
    """pid of a host process as its own pid namespace sees it."""
    for l in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if l.startswith("NSpid:"):
            return int(l.split()[-1])
    raise AssertionError(f"no NSpid in /proc/{pid}/status")


@both_users
def test_process_killed_during_checkpoint(h, reference):
    """victim.sh runs `count` in the foreground and a helper `sleep 600` in
    the background.  Checkpoint 1 succeeds.  Checkpoint 2 is held by the
    pause point with every process quiesced; the helper is killed (-9);
    released, the checkpoint fails: `stasis checkpoint` exits non-zero and
    says which process went away; no image of it is left.  The rest of the
    job resumes and prints exactly what an uninterrupted run prints; the
    next checkpoint succeeds without the helper; checkpoint 1 is intact
    and restarts (twice) to a correct end."""
    n, delay = 60, 0.1
    count = h.wl("count")[0]
    ref = reference(["/bin/bash", WORKLOADS_SRC / "victim.sh", count, n, 0])
    launch = h.launch(["/bin/bash", WORKLOADS_SRC / "victim.sh", count, n, delay],
                      env_extra={"STASIS_PAUSE_AT": "quiesced:2"})
    launch.wait_line("3")

    before1 = len(launch.lines())
    gen1, manifest1 = h.checkpoint()
    after1 = len(launch.lines())
    assert gen1 == 1
    images1 = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in h.manifest_images(manifest1)}
    assert len(images1) == 3, sorted(images1)  # bash, sleep, count
    launch.wait_nlines(after1 + 3)

    helper = [pid for pid, cmd in h.job_processes() if cmd.split()[:2] == ["sleep", "600"]]
    assert len(helper) == 1, h.job_processes()
    helper_ns = _ns_pid(helper[0])
    ckpt2 = h.start([h.stasis_bin, "checkpoint"], "checkpoint2")
    marker = h.ckpt / "stasis_paused_2"
    wait_until(marker.exists, 60, f"the pause point's {marker.name}", h.diag,
               alive=ckpt2.running)
    quiesced = [int(x) for x in marker.read_text().split()]
    assert helper_ns in quiesced, (helper_ns, quiesced)
    os.kill(helper[0], signal.SIGKILL)
    marker.unlink()
    rc = ckpt2.wait(120)
    err = ckpt2.err_text() + ckpt2.text()
    assert rc != 0, f"checkpoint 2 must fail after a process died in it\n{h.diag()}"
    assert re.search(rf"\bsleep\b|\b{helper_ns}\b", err), (
        f"the error does not name the process that died (sleep, pid {helper_ns}): {err!r}")
    assert re.search(r"exited|died|killed|gone|vanished", err, re.I), (
        f"the error does not say that the process went away: {err!r}")
    assert not re.search(r"complete", err), err

    # The job goes on; nothing of checkpoint 2 is left; checkpoint 1 intact.
    progress = len(launch.lines())
    launch.wait_nlines(progress + 2, timeout=30)
    assert sorted(h.manifests()) == [1], h.manifests()
    assert all(re.search(r"_0*1\.stasis$", p.name) for p in h.images()), h.images()
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in images1} == images1

    gen3, manifest3 = h.checkpoint()
    programs3 = sorted(p["program"] for p in json.loads(pathlib.Path(manifest3).read_text())["processes"])
    assert "sleep" not in programs3 and len(programs3) == 2, programs3

    assert launch.wait(60) == 0, h.diag()
    assert launch.lines() == ref, f"the job's output differs from an uninterrupted run\n{h.diag()}"

    for i, (post, _) in enumerate(_restart_twice(h, manifest1)):
        k = assert_suffix(post, ref, f"restart {i + 1} of checkpoint 1")
        assert before1 <= k <= after1, (k, before1, after1)


# --------------------------------------------------------------------------
# 8. one image of a checkpoint set missing
# --------------------------------------------------------------------------

@both_users
@pytest.mark.parametrize("which,via", [("root", "manifest"), ("leaf", "dir")])
def test_restart_missing_image(h, which, via):
    """The bash | python3 | tee job checkpointed with --kill; one image of
    the set deleted (the script's or the last process's).  Restart (of the
    manifest, or of the directory, which has no older checkpoint to fall
    back to) fails with an error naming the missing image, and nothing of
    the job runs: no process, no output, the log unchanged.  (A corrupt
    image of a set: test_trees.py::test_tree_corrupt_image_nothing_runs.)"""
    log = h.path("steps.log")
    launch = h.launch(["/bin/bash", PYSTEPS, log, 30, 0.1])
    wait_until(lambda: len(read_lines(log)) >= 3, 60, "3 steps in the log", h.diag,
               alive=launch.running)
    manifest, procs = _checkpoint_kill(h, launch, expect_processes=2)
    procs = sorted(procs, key=lambda p: p["pid"])
    gone = pathlib.Path(manifest).parent / procs[0 if which == "root" else -1]["image"]
    gone.unlink()
    log_before = log.read_bytes()
    r = h.restart(manifest if via == "manifest" else h.ckpt)
    rc = r.wait(60)
    err = r.err_text()
    assert rc != 0, f"restart with a missing image must fail\n{h.diag()}"
    assert gone.name in err, f"stderr does not name {gone.name}: {err!r}"
    assert re.search(r"missing|no such file|not found|does not exist", err, re.I), err
    h.assert_no_job_processes()
    assert r.lines() == [], f"a process ran after a failed restart: {r.lines()}"
    assert log.read_bytes() == log_before, "the job wrote its log after a failed restart"
