"""Repeated restarts, restarting one checkpoint twice, restarting a copied
checkpoint directory."""

import shutil
import subprocess

import pytest

from conftest import assert_concatenation

N, DELAY = 40, 0.1


def _launch_and_kill(h, at="3"):
    launch = h.launch(h.wl("count", N, DELAY))
    launch.wait_line(at)
    gen, manifest = h.checkpoint(kill=True)
    assert launch.wait(30) == 0, h.diag()
    h.assert_no_job_processes()
    return launch.lines(), gen


@pytest.mark.timeout(300)
def test_restart_chain_5(h, reference):
    """launch; then 5 x (restart, a few lines, checkpoint --kill); then a
    final restart to the end: all outputs concatenated are the uninterrupted
    output."""
    ref = reference(h.wl("count", N, 0))
    pre, gen = _launch_and_kill(h)
    parts = [pre]
    for i in range(5):
        r = h.restart(h.ckpt, name=f"restart{i + 1}")
        r.wait_nlines(2)
        new_gen, manifest = h.checkpoint(kill=True)
        assert new_gen > gen, f"generation must increase across restarts: {gen} -> {new_gen}"
        gen = new_gen
        assert r.wait(30) == 0, f"restart {i + 1} must exit 0 after checkpoint --kill\n{h.diag()}"
        h.assert_no_job_processes()
        parts.append(r.lines())
    final = h.restart(h.ckpt, name="final")
    assert final.wait(120) == 0, h.diag()
    parts.append(final.lines())
    assert_concatenation(parts, ref)


def test_restart_same_checkpoint_twice(h, reference):
    ref = reference(h.wl("count", N, 0))
    pre, _ = _launch_and_kill(h, at="30")
    a = h.restart(h.ckpt, name="restart_a")
    assert a.wait(120) == 0, h.diag()
    h.assert_no_job_processes()
    b = h.restart(h.ckpt, name="restart_b")
    assert b.wait(120) == 0, h.diag()
    assert a.lines() == b.lines(), f"two restarts of one checkpoint differ:\n{a.lines()}\n{b.lines()}"
    assert_concatenation([pre, a.lines()], ref)


def test_restart_copied_dir(h, reference):
    """cp -a the checkpoint directory, move the original away, restart from
    the copy."""
    ref = reference(h.wl("count", N, 0))
    pre, _ = _launch_and_kill(h, at="30")
    copy = h.dir / "copied-ckpt"
    subprocess.run(["cp", "-a", str(h.ckpt), str(copy)], check=True)
    h.ckpt.rename(h.dir / "original-moved-away")
    r = h.restart(copy)
    assert r.wait(120) == 0, h.diag()
    assert_concatenation([pre, r.lines()], ref)
