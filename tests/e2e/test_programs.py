"""Checkpoint/restart of the seed programs: the output of a checkpointed and
restarted run equals the output of an uninterrupted run."""

import pathlib
import re

import pytest

from conftest import (assert_concatenation, assert_suffix, both_users, read_lines,
                      wait_until)

COUNT_N = 12
COUNT_DELAY = 0.15


def _kill_checkpoint_restart(h, reference, argv, ref_argv, wait, restart_args=None,
                             restart_via_script=False, progress=None):
    """launch argv; wait(launch); checkpoint --kill; restart; compare the
    concatenated outputs with the uninterrupted run of ref_argv."""
    ref = reference(ref_argv)
    launch = h.launch(argv)
    wait(launch)
    gen, manifest = h.checkpoint(kill=True)
    assert gen == 1
    assert launch.wait(30) == 0, f"launch must exit 0 after checkpoint --kill\n{h.diag()}"
    pre = launch.lines()
    h.assert_no_job_processes()
    script = h.ckpt / "stasis_restart.sh"
    assert script.is_file(), f"{script} missing"
    if restart_via_script:
        r = h.start([str(script)], "restart")
    else:
        r = h.restart(*(restart_args or [h.ckpt]))
    assert r.wait(120) == 0, f"restarted program must exit 0\n{h.diag()}"
    post = r.lines()
    assert_concatenation([pre, post], ref)
    return pre, post


@both_users
@pytest.mark.parametrize("via", ["dir", "script"])
def test_count_c(h, reference, via):
    _kill_checkpoint_restart(
        h, reference, h.wl("count", COUNT_N, COUNT_DELAY), h.wl("count", COUNT_N, 0),
        wait=lambda p: p.wait_line("3"), restart_via_script=(via == "script"))


def test_count_c_restart_image_file(h, reference):
    """restart given the image file instead of the directory."""
    ref = reference(h.wl("count", COUNT_N, 0))
    launch = h.launch(h.wl("count", COUNT_N, COUNT_DELAY))
    launch.wait_line("4")
    _, manifest = h.checkpoint(kill=True)
    assert launch.wait(30) == 0
    images = h.manifest_images(manifest)
    assert len(images) == 1 and images[0].is_file(), images
    assert re.fullmatch(r"ckpt_count_.+_\d+_0*1\.stasis", images[0].name), images[0].name
    r = h.restart(images[0])
    assert r.wait(120) == 0, h.diag()
    assert_concatenation([launch.lines(), r.lines()], ref)


@both_users
@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "u"])
def test_count_py(h, reference, unbuffered):
    """count.py with stdout to a file.  Buffered: at checkpoint --kill the
    numbers printed so far are still in Python's buffer (in memory): the
    first output is empty and the restarted process prints everything; the
    concatenation still equals the uninterrupted run.  -u: unbuffered."""
    progress = h.path("progress.txt")
    progress.touch()
    h.own(progress)
    py = ["-u"] if unbuffered else []
    argv = ["/usr/bin/python3"] + py + h.wl("count.py", COUNT_N, COUNT_DELAY, progress)[1:]
    ref_argv = ["/usr/bin/python3"] + py + h.wl("count.py", COUNT_N, 0)[1:]
    pre, post = _kill_checkpoint_restart(
        h, reference, argv, ref_argv,
        wait=lambda p: wait_until(lambda: "3" in read_lines(progress), 30,
                                  "3 in the progress file", h.diag, alive=p.running))
    if unbuffered:
        assert pre[:4] == ["0", "1", "2", "3"], pre
    else:
        assert pre == [], f"buffered python printed before exit: {pre}"


@both_users
def test_threads(h, reference):
    rounds, delay = 30, 0.05
    _kill_checkpoint_restart(
        h, reference, h.wl("threads", rounds, delay, 4), h.wl("threads", rounds, 0, 4),
        wait=lambda p: p.wait_match(r"^round 5 "))


@both_users
@pytest.mark.timeout(300)
def test_matmul(h, reference):
    """numpy 1000x1000 matmul loop with 2 OpenBLAS threads: checkpoint mid-run
    (job keeps running), kill -9 everything, restart: the iteration lines
    continue from the checkpoint with the same checksums."""
    iters = 14
    ref = reference(h.wl("matmul.py", iters, 1000))
    launch = h.launch(h.wl("matmul.py", iters, 1000))
    launch.wait_match(r"^iter +3 ")
    before = len(launch.lines())
    gen, manifest = h.checkpoint()
    after = len(launch.lines())
    # The job continues after a checkpoint.
    launch.wait_nlines(after + 1, timeout=60)
    pre = launch.lines()
    assert pre == ref[:len(pre)], f"output before the kill differs: {pre}"
    h.kill_all()
    r = h.restart(h.ckpt)
    assert r.wait(240) == 0, h.diag()
    post = r.lines()
    k = assert_suffix(post, ref)
    # The checkpoint was taken after `before` lines and before `after`+1.
    assert before <= k <= after, (f"restart continued at line {k + 1}, but the checkpoint "
                                  f"was taken between lines {before} and {after + 1}")
    assert post[-1] == "done"


@both_users
def test_looper_periodic_kill9(h, reference):
    """looper.py keeps looper.txt open in append mode.  Periodic checkpoints
    (--interval 2), kill -9 a few lines after one, restart from the
    directory: looper.txt ends with every line 1..N exactly once (the lines
    written after the checkpoint are undone at restart: the file is saved in
    the checkpoint because it is open for writing, written_files.h)."""
    n, delay = 40, 0.1
    out = h.tmp / "looper.txt"
    launch = h.launch(h.wl("looper.py", n, delay, out), "--interval", 2)
    wait_until(lambda: h.manifests(), 30, "a first periodic checkpoint", h.diag,
               alive=launch.running)
    seen = len(launch.lines())
    launch.wait_nlines(seen + 3)
    h.kill_all()
    assert launch.popen.returncode != 0
    lines_at_kill = read_lines(out)
    r = h.restart(h.ckpt)
    assert r.wait(120) == 0, h.diag()
    lines = read_lines(out)
    numbers = [int(l.split()[0]) for l in lines]
    assert numbers == list(range(1, n + 1)), (
        f"looper.txt must hold 1..{n} exactly once; has {numbers} "
        f"(at kill it had {[int(l.split()[0]) for l in lines_at_kill]})")
    # Same pid (and parent pid) for every line: pids survive the restart.
    assert len({tuple(l.split()[2:4]) for l in lines}) == 1, lines
    # stdout of the restart continues the program's stdout.
    post = r.lines()
    assert post and post[-1].startswith(f"{n}  "), post
    first = int(post[0].split()[0])
    assert 1 < first <= len(lines_at_kill) + 1, (first, len(lines_at_kill))
    assert [int(l.split()[0]) for l in post] == list(range(first, n + 1)), post
