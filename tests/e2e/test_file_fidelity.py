"""Files come back as they were at the checkpoint (src/state/written_files.h):
files open for writing and writable MAP_SHARED mappings are saved into the
checkpoint and written back into the same inode at restart, although the
lost run went on rewriting them in place after the checkpoint; a written
file that was not saved (over --written-files-limit) and changed is a clear
restart error unless --keep-current-files.

Workloads: tests/workloads/sqlite_rows.py (transactions into an SQLite
database) and tests/workloads/inplace.c (read-add-write of counters spread
over a fixed-size file, with pwrite or through a shared mapping).  Every
scenario lets the lost run write on after the checkpoint before it is
killed with SIGKILL, as a node crash would."""

import json
import os

import pytest

from conftest import assert_concatenation, both_users, wait_until


def sqlite_reference(h, transactions):
    ref_db = h.tmp / "ref.db"
    r = h.run(h.wl("sqlite_rows.py", ref_db, transactions, 0))
    assert r.returncode == 0, r.stderr
    ref = r.stdout.split("\n")[:-1]
    assert ref[-4:] == [f"rows {4 * transactions}", f"tx {transactions}", "integrity ok", "done"], ref
    return ref


def committed(lines):
    return sum(1 for l in lines if l.startswith("committed "))


@both_users
@pytest.mark.parametrize("how", ["default", "save-files", "wal"])
@pytest.mark.timeout(300)
def test_sqlite_periodic_checkpoint_kill9_restart(h, how):
    """Periodic checkpoints of a program committing SQLite transactions; kill
    -9 after more were committed; the restarted program continues on the
    database as it was at the newest checkpoint (row count right, integrity
    ok), in the same inode (SQLite refuses to write a replaced database
    file: "attempt to write a readonly database").  "wal": write-ahead
    logging, whose index (-shm) SQLite maps MAP_SHARED."""
    transactions = 500
    ref = sqlite_reference(h, transactions)
    db = h.path("data.db")
    opts = ["--interval", 2] + (["--save-files", f"{h.dir}/*.db*"] if how == "save-files" else [])
    args = [db, transactions, 20] + (["wal"] if how == "wal" else [])
    launch = h.launch(h.wl("sqlite_rows.py", *args), *opts)
    launch.wait_line("committed 1")
    inode = os.stat(db).st_ino
    wait_until(lambda: h.manifests() and max(h.manifests()) >= 2, 90, "2 periodic checkpoints",
               h.diag, alive=launch.running)
    at = committed(launch.lines())
    launch.wait_line(f"committed {at + 15}")  # the lost run commits more
    h.kill_all()
    pre = launch.lines()
    assert committed(pre) < transactions, "the program must still be running at the kill"

    rs = h.restart(h.ckpt)
    assert rs.wait(180) == 0, f"restart must exit 0\n{h.diag()}"
    post = rs.lines()
    assert post[-3:] == ["tx %d" % transactions, "integrity ok", "done"], post[-5:]
    k = int(post[0].split()[1]) - 1  # the checkpoint was taken after k commits
    assert committed(pre) >= k + 10, f"the lost run must have committed after the checkpoint ({k})"
    assert_concatenation([pre[:k], post], ref, "output with restart")
    assert os.stat(db).st_ino == inode, "the database must be written back into its own inode"
    # A checkpoint during a transaction finds SQLite's POSIX lock: warned
    # (locks are not restored); a kill during a commit leaves a rollback
    # journal, moved aside at restart (written_files.h); nothing else.
    others = [l for l in rs.err_text().splitlines()
              if "warning" in l and "lock" not in l and "moved aside" not in l]
    assert not others, rs.err_text()


def inplace_reference(h, steps, mode):
    r = h.run(h.wl("inplace", h.tmp / f"ref-{mode}.dat", steps, 0, mode))
    assert r.returncode == 0, r.stderr
    ref = r.stdout.split("\n")[:-1]
    assert ref[-2:] == [f"sum {steps * (steps + 1) // 2}", "done"], ref[-3:]
    return ref


