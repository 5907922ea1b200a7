"""Sockets and shared memory between processes of a job, with data in
flight: the writer/reader and parent/child of tests/workloads/sockets.c and
shm.c are checkpointed mid-run, killed, and restarted twice from the same
checkpoint; launch output + each restart's output must equal an
uninterrupted run.  A TCP connection that leads outside the job is reported
at checkpoint and reads as a connection reset after the restart."""

import pathlib
import socket
import threading

import pytest

from conftest import PY, assert_concatenation, both_users, wait_until

SOCK_N, SOCK_WDELAY, SOCK_RDELAY = 200, 0.005, 0.015
SHM_N, SHM_DELAY = 120, 0.02


def _checkpoint_mid_run(h, argv, ready_lines):
    launch = h.launch(argv)
    wait_until(lambda: len(launch.lines()) >= ready_lines, 30, f"{ready_lines} lines of output",
               h.diag, alive=launch.running)
    gen, manifest = h.checkpoint(kill=True)
    assert launch.wait(30) == 0, h.diag()
    h.assert_no_job_processes()
    return launch.lines(), manifest


def _restart_twice(h, manifest, pre, ref):
    for k in range(2):
        r = h.restart(manifest, name=f"restart{k}")
        assert r.wait(60) == 0, h.diag()
        assert "BAD" not in r.text(), r.text()
        assert "outside the job" not in r.err_text(), r.err_text()
        assert_concatenation([pre, r.lines()], ref, f"restart {k} output")
        h.assert_no_job_processes()


@both_users
@pytest.mark.parametrize("mode", ["stream", "dgram", "seqpacket", "unix", "unixdgram", "tcp"])
def test_socket_between_job_processes(h, reference, mode):
    """Records queued in the socket at the checkpoint arrive once, in order."""
    argv = h.wl("sockets", mode, SOCK_N, SOCK_WDELAY, SOCK_RDELAY)
    ref = reference(h.wl("sockets", mode, SOCK_N, 0, 0))
    pre, manifest = _checkpoint_mid_run(h, argv, 2)
    assert len(pre) < len(ref) - 3, "the checkpoint came too late to test anything"
    insp = h.stasis("inspect", "--json", manifest)
    assert insp.returncode == 0, insp.stderr
    assert '"queued"' in insp.stdout, "the receiver's queued records are in the image"
    _restart_twice(h, manifest, pre, ref)


@both_users
@pytest.mark.parametrize("mode", ["anon", "posix", "unlinked", "memfd", "sysv"])
def test_shared_memory_between_job_processes(h, reference, mode):
    """Parent and child keep talking through one shared region (and its
    process-shared semaphores) after the restart."""
    argv = h.wl("shm", mode, SHM_N, SHM_DELAY)
    ref = reference(h.wl("shm", mode, SHM_N, 0))
    pre, manifest = _checkpoint_mid_run(h, argv, 10)
    assert len(pre) < len(ref) - 3, "the checkpoint came too late to test anything"
    _restart_twice(h, manifest, pre, ref)


class _LineServer:
    """A TCP server outside the job: sends numbered lines, one per 10 ms."""

    def __init__(self):
        self.ls = socket.create_server(("127.0.0.1", 0))
        self.port = self.ls.getsockname()[1]
        self.stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.stop:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            threading.Thread(target=self._talk, args=(c,), daemon=True).start()

    def _talk(self, c):
        i = 0
        try:
            while not self.stop:
                c.sendall(f"line {i}\n".encode())
                i += 1
                threading.Event().wait(0.01)
        except OSError:
            pass

    def close(self):
        self.stop = True
        self.ls.close()


CLIENT = r"""
import socket, sys, time
port = int(sys.argv[1])
def connect():
    return socket.create_connection(("127.0.0.1", port)).makefile("rb")
f = connect()
for i in range(400):
    try:
        line = f.readline()
        if not line:
            raise ConnectionResetError("eof")
        if i % 20 == 0:
            print("got", line.decode().split()[0], flush=True)
    except (ConnectionResetError, OSError) as e:
        print("connection lost:", type(e).__name__, flush=True)
        f = connect()
        print("reconnected", flush=True)
        break
    time.sleep(0.005)
print("done", flush=True)
"""


