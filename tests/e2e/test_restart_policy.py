"""When `stasis restart DIR` may fall back to an older checkpoint, and which
job owns a checkpoint directory.

* Fallback only when the newest checkpoint is damaged or incomplete; an
  error of the environment (the port of a listener taken, a file the
  program had open deleted) fails the restart with a message naming what
  and why, a non-zero exit and nothing started -- an older checkpoint would
  silently repeat work.
* `--generation N` restarts that checkpoint or fails, never another one.
* `stasis inspect DIR` lists the checkpoints and restart's pick.
* One job per checkpoint directory (.stasis.lock): a second launch or a
  restart of a running job's directory is refused naming the first job; a
  symlink planted as the lock file is not followed."""

import json
import os
import re
import socket

import pytest

from conftest import both_users, flip_byte_in_page_block, free_port

N, DELAY = 400, 0.05


def numbers(lines):
    return [int(l) for l in lines if l.isdigit()]


def two_checkpoints(h, mode, arg):
    """late_resource.py job: checkpoint 1 before it takes the resource,
    checkpoint 2 (--kill) after.  Returns the launch."""
    trigger = h.path("trigger")
    launch = h.launch(h.wl("late_resource.py", N, DELAY, trigger, mode, arg))
    launch.wait_line("3")
    gen1, _ = h.checkpoint()
    trigger.write_text("go\n")
    launch.wait_match(r"^(listening|opened) ")
    n = len(launch.lines())
    launch.wait_nlines(n + 2)
    gen2, _ = h.checkpoint(kill=True)
    assert (gen1, gen2) == (1, 2), (gen1, gen2)
    assert launch.wait(30) == 0, h.diag()
    h.assert_no_job_processes()
    return launch


def assert_refused_nothing_ran(h, r, must_say):
    rc = r.wait(60)
    err = r.err_text()
    assert rc != 0, f"the restart must fail\n{h.diag()}"
    for rx in must_say:
        assert re.search(rx, err, re.I), f"stderr does not say {rx!r}: {err!r}"
    assert not re.search(r"trying the previous checkpoint", err), f"fell back to an older checkpoint: {err!r}"
    assert r.lines() == [], f"the program ran after a refused restart: {r.lines()}"
    h.assert_no_job_processes()


@both_users
def test_port_in_use_is_not_a_reason_to_fall_back(h):
    """The job listens on a TCP port after checkpoint 1; at restart an
    outside process holds that port.  The restart fails naming the address
    and EADDRINUSE (it used to restart checkpoint 1 and redo its work); once
    the port is free again, checkpoint 2 restarts and continues exactly."""
    port = free_port()
    launch = two_checkpoints(h, "listen", port)
    before = launch.lines()
    squatter = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    squatter.bind(("127.0.0.1", port))
    squatter.listen(1)
    try:
        r = h.restart(h.ckpt, name="refused")
        assert_refused_nothing_ran(h, r, [rf"127\.0\.0\.1:{port}", r"address already in use",
                                          r"stasis_manifest_0*2\.json", r"--generation"])
    finally:
        squatter.close()
    assert sorted(h.manifests()) == [1, 2], "the failed restart changed the checkpoints"
    r = h.restart(h.ckpt, name="restart")
    assert r.wait(120) == 0, h.diag()
    assert not any(l.startswith("listening") for l in r.lines()), r.lines()
    assert numbers(before) + numbers(r.lines()) == list(range(1, N + 1)), h.diag()


def test_deleted_open_file_is_not_a_reason_to_fall_back(h):
    """A file the program opened after checkpoint 1 is deleted before the
    restart: refused naming the file, no fallback to checkpoint 1."""
    data = h.path("input.dat")
    data.write_text("data\n")
    two_checkpoints(h, "open", data)
    data.unlink()
    r = h.restart(h.ckpt)
    assert_refused_nothing_ran(h, r, [re.escape(str(data)), r"no such file|no longer"])


