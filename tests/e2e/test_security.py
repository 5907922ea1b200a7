"""Nobody else can drive the job (docs/architecture.md, "Security model"):
run as root with user nobody as the other local user.

  * a fake coordinator of another uid listening first on the job's port is
    refused by `stasis launch`, `status` and `checkpoint`, which name the
    port and its uid and send it nothing;
  * thousands of idle connections to the coordinator's port do not stop the
    owner's `stasis status` and `checkpoint`;
  * files Stasis creates in a directory another user can write are never
    written through a symlink planted there (restart script, --port-file);
  * `stasis restart` refuses checkpoints another user could have written
    (unless --allow-foreign-owner), and a manifest listing an image of
    another generation; `stasis inspect` reports both.
"""

import json
import os
import pathlib
import re
import signal
import subprocess
import time

import pytest

from conftest import (NOBODY_GID, NOBODY_UID, PY, _nobody_prefix, port_processes, require_nobody,
                      wait_until)


def as_nobody(argv, **kw):
    return subprocess.run(_nobody_prefix() + [str(a) for a in argv], capture_output=True, text=True,
                          timeout=30, stdin=subprocess.DEVNULL, **kw)


def start_as_nobody(h, code, name, *args):
    """Runs python `code` as nobody in the background (own process group),
    stdout/stderr to <dir>/<name>.out/.err; killed by the harness cleanup
    through h.procs."""
    from conftest import Proc
    out, err = h.dir / f"{name}.out", h.dir / f"{name}.err"
    argv = _nobody_prefix() + [PY, "-c", code] + [str(a) for a in args]
    with open(out, "wb") as fo, open(err, "wb") as fe:
        popen = subprocess.Popen(argv, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
    p = Proc(h, name, argv, out, err, popen)
    h.procs.append(p)
    return p


def nobody_dir(h, name):
    d = h.path(name)
    d.mkdir()
    os.chown(d, NOBODY_UID, NOBODY_GID)
    return d


# A coordinator impostor: answers every hello as a coordinator would (with a
# made-up challenge) and logs every line it receives.
FAKE_COORDINATOR = r"""
import json, socket, sys, threading
port, log = int(sys.argv[1]), sys.argv[2]
lock = threading.Lock()
def note(s):
    with lock, open(log, "a") as f:
        f.write(s + "\n")
def serve(c):
    f = c.makefile("rwb")
    for line in f:
        note("got " + line.decode(errors="replace").strip())
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("type") == "hello":
            reply = {"ok": True, "job_id": "evil", "type": "challenge", "nonce": "0" * 32, "proof": "0" * 64}
        else:
            reply = {"ok": True, "generation": 1, "manifest": "/tmp/evil", "processes": []}
        f.write((json.dumps(reply) + "\n").encode())
        f.flush()
    note("closed")
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(64)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


def test_fake_coordinator_of_another_user_is_refused(h):
    require_nobody(h.build)
    logdir = nobody_dir(h, "fake")
    log = logdir / "log"
    fake = start_as_nobody(h, FAKE_COORDINATOR, "fake", h.port, log)
    fake.wait_line("listening")

    def closed_count():
        return sum(1 for l in (log.read_text().splitlines() if log.exists() else []) if l == "closed")

    launch = h.launch(h.wl("count", 100, 0.1))
    rc = launch.wait(60)
    commands = [("launch", rc, launch.err_text())]
    for cmd in (["status"], ["checkpoint"]):
        r = h.stasis(*cmd, timeout=60)
        commands.append((cmd[0], r.returncode, r.stderr))
    for name, rc, err in commands:
        assert rc != 0, f"stasis {name} trusted a coordinator of uid {NOBODY_UID}: rc {rc}\n{err}"
        assert str(h.port) in err and f"uid {NOBODY_UID}" in err, (
            f"stasis {name}: the refusal must name the port {h.port} and the listener's uid "
            f"{NOBODY_UID}:\n{err}")
    # Every connection has been closed by the client, and none said anything.
    wait_until(lambda: closed_count() >= len(commands), 20, "the fake coordinator to see every close",
               h.diag)
    got = [l for l in log.read_text().splitlines() if l.startswith("got")]
    assert not got, f"a client sent messages to the fake coordinator: {got}"
    assert not h.manifests(), "a checkpoint was written under a fake coordinator"


# Opens and keeps about N connections to the port (reopening those the
# coordinator drops, at most 400 per second); prints "opened N" once.
FLOOD = r"""
import errno, os, resource, selectors, socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 256), hard))
sel = selectors.DefaultSelector()
def connect():
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    sel.register(s, selectors.EVENT_READ)
live = 0
for _ in range(n):
    connect()
    live += 1