@both_users
@pytest.mark.parametrize("mode", ["pwrite", "mmap"])
def test_in_place_writes_after_checkpoint_are_undone(h, mode):
    """pwrite in place / stores through MAP_SHARED after the checkpoint, then
    SIGKILL: the restart sees the checkpoint-time file (the same size, so
    cutting the file back could not have helped), twice."""
    steps = 300
    ref = inplace_reference(h, steps, mode)
    data = h.path("counters.dat")
    launch = h.launch(h.wl("inplace", data, steps, 20, mode))
    launch.wait_line("step 20")
    inode = os.stat(data).st_ino
    _, manifest = h.checkpoint()
    at = len(launch.lines())
    (image,) = h.manifest_images(manifest)
    if mode == "mmap":  # held by the mapping alone: saved through it
        meta = json.loads(h.stasis("inspect", "--json", image).stdout)
        assert [m["path"] for m in meta.get("saved_mappings", [])] == [str(data)], meta.get("saved_mappings")
        assert f"shared mapping {data}" in h.stasis("inspect", image).stdout
    launch.wait_line(f"step {at + 20}")
    h.kill_all()
    pre = launch.lines()
    assert "warning" not in launch.err_text(), launch.err_text()
    for i in range(2):
        rs = h.restart(manifest, name=f"restart{i}")
        assert rs.wait(120) == 0, f"restart {i} must exit 0\n{h.diag()}"
        post = rs.lines()
        k = int(post[0].split()[1]) - 1
        assert len(pre) >= k + 20, (k, len(pre))
        assert_concatenation([pre[:k], post], ref, f"output with restart {i}")
        assert os.stat(data).st_ino == inode
        h.assert_no_job_processes()


@both_users
def test_save_files_writes_back_into_the_same_inode(h):
    """--save-files PATTERN: a file that still exists at restart keeps its
    inode (it used to be replaced by rename)."""
    steps = 200
    ref = inplace_reference(h, steps, "pwrite")
    data = h.path("counters.dat")
    launch = h.launch(h.wl("inplace", data, steps, 20, "pwrite"), "--save-files", f"{h.dir}/*.dat")
    launch.wait_line("step 10")
    inode = os.stat(data).st_ino
    h.checkpoint(kill=True)
    assert launch.wait(30) == 0, h.diag()
    rs = h.restart(h.ckpt)
    assert rs.wait(120) == 0, h.diag()
    assert_concatenation([launch.lines(), rs.lines()], ref)
    assert os.stat(data).st_ino == inode


@both_users
def test_unsaved_written_file_that_changed_is_a_restart_error(h):
    """--written-files-limit 0: nothing is saved (the checkpoint warns); the
    file changed after the checkpoint, so the restart refuses, naming it and
    the options, and leaves it alone; --keep-current-files accepts it."""
    steps = 300
    data = h.path("counters.dat")
    launch = h.launch(h.wl("inplace", data, steps, 20, "pwrite"), "--written-files-limit", "0")
    launch.wait_line("step 10")
    _, manifest = h.checkpoint()
    at = len(launch.lines())
    launch.wait_line(f"step {at + 10}")
    h.kill_all()
    err = launch.err_text()
    assert "was not saved" in err and str(data) in err and "--written-files-limit" in err, err
    before = data.read_bytes()

    rs = h.restart(manifest)
    assert rs.wait(60) != 0, h.diag()
    err = rs.err_text()
    assert str(data) in err and "changed after the checkpoint" in err, err
    assert "--keep-current-files" in err and "--written-files-limit" in err, err
    assert rs.lines() == [], rs.lines()
    h.assert_no_job_processes()
    assert data.read_bytes() == before, "a refused restart must not touch the file"

    rs = h.restart("--keep-current-files", manifest, name="keep")
    assert rs.wait(120) == 0, h.diag()
    assert rs.lines()[-1] == "done", rs.lines()
    assert "changed after the checkpoint" in rs.err_text() and "--keep-current-files" in rs.err_text()


@both_users
@pytest.mark.parametrize("mode", ["pwrite", "mmap"])
def test_unsaved_written_file_unchanged_restarts(h, mode):
    """--written-files-limit 0 and no write after the checkpoint: the file is
    as it was, so the restart goes on (no false alarm), with the right result."""
    steps = 60
    ref = inplace_reference(h, steps, mode)
    data = h.path("counters.dat")
    launch = h.launch(h.wl("inplace", data, steps, 20, mode),
                      env_extra={"STASIS_WRITTEN_FILES_LIMIT": "0"})
    launch.wait_line("step 10")
    _, manifest = h.checkpoint(kill=True)
    assert launch.wait(30) == 0, h.diag()
    assert list(h.ckpt.glob("saved_*")) == [], "limit 0: nothing saved"
    rs = h.restart(manifest)
    assert rs.wait(120) == 0, h.diag()
    assert_concatenation([launch.lines(), rs.lines()], ref)
