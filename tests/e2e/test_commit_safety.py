"""Commit safety (issue "Trust", part 1): a checkpoint is never lost.

A checkpoint exists once its manifest is durable; from then on only a prune
after a newer durable manifest may delete its files.  Each test holds a
checkpoint at one phase with the STASIS_PAUSE_AT pause points
(src/common/pause_point.h: the supervisor's `quiesced`, the coordinator's
`dumped`, `manifest` and `prune`, one pause before each unlink), kills -9
one process there -- the coordinator, the supervisor (pid 1 of the job),
the client (`stasis launch`) or the program -- and checks that

  * every manifest left in the directory lists only images that exist,
  * the newest one is the checkpoint expected (the interrupted one if its
    manifest was durable, else the previous one),
  * it restarts and continues exactly where the uninterrupted run was, and
  * the next checkpoint of the restarted job removes what the killed
    writer left (temp files, images without a manifest, a half-pruned
    generation), nothing else.

Also: a stalled (SIGSTOPped) coordinator does not freeze the job, and
SIGTERM sent to every process of a job at once (Slurm's scancel, walltime,
preemption) lets `stasis run` take its final checkpoint first.  The Slurm
version of the latter: tests/slurm/test_slurm.py."""

import os
import pathlib
import re
import signal

import pytest

from conftest import (WORKLOADS_SRC, assert_concatenation, assert_suffix, both_users, port_processes,
                      wait_until)

VICTIM = WORKLOADS_SRC / "victim.sh"  # bash + `sleep 600` + count: three images per checkpoint
N, DELAY = 200, 0.02


def _coordinator_pid(h):
    pids = [pid for pid, cmd in port_processes(h.port) if " coordinator " in f" {cmd} "]
    assert len(pids) == 1, f"expected one coordinator, found {pids}\n{h.diag()}"
    return pids[0]


