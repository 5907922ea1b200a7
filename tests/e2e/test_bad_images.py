"""Restart refuses damaged or foreign input: exit code != 0, stderr names the
file and the problem, and nothing of the program runs."""

import os
import re

import pytest

from conftest import (assert_suffix, bump_image_version, flip_byte_in_page_block,
                      read_lines)

N, DELAY = 30, 0.1


@pytest.fixture
def killed(h):
    """A count job checkpointed with --kill at 3; returns (image, progress)."""
    progress = h.path("progress.txt")
    launch = h.launch(h.wl("count", N, DELAY, progress))
    launch.wait_line("3")
    _, manifest = h.checkpoint(kill=True)
    assert launch.wait(30) == 0, h.diag()
    h.assert_no_job_processes()
    (image,) = h.manifest_images(manifest)
    return image, progress


def _assert_refused(h, r, target, problem_rx, progress):
    # count was killed at the checkpoint after printing 3 (and maybe 4).
    progress_before = read_lines(progress)
    assert progress_before[:3] == ["1", "2", "3"], progress_before
    rc = r.wait(60)
    err = r.err_text()
    assert rc != 0, f"restart of a bad image must fail\n{h.diag()}"
    assert str(target) in err or os.path.basename(str(target)) in err, (
        f"stderr does not name the file {target}: {err!r}")
    assert re.search(problem_rx, err, re.I), f"stderr does not say {problem_rx!r}: {err!r}"
    h.assert_no_job_processes()
    assert r.lines() == [], f"the program printed after a failed restart: {r.lines()}"
    assert read_lines(progress) == progress_before, "the program ran after a failed restart"


def test_restart_truncated_image(h, killed):
    image, progress = killed
    size = image.stat().st_size
    with open(image, "r+b") as f:
        f.truncate(size // 2)
    r = h.restart(image)
    _assert_refused(h, r, image, r"truncat|short|end of file|eof|incomplete", progress)


def test_restart_bitflipped_image(h, killed):
    image, progress = killed
    flip_byte_in_page_block(image)
    r = h.restart(image)
    _assert_refused(h, r, image, r"checksum|corrupt", progress)


def test_restart_empty_file(h, killed):
    _, progress = killed
    empty = h.path("ckpt_empty.stasis")
    empty.touch()
    r = h.restart(empty)
    _assert_refused(h, r, empty, r"empty|truncat|short|too small|header|not a stasis image",
                    progress)


def test_restart_foreign_file(h, killed):
    _, progress = killed
    r = h.restart("/bin/ls")
    _assert_refused(h, r, "/bin/ls", r"not a stasis (checkpoint )?image|magic|not an image",
                    progress)


def test_restart_newer_version(h, killed):
    image, progress = killed
    old = bump_image_version(image)
    assert old == 1
    r = h.restart(image)
    _assert_refused(h, r, image, r"newer", progress)


def test_restart_dir_falls_back_to_previous(h, reference):
    """Restart of a directory whose newest checkpoint is damaged uses the
    previous complete one, with a warning."""
    ref = reference(h.wl("count", N, 0))
    launch = h.launch(h.wl("count", N, DELAY))
    launch.wait_line("3")
    before = len(launch.lines())
    gen1, m1 = h.checkpoint()
    after = len(launch.lines())
    launch.wait_nlines(after + 2)
    gen2, m2 = h.checkpoint(kill=True)
    assert launch.wait(30) == 0
    (image2,) = h.manifest_images(m2)
    flip_byte_in_page_block(image2)
    r = h.restart(h.ckpt)
    assert r.wait(120) == 0, h.diag()
    err = r.err_text()
    assert image2.name in err or os.path.basename(m2) in err, f"no warning naming {image2}: {err!r}"
    k = assert_suffix(r.lines(), ref)
    assert before <= k <= after, (k, before, after)
