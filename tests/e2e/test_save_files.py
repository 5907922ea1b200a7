"""--save-files: files on node-local scratch and files deleted while open are
saved into the checkpoint and recreated at restart (tests/workloads/
scratchfiles.c writes records to $TMPDIR/scratch/records.dat and to a
deleted temp file, then reads both back and prints their checksums).  The
scratch directory is removed before every restart, as on another node."""

import json
import pathlib
import re
import shutil

from conftest import assert_concatenation, both_users

STEPS = 60
PERIOD_MS = 30


def scratch_run(h, steps=STEPS, period=PERIOD_MS, *opts, env_extra=None):
    scratch = h.tmp / "scratch"
    return scratch, h.launch(h.wl("scratchfiles", scratch, steps, period), *opts, env_extra=env_extra)


def uninterrupted(h):
    """Output and final scratch file of a run without Stasis, as this user."""
    ref_dir = h.tmp / "ref"
    r = h.run(h.wl("scratchfiles", ref_dir, STEPS, 0))
    assert r.returncode == 0, r.stderr
    return r.stdout.split("\n")[:-1], (ref_dir / "records.dat").read_bytes()


def saved_copies(h):
    return sorted(p.name for p in h.ckpt.glob("saved_*.data"))


@both_users
def test_scratch_and_deleted_files_restart_twice(h):
    ref, ref_file = uninterrupted(h)
    assert ref[-1] == "done" and ref[-3].startswith("scratch ") and ref[-2].startswith("deleted "), ref
    scratch, launch = scratch_run(h, STEPS, PERIOD_MS, "--save-files", f"{h.tmp}/*")
    launch.wait_line("step 12")
    _, manifest = h.checkpoint(kill=True)
    assert launch.wait(30) == 0, h.diag()
    assert "warning" not in launch.err_text(), launch.err_text()
    assert len(saved_copies(h)) == 2, h.diag()  # the scratch file and the deleted one, once each

    (image,) = h.manifest_images(manifest)
    meta = json.loads(h.stasis("inspect", "--json", image).stdout)
    saved = {f["path"]: f["saved"] for f in meta["fds"] if "saved" in f}
    assert set(saved) == {f"{scratch}/records.dat"} | {p for p in saved if p.endswith(" (deleted)")}, saved
    assert sorted(s["deleted"] for s in saved.values()) == [False, True], saved
    assert meta["save_files"] == [f"{h.tmp}/*"], meta["save_files"]
    text = h.stasis("inspect", image).stdout
    assert re.search(r"saved \(deleted file\): saved_\w+\.data", text), text

    posts = []
    for i in range(2):
        shutil.rmtree(scratch)  # restart "on another node": the scratch directory is gone
        rs = h.restart(manifest, name=f"restart{i}")
        assert rs.wait(120) == 0, f"restart {i} must exit 0\n{h.diag()}"
        assert "warning" not in rs.err_text(), rs.err_text()
        h.assert_no_job_processes()
        posts.append(rs.lines())
        assert_concatenation([launch.lines(), rs.lines()], ref, f"output with restart {i}")
        assert (scratch / "records.dat").read_bytes() == ref_file, f"restart {i}: scratch file differs"
    assert posts[0] == posts[1]


def test_corrupt_saved_copy_fails_with_nothing_started(h):
    """A bad copy is an error naming it; nothing is written or started.  Also:
    STASIS_SAVE_FILES in place of the flag, and pruning with --keep 1."""
    scratch, launch = scratch_run(h, 400, 20, "--keep", "1",
                                  env_extra={"STASIS_SAVE_FILES": f"/nonexistent/*:{h.tmp}/*"})
    launch.wait_line("step 5")
    h.checkpoint()
    first = saved_copies(h)
    assert len(first) == 2 and all(c.endswith("_000001.data") for c in first), first
    _, manifest = h.checkpoint(kill=True)
    assert launch.wait(30) == 0, h.diag()
    copies = saved_copies(h)
    assert len(copies) == 2 and all(c.endswith("_000002.data") for c in copies), \
        f"copies of the pruned checkpoint must go with it: {copies}"

    deleted = next(f["saved"]["name"] for img in h.manifest_images(manifest)
                   for f in json.loads(h.stasis("inspect", "--json", img).stdout)["fds"]
                   if f.get("saved", {}).get("deleted"))
    with open(h.ckpt / deleted, "r+b") as f:
        f.seek(-3, 2)
        b = f.read(1)
        f.seek(-3, 2)
        f.write(bytes([b[0] ^ 0x55]))
    shutil.rmtree(scratch)
    rs = h.restart(manifest)
    assert rs.wait(60) != 0, h.diag()
    err = rs.err_text()
    assert deleted in err and "corrupt" in err and "checksum" in err, err
    assert rs.lines() == [], rs.lines()
    h.assert_no_job_processes()
    assert not scratch.exists(), "nothing may be restored from a checkpoint with a bad copy"


def test_deleted_file_without_save_files_fails_clearly(h):
    scratch, launch = scratch_run(h, 400, 20)
    launch.wait_line("step 5")
    _, manifest = h.checkpoint(kill=True)
    assert launch.wait(30) == 0, h.diag()
    # Only records.dat, saved because it is open for writing (written_files.h).
    assert len(saved_copies(h)) == 1, saved_copies(h)
    rs = h.restart(manifest)
    assert rs.wait(60) != 0, h.diag()
    err = rs.err_text()
    assert re.search(r"tmp\w+ was deleted while open and its contents were not saved", err), err
    assert "--save-files" in err, err
    assert rs.lines() == [], rs.lines()
    h.assert_no_job_processes()


@both_users
def test_files_shared_by_two_processes_are_saved_once(h):
    """Parent and child hold the same scratch and deleted files: one copy
    each per checkpoint, recreated once, and both processes continue."""
    steps, period = 40, 0.03
    ref_dir = h.tmp / "ref"
    r = h.run(h.wl("scratchtree.py", ref_dir, steps, 0))
    assert r.returncode == 0, r.stderr
    ref = r.stdout.split("\n")[:-1]
    scratch = h.tmp / "scratch"
    launch = h.launch(h.wl("scratchtree.py", scratch, steps, period), "--save-files", f"{h.tmp}/*")
    launch.wait_line("child step 10")
    _, manifest = h.checkpoint(kill=True)
    assert launch.wait(30) == 0, h.diag()
    assert len(h.manifest_images(manifest)) == 2, h.diag()
    assert len(saved_copies(h)) == 2, f"one copy per file, not per descriptor: {saved_copies(h)}"
    for i in range(2):
        shutil.rmtree(scratch)
        rs = h.restart(manifest, name=f"restart{i}")
        assert rs.wait(120) == 0, f"restart {i} must exit 0\n{h.diag()}"
        # The forked child's inherited copy of its parent's agent socket is
        # reported as a connection outside the job (not about saved files).
        warnings = [l for l in rs.err_text().splitlines()
                    if "warning" in l and "supervisor.sock" not in l]
        assert not warnings, rs.err_text()
        h.assert_no_job_processes()
        assert_concatenation([launch.lines(), rs.lines()], ref, f"output with restart {i}")
        assert (scratch / "shared.dat").read_bytes() == (ref_dir / "shared.dat").read_bytes()