def test_outside_connection_is_reset(h):
    """The checkpoint warns; after the restart the program sees ECONNRESET
    and can reconnect."""
    server = _LineServer()
    try:
        script = h.path("client.py")
        script.write_text(CLIENT)
        launch = h.launch([PY, str(script), server.port])
        launch.wait_line("got line", 30)
        r = h.stasis("checkpoint", "--kill")
        assert r.returncode == 0, r.stderr
        assert launch.wait(30) == 0
        assert "leads outside the job" in launch.err_text(), launch.err_text()
        _, manifest = max(h.manifests().items())
        rs = h.restart(manifest)
        assert rs.wait(60) == 0, h.diag()
        lines = rs.lines()
        assert "connection lost: ConnectionResetError" in lines, lines
        assert lines[-2:] == ["reconnected", "done"], lines
    finally:
        server.close()


@both_users
def test_fifo_between_job_processes(h, reference):
    """A FIFO (named pipe) opened by path on both sides, with lines in
    flight: restarted twice; the program removes the FIFO file when done,
    so the second restart finds it missing (as on another node) and
    creates it again."""
    n = 40
    ref = reference(h.wl("pipes", n, 0, 0, "fifo"))
    pre, manifest = _checkpoint_mid_run(h, h.wl("pipes", n, 0.01, 0.05, "fifo"), 3)
    assert len(pre) < len(ref) - 3, "the checkpoint came too late to test anything"
    for k in range(2):
        if k == 1:  # the first restart's program removed it at its end
            assert not h.path("fifo").exists()
        r = h.restart(manifest, name=f"restart{k}")
        assert r.wait(60) == 0, h.diag()
        assert "cannot be restored" not in r.err_text(), r.err_text()
        assert_concatenation([pre, r.lines()], ref, f"restart {k} output")
        h.assert_no_job_processes()


@both_users
def test_children_of_posix_spawn_vfork_and_system(h, reference):
    """Children started with posix_spawn, vfork+exec and system() (via
    /bin/sh) are part of the job: all come back and finish their counts,
    and the parent collects their exit statuses."""
    n = 40
    ref = reference(h.wl("spawn", n, 0))
    launch = h.launch(h.wl("spawn", n, 0.05))

    def streams(lines):
        return {how: [l for l in lines if l.startswith(how + " ")]
                for how in ("posix_spawn", "vfork", "system")}

    wait_until(lambda: all(len(v) >= 3 for v in streams(launch.lines()).values()), 30,
               "3 lines from each child", h.diag, alive=launch.running)
    _, manifest = h.checkpoint(kill=True)
    assert launch.wait(30) == 0, h.diag()
    assert len(h.manifest_images(manifest)) >= 5  # parent, 3 children, the shell of system()
    pre = streams(launch.lines())
    want = streams(ref)
    for k in range(2):
        r = h.restart(manifest, name=f"restart{k}")
        assert r.wait(60) == 0, h.diag()
        post = streams(r.lines())
        for how in want:
            assert pre[how] + post[how] == want[how], (how, pre[how], post[how])
        assert r.lines()[-3:] == ref[-3:], r.lines()
        h.assert_no_job_processes()


def test_output_file_in_dev_shm_is_an_ordinary_file(h):
    """A file under /dev/shm opened with open(2) (here the program's stdout,
    redirected by a shell) is reopened and put back like any file, not
    recreated as a shared memory object: it holds every line once."""
    out = pathlib.Path(f"/dev/shm/stasis-e2e-{h.port}.out")
    out.unlink(missing_ok=True)
    try:
        launch = h.launch(["/bin/sh", "-c", f'exec "$0" 30 0.05 > {out}', h.wl("count")[0]])
        wait_until(lambda: out.exists() and len(out.read_text().split()) >= 5, 30, "5 lines",
                   h.diag, alive=launch.running)
        h.checkpoint(kill=True)
        assert launch.wait(30) == 0, h.diag()
        r = h.restart(h.ckpt)
        assert r.wait(60) == 0, h.diag()
        assert r.text() == "", "the program's output goes to its file, not the restart's stdout"
        assert out.read_text().split() == [str(i) for i in range(1, 31)]
    finally:
        out.unlink(missing_ok=True)