def _children(pid):
    try:
        return [int(x) for x in pathlib.Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _supervisor_pid(h, launch):
    """C2, pid 1 of the job: the child of C1, the child of `stasis launch`."""
    c1 = _children(launch.pid)
    assert len(c1) == 1, (c1, h.diag())
    c2 = _children(c1[0])
    assert len(c2) == 1, (c2, h.diag())
    return c2[0]


def _count_pid(h, count):
    pids = [pid for pid, cmd in h.job_processes() if cmd.split()[:1] == [str(count)]]
    assert len(pids) == 1, f"expected one count process: {h.job_processes()}"
    return pids[0]


def _marker(h, phase, gen):
    return h.ckpt / (f"stasis_paused_{gen}" if phase == "quiesced" else f"stasis_paused_{phase}_{gen}")


def _assert_manifests_complete(h):
    """Every manifest lists only images that exist (a restart would trust it)."""
    for gen, m in sorted(h.manifests().items()):
        missing = [p.name for p in h.manifest_images(m) if not p.exists()]
        assert not missing, (f"manifest {m.name} lists missing images {missing}: a checkpoint "
                             f"that looks complete cannot restart\n{h.diag()}")


def _assert_only_checkpoints_left(h):
    """Nothing but manifests, the files they list, the restart script (and a lock)."""
    listed = set()
    for m in h.manifests().values():
        listed.add(m.name)
        listed.update(p.name for p in h.manifest_images(m))
    extra = [p.name for p in h.ckpt.iterdir()
             if p.name not in listed and p.name not in ("stasis_restart.sh", ".stasis.lock")]
    assert not extra, f"left over in the checkpoint directory: {extra}\n{h.diag()}"


# (phase, victim) -> is the interrupted checkpoint the newest durable one?
# The supervisor pauses at `quiesced` before writing anything; the
# coordinator pauses at `dumped` with every image durable and no manifest:
# a dead coordinator never writes it, a live one does even when the job is
# gone meanwhile (the images are complete and consistent).
def _interrupted_is_durable(phase, victim):
    if phase == "quiesced":
        return False
    if phase == "dumped":
        return victim != "coordinator"
    return True


def _kill_at_phase(h, reference, phase, victim, keep, prune_index=0):
    count = h.wl("count")[0]
    ref = reference(["/bin/bash", VICTIM, count, N, 0])
    gen = keep + 1  # the first checkpoint that prunes
    pause = f"{phase}:{gen}"
    # The job stays quiesced while the coordinator is paused: no stall timeout here.
    launch = h.launch(["/bin/bash", VICTIM, count, N, DELAY], "--keep", keep,
                      env_extra={"STASIS_PAUSE_AT": pause, "STASIS_COORD_TIMEOUT": "600"})
    launch.wait_line("3")
    brackets = {}
    for g in range(1, gen):
        before = len(launch.lines())
        got, _ = h.checkpoint()
        assert got == g
        brackets[g] = (before, len(launch.lines()))
        launch.wait_nlines(brackets[g][1] + 2)

    ck = h.start([h.stasis_bin, "checkpoint"], f"checkpoint{gen}")
    marker = _marker(h, phase, gen)
    unlinked = []
    for i in range(prune_index + 1):
        wait_until(marker.exists, 60, f"pause point {pause} ({marker.name}, #{i + 1})", h.diag,
                   alive=ck.running)
        if i < prune_index:
            unlinked.append(marker.read_text().strip())
            marker.unlink()
    at_pause = len(launch.lines())  # quiesced: exactly the checkpoint's output
    doomed = marker.read_text().strip() if phase == "prune" else None

    pid = {"coordinator": lambda: _coordinator_pid(h),
           "supervisor": lambda: _supervisor_pid(h, launch),
           "client": lambda: launch.pid,
           "program": lambda: _count_pid(h, count)}[victim]()
    os.kill(pid, signal.SIGKILL)

    # Release the paused process if it is still alive (a prune pauses again
    # before each of its unlinks) until the checkpoint is over.
    def released():
        if marker.exists():
            marker.unlink()
        return not ck.running()
    wait_until(released, 60, f"the end of checkpoint {gen}", h.diag)
    if victim == "coordinator":
        # The supervisor resumed the job, which runs to its end unharmed.
        assert launch.wait(60) == 0, h.diag()
        assert launch.lines() == ref, f"the job's output differs from an uninterrupted run\n{h.diag()}"
        assert "lost the coordinator" in launch.err_text(), launch.err_text()
    else:
        launch.wait(60)
    h.assert_no_job_processes(timeout=15)
    wait_until(lambda: not port_processes(h.port), 30, "the coordinator to exit", h.diag)

    _assert_manifests_complete(h)
    durable = _interrupted_is_durable(phase, victim)
    newest = max(h.manifests())
    assert newest == (gen if durable else gen - 1), (
        f"newest manifest {newest}, expected {gen if durable else gen - 1} "
        f"({phase}, {victim} killed)\n{h.diag()}")
    if phase == "prune":
        assert pathlib.Path(unlinked[0] if unlinked else doomed).name.startswith("stasis_manifest_"), (
            f"the prune must delete the old manifest before its images: {unlinked + [doomed]}")

    # Restart the newest checkpoint; its next checkpoint cleans up after the killed writer.
    r = h.restart(h.ckpt, name="restart")
    r.wait_nlines(1, timeout=60)
    h.checkpoint()
    assert r.wait(60) == 0, h.diag()
    k = assert_suffix(r.lines(), ref, "restart output")
    if durable:
        assert k == at_pause, (k, at_pause)
    else:
        assert brackets[gen - 1][0] <= k <= brackets[gen - 1][1], (k, brackets)
    _assert_manifests_complete(h)
    assert len(h.manifests()) <= keep, h.manifests()
    _assert_only_checkpoints_left(h)


PRUNE_UNLINKS = 4  # the manifest of the oldest checkpoint, then its three images


@pytest.mark.parametrize("keep", [1, 2])
@pytest.mark.parametrize("phase,prune_index",
                         [("quiesced", 0), ("dumped", 0), ("manifest", 0)] +
                         [("prune", i) for i in range(PRUNE_UNLINKS)])
def test_coordinator_killed_at_every_phase(h, reference, phase, prune_index, keep):
    """kill -9 of the coordinator at each phase, and at every unlink of its
    prune: the supervisor resumes the job and deletes nothing a manifest
    may list; at least one complete checkpoint always restarts."""
    _kill_at_phase(h, reference, phase, "coordinator", keep, prune_index)


@pytest.mark.parametrize("victim", ["supervisor", "client", "program"])
@pytest.mark.parametrize("phase", ["quiesced", "dumped", "manifest", "prune"])
def test_job_process_killed_at_every_phase(h, reference, phase, victim):
    """kill -9 of the supervisor, of `stasis launch` or of the program while
    the checkpoint is held at each phase: the newest durable checkpoint is
    complete and restarts where it was taken."""
    _kill_at_phase(h, reference, phase, victim, keep=1)


@both_users
@pytest.mark.parametrize("phase,victim", [("manifest", "coordinator"), ("dumped", "supervisor")])
def test_kill_at_phase_as_both_users(h, reference, phase, victim):
    _kill_at_phase(h, reference, phase, victim, keep=1)


def test_prune_pause_points_cover_every_unlink(h, reference):
    """The prune of PRUNE_UNLINKS files pauses before each: manifest first."""
    count = h.wl("count")[0]
    launch = h.launch(["/bin/bash", VICTIM, count, N, DELAY], "--keep", 1,
                      env_extra={"STASIS_PAUSE_AT": "prune:2"})
    launch.wait_line("3")
    _, m1 = h.checkpoint()
    images1 = {p.name for p in h.manifest_images(m1)}
    ck = h.start([h.stasis_bin, "checkpoint"], "checkpoint2")
    marker = _marker(h, "prune", 2)
    seen = []
    while True:
        wait_until(lambda: marker.exists() or not ck.running(), 60, "the next prune pause", h.diag)
        if not marker.exists():
            break
        seen.append(pathlib.Path(marker.read_text().strip()).name)
        marker.unlink()
    assert ck.wait(30) == 0, h.diag()
    assert seen[0] == pathlib.Path(m1).name, f"the old manifest must go first: {seen}"
    assert set(seen[1:]) == images1 and len(seen) == PRUNE_UNLINKS, seen
    launch.wait(60)


@both_users
def test_stalled_coordinator_does_not_freeze_the_job(h, reference):
    """The coordinator is stopped (SIGSTOP) with the job quiesced and every
    image written: after STASIS_COORD_TIMEOUT the supervisor resumes the
    job and gives the checkpoint up.  Continued, the coordinator finishes
    that checkpoint (its images are complete) and takes the next one over
    the same connection; the job's output is unharmed and the last
    checkpoint restarts."""
    count = h.wl("count")[0]
    n, delay = 400, 0.02
    ref = reference([count, n, 0])
    launch = h.launch([count, n, delay],
                      env_extra={"STASIS_PAUSE_AT": "dumped:2", "STASIS_COORD_TIMEOUT": "2"})
    launch.wait_line("3")
    h.checkpoint()
    ck = h.start([h.stasis_bin, "checkpoint"], "checkpoint2")
    marker = _marker(h, "dumped", 2)
    wait_until(marker.exists, 60, marker.name, h.diag, alive=ck.running)
    coord = _coordinator_pid(h)
    os.kill(coord, signal.SIGSTOP)
    try:
        marker.unlink()
        frozen = len(launch.lines())
        launch.wait_nlines(frozen + 5, timeout=30)
        assert re.search(r"checkpoint 2: no word from the coordinator .*resuming the job",
                         launch.err_text()), launch.err_text()
    finally:
        os.kill(coord, signal.SIGCONT)
    ck.wait(60)
    _assert_manifests_complete(h)
    before = len(launch.lines())
    gen, manifest = h.checkpoint()
    after = len(launch.lines())
    assert gen == 3, gen
    assert launch.wait(60) == 0, h.diag()
    assert launch.lines() == ref, f"the job's output differs from an uninterrupted run\n{h.diag()}"
    r = h.restart(manifest, name="restart")
    assert r.wait(60) == 0, h.diag()
    k = assert_suffix(r.lines(), ref)
    assert before <= k <= after, (k, before, after)


@both_users
def test_sigterm_to_every_process_takes_the_final_checkpoint(h, reference):
    """Slurm's scancel/walltime/preemption: SIGTERM to every process of the
    job at once, the coordinator included (it is in the job's cgroup).
    `stasis run` checkpoints, stops the job and exits 0; the next `stasis
    run` continues where it stopped."""
    count = h.wl("count")[0]
    n, delay = 300, 0.02
    ref = reference([count, n, 0])
    argv = [h.stasis_bin, "run", "-c", h.ckpt, "--", count, n, delay]
    run1 = h.start(argv, "run1")
    run1.wait_line("5")
    pids = {pid for pid, _ in port_processes(h.port)} | {run1.pid}
    assert any(" coordinator " in f" {cmd} " for _, cmd in port_processes(h.port)), h.diag()
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    assert run1.wait(60) == 0, h.diag()
    assert re.search(r"checkpoint \d+ complete: .*; job stopped", run1.err_text()), run1.err_text()
    h.assert_no_job_processes(timeout=15)
    wait_until(lambda: not port_processes(h.port), 30, "the coordinator to exit", h.diag)
    _assert_manifests_complete(h)
    run2 = h.start(argv, "run2")
    assert run2.wait(60) == 0, h.diag()
    assert "restarting from" in run2.err_text(), run2.err_text()
    assert_concatenation([run1.lines(), run2.lines()], ref)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_writer_killed_mid_image_at_a_random_offset(h, reference, seed):
    """kill -9 of the supervisor (the image writer) while it is writing an
    image, at a random offset of it: the previous checkpoint stays the
    newest, restarts with every byte of its memory, and the next checkpoint
    removes the half-written temp file."""
    import random
    mib = 96
    argv = [h.wl("bigcount.py")[0], h.wl("bigcount.py")[1], 60, 0.05, mib]
    ref = reference(argv)
    launch = h.launch(argv, "--compress", "none", "--keep", 2)
    launch.wait_line("3", timeout=90)
    g1, _ = h.checkpoint()
    offset = random.Random(seed).randrange(1 << 20, (mib << 20) * 3 // 4)
    ck = h.start([h.stasis_bin, "checkpoint"], "checkpoint2")
    sup = _supervisor_pid(h, launch)

    def tmp_past_offset():
        for p in h.ckpt.glob(f"*_{g1 + 1:06d}.stasis.tmp"):
            try:
                if p.stat().st_size >= offset:
                    return True
            except FileNotFoundError:
                pass
        return False
    wait_until(tmp_past_offset, 120, f"the image being written past byte {offset}", h.diag,
               alive=ck.running)
    os.kill(sup, signal.SIGKILL)
    assert ck.wait(60) != 0, "the interrupted checkpoint must fail"
    launch.wait(60)
    h.assert_no_job_processes(timeout=15)
    wait_until(lambda: not port_processes(h.port), 30, "the coordinator to exit", h.diag)
    _assert_manifests_complete(h)
    assert max(h.manifests()) == g1, h.diag()
    assert list(h.ckpt.glob("*.stasis.tmp")), "the half-written image should still be there"

    r = h.restart(h.ckpt, name="restart")
    r.wait_nlines(1, timeout=90)
    h.checkpoint()
    assert r.wait(120) == 0, h.diag()
    assert_suffix(r.lines(), ref, "restart output")
    assert r.lines()[-1] == ref[-1] and ref[-1].startswith("sha256 "), (r.lines()[-3:], ref[-1])
    _assert_manifests_complete(h)
    _assert_only_checkpoints_left(h)