print("opened", n, flush=True)
while True:
    lost = 0
    for key, _ in sel.select(0.05):
        s = key.fileobj
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        if not data:
            sel.unregister(s)
            s.close()
            lost += 1
    for _ in range(min(lost, 20)):
        connect()
"""


def coordinator_pid(port):
    procs = [pid for pid, cmd in port_processes(port) if " coordinator " in f" {cmd} "]
    return procs[0] if procs else None


@pytest.mark.timeout(240)
def test_connection_flood_does_not_block_the_owner(h):
    require_nobody(h.build)
    coord_log = h.path("coordinator.log")
    h.extra_env["STASIS_COORD_LOG"] = str(coord_log)
    launch = h.launch(h.wl("count", 100000, 0.1))
    launch.wait_line("2")
    pid = wait_until(lambda: coordinator_pid(h.port), 10, "the coordinator's pid", h.diag)
    # A descriptor limit below the flood, so the coordinator meets EMFILE
    # whatever limit it inherited.
    subprocess.run(["prlimit", f"--pid={pid}", "--nofile=512:512"], check=True)
    flood = start_as_nobody(h, FLOOD, "flood", h.port, 3000)
    flood.wait_line("opened 3000", timeout=120)
    for i in range(3):
        t0 = time.monotonic()
        r = h.stasis("status", timeout=60)
        took = time.monotonic() - t0
        assert r.returncode == 0 and "count" in r.stdout, (
            f"stasis status #{i + 1} failed during the flood (rc {r.returncode}, {took:.1f} s):\n{r.stderr}")
        assert took < 20, f"stasis status #{i + 1} took {took:.1f} s during the flood"
    # Fewer descriptors than the pending connections allowed: accept(2)
    # fails with EMFILE, the coordinator backs off and sheds idle peers.
    subprocess.run(["prlimit", f"--pid={pid}", "--nofile=40:512"], check=True)
    for i in range(3):
        t0 = time.monotonic()
        r = h.stasis("status", timeout=60)
        took = time.monotonic() - t0
        assert r.returncode == 0 and "count" in r.stdout, (
            f"stasis status #{i + 1} failed at EMFILE (rc {r.returncode}, {took:.1f} s):\n{r.stderr}\n"
            f"coordinator log:\n{coord_log.read_text()[-3000:]}")
        assert took < 20, f"stasis status #{i + 1} took {took:.1f} s at EMFILE"
    subprocess.run(["prlimit", f"--pid={pid}", "--nofile=512:512"], check=True)
    gen, manifest = h.checkpoint(timeout=60)
    assert os.path.isfile(manifest)
    assert flood.running(), f"the flood process died:\n{flood.err_text()}"
    flood.kill_group()
    r = h.stasis("status", timeout=60)
    assert r.returncode == 0, r.stderr


def test_files_are_never_written_through_a_planted_symlink(h):
    require_nobody(h.build)
    # A checkpoint directory user nobody can write (world-writable, not
    # sticky: a shared project directory); root's victims outside it.
    os.chmod(h.ckpt, 0o777)
    victim = h.path("victim")
    victim.write_text("precious\n")
    r = as_nobody(["ln", "-s", victim, h.ckpt / "stasis_restart.sh.tmp"])
    assert r.returncode == 0, r.stderr
    launch = h.launch(h.wl("count", 1000, 0.1))
    launch.wait_line("2")
    h.checkpoint()
    assert victim.read_text() == "precious\n", "the restart script was written through a symlink"
    script = h.ckpt / "stasis_restart.sh"
    assert script.is_file() and not script.is_symlink()
    assert os.stat(script).st_mode & 0o777 == 0o755

    # --port-file of an ephemeral-port coordinator, in a directory nobody can write.
    portdir = nobody_dir(h, "portdir")
    victim2 = h.path("victim2")
    victim2.write_text("precious\n")
    r = as_nobody(["ln", "-s", victim2, portdir / "port.tmp"])
    assert r.returncode == 0, r.stderr
    coord = h.start([h.stasis_bin, "coordinator", "--coord-port", "0", "--port-file", portdir / "port"],
                    "coordinator")
    wait_until(lambda: (portdir / "port").is_file(), 30, "the port file", h.diag, alive=coord.running)
    assert victim2.read_text() == "precious\n", "the port file was written through a symlink"
    port = int((portdir / "port").read_text())
    r = h.stasis("quit", "--coord-port", port, timeout=30)
    assert r.returncode == 0, r.stderr
    coord.wait(30)


@pytest.mark.parametrize("user", ["nobody"], indirect=True)
def test_root_refuses_images_another_user_wrote(h, reference):
    launch = h.launch(h.wl("count", 40, 0.05))
    launch.wait_line("3")
    gen, manifest = h.checkpoint(kill=True)
    launch.wait(30)
    pre = launch.lines()

    # Root restarting nobody's checkpoint: refused, naming the file's owner.
    env = h.env()
    r = subprocess.run([h.stasis_bin, "restart", str(h.ckpt)], capture_output=True, text=True, env=env,
                       timeout=120, cwd=h.dir, stdin=subprocess.DEVNULL)
    assert r.returncode == 1, f"root restarted nobody's images: rc {r.returncode}\n{r.stdout}\n{r.stderr}"
    assert f"owned by uid {NOBODY_UID}" in r.stderr and "--allow-foreign-owner" in r.stderr, r.stderr
    assert not port_processes(h.port, include_coordinator=False)

    r = subprocess.run([h.stasis_bin, "inspect", str(h.ckpt)], capture_output=True, text=True, env=env,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert f"owned by uid {NOBODY_UID}" in r.stdout, r.stdout + r.stderr
    r = subprocess.run([h.stasis_bin, "inspect", "--json", str(manifest)], capture_output=True, text=True,
                       env=env, timeout=60, stdin=subprocess.DEVNULL)
    data = json.loads(r.stdout)
    assert f"owned by uid {NOBODY_UID}" in data.get("ownership_problem", ""), data

    # The owner restarts it as always.
    restart = h.restart(h.ckpt)
    assert restart.wait(60) == 0, h.diag()
    assert pre + restart.lines() == reference(h.wl("count", 40, 0.05))


def test_restart_refuses_a_world_writable_image_and_a_foreign_generation(h):
    launch = h.launch(h.wl("count", 1000, 0.05))
    launch.wait_line("3")
    gen1, m1 = h.checkpoint()
    gen2, m2 = h.checkpoint(kill=True)
    launch.wait(30)
    (img1,) = h.manifest_images(m1)
    (img2,) = h.manifest_images(m2)

    os.chmod(img2, 0o666)
    r = h.stasis("restart", m2, timeout=120)
    assert r.returncode == 1, f"a world-writable image was restarted: rc {r.returncode}\n{r.stderr}"
    assert img2.name in r.stderr and "every user" in r.stderr, r.stderr
    os.chmod(img2, 0o600)

    # Manifest 2 listing the image of checkpoint 1: refused, by inspect too.
    data = json.loads(pathlib.Path(m2).read_text())
    data["processes"][0]["image"] = img1.name
    data["processes"][0]["image_size"] = img1.stat().st_size
    pathlib.Path(m2).write_text(json.dumps(data))
    r = h.stasis("restart", m2, timeout=120)
    assert r.returncode == 1, f"a manifest listing another generation's image restarted:\n{r.stderr}"
    assert img1.name in r.stderr and "generation 1" in r.stderr, r.stderr
    assert not h.job_processes()
    r = h.stasis("inspect", m2)
    assert r.returncode == 1, r.stdout
    assert img1.name in r.stderr and "mixes checkpoints" in r.stderr, r.stderr