def test_damaged_newest_falls_back(h):
    """A truncated image in the newest checkpoint is damage: the previous
    checkpoint is restarted, with a warning naming the image."""
    port = free_port()
    two_checkpoints(h, "listen", port)
    (image2,) = h.manifest_images(h.manifests()[2])
    with open(image2, "r+b") as f:
        f.truncate(image2.stat().st_size // 2)
    r = h.restart(h.ckpt)
    assert r.wait(120) == 0, h.diag()
    err = r.err_text()
    assert image2.name in err and re.search(r"damaged.*trying the previous checkpoint", err), err
    # Checkpoint 1 was before the listener: its restart takes it again.
    assert any(l == f"listening {port}" for l in r.lines()), r.lines()
    assert numbers(r.lines())[-1] == N


def test_generation_picks_one_and_never_falls_back(h):
    launch = h.launch(h.wl("count", N, DELAY))
    launch.wait_line("3")
    h.checkpoint()
    at1 = len(launch.lines())
    launch.wait_nlines(at1 + 3)
    h.checkpoint(kill=True)
    assert launch.wait(30) == 0, h.diag()

    r = h.restart("--generation", 7, h.ckpt, name="absent")
    rc = r.wait(30)
    assert rc != 0 and re.search(r"no checkpoint of generation 7", r.err_text()), r.err_text()
    assert re.search(r"stasis_manifest_0*2\.json", r.err_text()), r.err_text()
    assert r.lines() == []

    (image2,) = h.manifest_images(h.manifests()[2])
    saved = image2.read_bytes()
    flip_byte_in_page_block(image2)
    r = h.restart("--generation", 2, h.ckpt, name="damaged")
    assert_refused_nothing_ran(h, r, [re.escape(image2.name), r"checksum"])
    image2.write_bytes(saved)

    r = h.restart("-g", 1, h.ckpt, name="gen1")
    assert r.wait(120) == 0, h.diag()
    post = numbers(r.lines())
    assert post == list(range(post[0], N + 1)) and 3 <= post[0] - 1 <= at1, (post[:3], at1)


def test_inspect_lists_checkpoints(h):
    launch = h.launch(h.wl("count", N, DELAY))
    launch.wait_line("3")
    h.checkpoint()
    h.checkpoint(kill=True)
    assert launch.wait(30) == 0, h.diag()
    (image2,) = h.manifest_images(h.manifests()[2])
    flip_byte_in_page_block(image2)
    # An interrupted checkpoint 3: an image without a manifest.
    tmp = h.ckpt / re.sub(r"_0*2\.stasis$", "_000003.stasis.tmp", image2.name)
    assert tmp.name.endswith("3.stasis.tmp"), tmp
    tmp.write_bytes(b"partial")

    r = h.stasis("inspect", "--json", h.ckpt)
    assert r.returncode == 1, f"a damaged checkpoint makes inspect exit 1\n{r.stdout}{r.stderr}"
    data = json.loads(r.stdout)
    cps = {c["generation"]: c for c in data["checkpoints"]}
    assert sorted(cps) == [1, 2, 3], data
    assert [c["generation"] for c in data["checkpoints"]] == [3, 2, 1], "newest first"
    assert cps[3]["state"] == "incomplete" and cps[3]["manifest"] is None, cps[3]
    assert cps[2]["state"] == "damaged" and "checksum" in cps[2]["problem"], cps[2]
    assert image2.name in cps[2]["problem"], cps[2]
    assert cps[1]["state"] == "complete" and cps[1]["problem"] is None, cps[1]
    assert [g for g, c in cps.items() if c["restart"]] == [1], data
    assert data["restart"]["generation"] == 1, data
    for c in (cps[1], cps[2]):
        assert c["processes"] == 1 and c["bytes"] > 0 and c["time"] > 0, c

    r = h.stasis("inspect", h.ckpt)
    assert r.returncode == 1
    out = r.stdout
    assert re.search(r"^\s+2 .*damaged: .*checksum", out, re.M), out
    assert re.search(r"^\s+1 .*complete\s+<- stasis restart picks this one", out, re.M), out
    assert re.search(r"^\s+3 .*incomplete: no manifest", out, re.M), out
    assert re.search(r"restarts generation 1 \(stasis_manifest_0*1\.json\)", out), out


# --------------------------------------------------------------------------
# one job per checkpoint directory
# --------------------------------------------------------------------------

@both_users
def test_second_job_in_a_directory_is_refused(h):
    launch = h.launch(h.wl("count", N, DELAY))
    launch.wait_line("2")
    gen, _ = h.checkpoint()
    before = sorted(p.name for p in h.ckpt.iterdir())

    # Another job (its own coordinator) into the same directory.
    other = free_port()
    second = h.start([h.stasis_bin, "launch", "--coord-port", other, "-c", h.ckpt]
                     + h.wl("count", 5, 0), "second", env_extra={"STASIS_COORD_PORT": str(other)})
    assert second.wait(30) != 0, h.diag()
    err = second.err_text()
    assert re.search(rf"checkpoint directory {re.escape(str(h.ckpt))} is in use by another job: "
                     rf"stasis launch, pid {launch.pid} on \S+", err), err
    assert second.lines() == [], "the second job ran"

    # A restart of the running job's directory.
    r = h.restart(h.ckpt, name="restart-running")
    assert r.wait(30) != 0
    assert re.search(rf"in use by another job: stasis launch, pid {launch.pid}", r.err_text()), r.err_text()
    assert r.lines() == []

    # The first job is untouched and goes on checkpointing.
    assert sorted(p.name for p in h.ckpt.iterdir()) == before
    st = json.loads(h.stasis("status", "--json").stdout)
    assert [(c["generation"], c["state"], c["restart"]) for c in st["checkpoints"]] == [
        (gen, "complete", True)], st
    gen2, _ = h.checkpoint()
    assert gen2 == gen + 1
    assert launch.running()
    h.stasis("quit")
    launch.wait(30)


def test_lock_file_symlink_not_followed(h):
    victim = h.path("victim.txt")
    victim.write_text("precious\n")
    os.symlink(victim, h.ckpt / ".stasis.lock")
    launch = h.launch(h.wl("count", 5, 0))
    assert launch.wait(30) != 0
    assert re.search(r"\.stasis\.lock: it is a symbolic link", launch.err_text()), launch.err_text()
    assert launch.lines() == []
    assert victim.read_text() == "precious\n"
