"""Fixtures and helpers for Stasis end-to-end tests.

Every test gets a `Harness` (fixture `h`) with
  * its own coordinator port (a free TCP port; passed as --coord-port to
    `launch` and as STASIS_COORD_PORT in the environment of every command),
  * its own work directory under /tmp (world-traversable, so the tests can
    also run as user nobody) with a checkpoint directory `h.ckpt`,
  * a clean, fixed environment for the commands it runs,
  * cleanup: `stasis quit`, then SIGKILL of every process it started (by
    process group) and of every process that carries its coordinator port
    (environment or command line), then removal of the work directory.

Tests never sleep to synchronise: they poll for a condition (a line in an
output file, a manifest, a process exit) with a timeout (`wait_until`).

The build directory comes from STASIS_BUILD_DIR (ctest sets it), else
<repo>/build.  Tests parametrized with user "nobody" run every command through
`setpriv --reuid=65534 --regid=65534 --clear-groups`; they need root, and a
build directory and source tree readable by nobody (a clone under /tmp or any
other world-readable path).  Without root they are skipped; as root with an
unreadable build they are skipped with the reason, except in CI (CI=true),
where that is an error.
"""

import ctypes
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
WORKLOADS_SRC = REPO / "tests" / "workloads"
PY = "/usr/bin/python3"  # Debian's python, with numpy, usable by nobody
NOBODY_UID = 65534
NOBODY_GID = 65534
DEFAULT_TEST_TIMEOUT = 180  # seconds, per test (override: @pytest.mark.timeout(N))
SYS_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


# --------------------------------------------------------------------------
# pytest plumbing: markers, per-test timeout, failure reports for teardown
# --------------------------------------------------------------------------

def pytest_configure(config):
    config.addinivalue_line("markers", "timeout(seconds): per-test time limit (SIGALRM)")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


class TimeLimitExceeded(Exception):
    pass


@pytest.fixture(autouse=True)
def _per_test_timeout(request):
    marker = request.node.get_closest_marker("timeout")
    seconds = int(marker.args[0]) if marker else DEFAULT_TEST_TIMEOUT

    def on_alarm(signum, frame):
        raise TimeLimitExceeded(f"test exceeded its time limit of {seconds}s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# --------------------------------------------------------------------------
# generic helpers
# --------------------------------------------------------------------------

def wait_until(cond, timeout, what, diag=None, interval=0.02, alive=None):
    """Polls cond() until it returns a truthy value, which is returned.
    Fails the test after `timeout` seconds, naming `what` and adding diag(),
    or as soon as alive() (if given) is false and cond() still is."""
    deadline = time.monotonic() + timeout
    while True:
        still_alive = alive() if alive is not None else True
        v = cond()
        if v:
            return v
        if not still_alive:
            msg = f"process exited while waiting for {what}"
            if diag is not None:
                msg += "\n" + diag()
            pytest.fail(msg, pytrace=False)
        if time.monotonic() > deadline:
            msg = f"timed out after {timeout}s waiting for {what}"
            if diag is not None:
                msg += "\n" + diag()
            pytest.fail(msg, pytrace=False)
        time.sleep(interval)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_lines(path):
    try:
        data = pathlib.Path(path).read_bytes().decode(errors="replace")
    except FileNotFoundError:
        return []
    lines = data.split("\n")
    return lines[:-1]  # only complete lines


def tail(text, n=40):
    lines = text.splitlines()
    if len(lines) > n:
        lines = [f"... ({len(lines) - n} lines omitted)"] + lines[-n:]
    return "\n".join(lines)


def _proc_state(pid):
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2:].split()[0]
    except (OSError, ValueError, IndexError):
        return None


def port_processes(port, include_coordinator=True):
    """Live processes that belong to the job/coordinator using `port`: their
    environment has STASIS_COORD_PORT=<port> or their command line names the
    port (--coord-port P, -p P, --coord-port=P).  Returns [(pid, cmdline)]."""
    env_needle = f"STASIS_COORD_PORT={port}".encode()
    p = str(port).encode()
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        state = _proc_state(pid)
        if state is None or state in ("Z", "X"):
            continue
        try:
            cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        args = cmdline.split(b"\0")
        hit = False
        for i, a in enumerate(args):
            if a in (b"--coord-port", b"-p") and i + 1 < len(args) and args[i + 1] == p:
                hit = True
            if a == b"--coord-port=" + p:
                hit = True
        if not hit:
            try:
                env = pathlib.Path(f"/proc/{pid}/environ").read_bytes()
                hit = env_needle in env.split(b"\0")
            except OSError:
                pass
        if not hit:
            continue
        # The test's own setpriv/env wrappers exec away; a process still named
        # setpriv/env with the port in its argv is a wrapper: count it too.
        text = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
        if not include_coordinator and "coordinator" in text:
            continue
        found.append((pid, text))
    return found


def kill_port_processes(port, include_coordinator=True, timeout=15):
    """SIGKILLs every process of the port (see port_processes) until none is left."""
    deadline = time.monotonic() + timeout
    while True:
        procs = port_processes(port, include_coordinator)
        if not procs:
            return
        for pid, _ in procs:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes of port {port} survive SIGKILL: {procs}")
        time.sleep(0.02)


# --------------------------------------------------------------------------
# images: parse, corrupt
# --------------------------------------------------------------------------

FILE_HEADER_SIZE = 64
BLOCK_HEADER = struct.Struct("<IIQQQQQ")  # type, compression, raw, stored, payload_ck, seq, header_ck
BLOCK_PAGES = 2


def image_blocks(path):
    """[(offset_of_block_header, type, compression, raw_size, stored_size)]"""
    data = pathlib.Path(path).read_bytes()
    assert data[:8] == b"STASISIM", f"{path}: not a Stasis image (magic {data[:8]!r})"
    off = FILE_HEADER_SIZE
    blocks = []
    while off + BLOCK_HEADER.size <= len(data):
        btype, comp, raw, stored, _, _, _ = BLOCK_HEADER.unpack_from(data, off)
        blocks.append((off, btype, comp, raw, stored))
        off += BLOCK_HEADER.size + stored
        if btype == 3:
            break
    return blocks


def flip_byte_in_page_block(path):
    """Flips one byte in the middle of the payload of the largest page block."""
    pages = [b for b in image_blocks(path) if b[1] == BLOCK_PAGES and b[4] > 0]
    assert pages, f"{path}: no page block found"
    off, _, _, _, stored = max(pages, key=lambda b: b[4])
    pos = off + BLOCK_HEADER.size + stored // 2
    with open(path, "r+b") as f:
        f.seek(pos)
        b = f.read(1)
        f.seek(pos)
        f.write(bytes([b[0] ^ 0x5A]))
    return pos


def xxh3_64(data: bytes) -> int:
    lib = ctypes.CDLL("libxxhash.so.0")
    lib.XXH3_64bits.restype = ctypes.c_uint64
    lib.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    return lib.XXH3_64bits(data, len(data))


def bump_image_version(path, new_version=None):
    """Sets the header's version field (uint32 LE at offset 8) to a newer value
    and recomputes the header checksum (XXH3-64 of bytes 0..55, LE at 56), so
    only the version is wrong."""
    with open(path, "r+b") as f:
        hdr = bytearray(f.read(FILE_HEADER_SIZE))
        (version,) = struct.unpack_from("<I", hdr, 8)
        # The current header must be self-consistent, else the test is wrong.
        assert struct.unpack_from("<Q", hdr, 56)[0] == xxh3_64(bytes(hdr[:56])), \
            "header checksum of the original image does not match XXH3-64 of its first 56 bytes"
        struct.pack_into("<I", hdr, 8, new_version if new_version is not None else version + 1)
        struct.pack_into("<Q", hdr, 56, xxh3_64(bytes(hdr[:56])))
        f.seek(0)
        f.write(hdr)
    return version


# --------------------------------------------------------------------------
# build dir, users
# --------------------------------------------------------------------------

def _build_dir():
    d = os.environ.get("STASIS_BUILD_DIR")
    return pathlib.Path(d).resolve() if d else (REPO / "build")


@pytest.fixture(scope="session")
def build():
    b = _build_dir()
    missing = [p for p in ("bin/stasis", "lib/libstasis_agent.so", "workloads/count",
                           "workloads/threads") if not (b / p).exists()]
    if missing:
        pytest.fail(f"Stasis is not built in {b} (missing {', '.join(missing)}); "
                    f"build it (cmake -S . -B build -G Ninja && ninja -C build) "
                    f"or set STASIS_BUILD_DIR", pytrace=False)
    return b


def _nobody_prefix():
    return ["setpriv", f"--reuid={NOBODY_UID}", f"--regid={NOBODY_GID}", "--clear-groups",
            "--reset-env"]


_nobody_checked = {}


def require_nobody(build):
    """Skips (or, in CI, fails) unless commands can run as nobody."""
    if "result" not in _nobody_checked:
        reason = None
        if os.geteuid() != 0:
            reason = "running as user nobody needs root (setpriv)"
        elif shutil.which("setpriv") is None:
            reason = "setpriv (util-linux) is not installed"
        else:
            checks = [f"-x {build}/bin/stasis", f"-r {build}/lib/libstasis_agent.so",
                      f"-x {build}/workloads/count", f"-x {build}/workloads/threads",
                      f"-r {WORKLOADS_SRC}/count.py", f"-r {WORKLOADS_SRC}/matmul.py"]
            script = " && ".join(f"test {c}" for c in checks)
            r = subprocess.run(_nobody_prefix() + ["/bin/sh", "-c", script],
                               capture_output=True, timeout=30)
            if r.returncode != 0:
                reason = (f"user nobody cannot read/execute the build dir {build} or the source "
                          f"tree {REPO}: put the repository and build directory in a "
                          f"world-readable path (e.g. a clone under /tmp)")
        _nobody_checked["result"] = reason
    reason = _nobody_checked["result"]
    if reason:
        if IN_CI and os.geteuid() == 0:
            pytest.fail("CI: " + reason, pytrace=False)
        pytest.skip(reason)


@pytest.fixture
def user(request, build):
    """'self' (the user running pytest) or 'nobody'; parametrize indirectly."""
    u = getattr(request, "param", "self")
    if u == "nobody":
        require_nobody(build)
    return u


@pytest.fixture
def unpriv(build):
    """A user for whom file permissions apply: nobody when running as root."""
    if os.geteuid() == 0:
        require_nobody(build)
        return "nobody"
    return "self"


both_users = pytest.mark.parametrize("user", ["self", "nobody"], indirect=True)


# --------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------

class Proc:
    """A command started in the background, stdout/stderr to files, in its own
    session/process group."""

    def __init__(self, harness, name, argv, out, err, popen):
        self.h = harness
        self.name = name
        self.argv = argv
        self.out = out
        self.err = err
        self.popen = popen

    @property
    def pid(self):
        return self.popen.pid

    def text(self):
        try:
            return self.out.read_bytes().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def lines(self):
        return read_lines(self.out)

    def err_text(self):
        try:
            return self.err.read_bytes().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def running(self):
        return self.popen.poll() is None

    def wait_line(self, line, timeout=30):
        """Waits for an exact complete line in stdout; returns the lines."""
        return wait_until(lambda: (line in self.lines()) and self.lines(), timeout,
                          f"line {line!r} in stdout of {self.name}", self.h.diag,
                          alive=self.running)

    def wait_match(self, regex, timeout=30):
        """Waits for a complete stdout line matching regex; returns the match."""
        rx = re.compile(regex)

        def find():
            for l in self.lines():
                m = rx.search(l)
                if m:
                    return m
            return None
        return wait_until(find, timeout, f"a line matching {regex!r} in stdout of {self.name}",
                          self.h.diag, alive=self.running)

    def wait_nlines(self, n, timeout=30):
        return wait_until(lambda: len(self.lines()) >= n and self.lines(), timeout,
                          f"{n} lines in stdout of {self.name}", self.h.diag, alive=self.running)

    def wait(self, timeout=60):
        """Waits for exit; returns the exit code (negative = signal)."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.name} did not exit within {timeout}s\n{self.h.diag()}",
                        pytrace=False)

    def kill_group(self):
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


class Harness:
    def __init__(self, build, user, request):
        self.build = build
        self.user = user
        self.port = free_port()
        self.request = request
        self.procs = []
        self.commands = []  # (argv, rc, stdout, stderr) of foreground commands
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="stasis-e2e-", dir="/tmp"))
        os.chmod(self.dir, 0o755)
        self.ckpt = self.dir / "ckpt"
        self.ckpt.mkdir()
        self.tmp = self.dir / "tmp"  # TMPDIR of the commands
        self.tmp.mkdir()
        if user == "nobody":
            for d in (self.dir, self.ckpt, self.tmp):
                os.chown(d, NOBODY_UID, NOBODY_GID)
        self.stasis_bin = str(build / "bin" / "stasis")
        self.extra_env = {}

    # -- environment and argv ------------------------------------------------

    def env(self, extra=None):
        env = {
            "PATH": SYS_PATH,
            "HOME": "/tmp" if self.user == "nobody" else os.environ.get("HOME", "/tmp"),
            "TMPDIR": str(self.tmp),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "STASIS_COORD_PORT": str(self.port),
            "OPENBLAS_NUM_THREADS": "2",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        if self.user == "nobody":
            env["USER"] = env["LOGNAME"] = "nobody"
        env.update(self.extra_env)
        env.update(extra or {})
        return env

    def wrap(self, argv, env_extra=None):
        """Returns (argv, env) to run argv as this harness's user."""
        env = self.env(env_extra)
        argv = [str(a) for a in argv]
        if self.user == "nobody":
            return (_nobody_prefix() + ["/usr/bin/env", "-i"]
                    + [f"{k}={v}" for k, v in env.items()] + argv), None
        return argv, env

    def wl(self, name, *args):
        """argv of a workload: tests/workloads/<name>.py or <build>/workloads/<name>."""
        if name.endswith(".py"):
            return [PY, str(WORKLOADS_SRC / name)] + [str(a) for a in args]
        return [str(self.build / "workloads" / name)] + [str(a) for a in args]

    def path(self, name):
        return self.dir / name

    def own(self, path):
        """Gives a file/dir created by the test to the harness's user."""
        if self.user == "nobody":
            os.chown(path, NOBODY_UID, NOBODY_GID)
        return path

    # -- running -----------------------------------------------------------

    def start(self, argv, name, env_extra=None, stdin=None):
        """Starts argv in the background (own process group); stdout to
        <dir>/<name>.out, stderr to <dir>/<name>.err."""
        out = self.dir / f"{name}.out"
        err = self.dir / f"{name}.err"
        wargv, env = self.wrap(argv, env_extra)
        with open(out, "wb") as fo, open(err, "wb") as fe:
            popen = subprocess.Popen(wargv, stdout=fo, stderr=fe,
                                     stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                     env=env, start_new_session=True, cwd=self.dir)
        p = Proc(self, name, [str(a) for a in argv], out, err, popen)
        self.procs.append(p)
        return p

    def run(self, argv, timeout=120, env_extra=None):
        """Runs argv in the foreground; returns CompletedProcess (text)."""
        wargv, env = self.wrap(argv, env_extra)
        try:
            r = subprocess.run(wargv, capture_output=True, env=env, timeout=timeout,
                               cwd=self.dir, stdin=subprocess.DEVNULL, start_new_session=True)
        except subprocess.TimeoutExpired as e:
            self.commands.append((argv, "timeout", e.stdout, e.stderr))
            pytest.fail(f"command timed out after {timeout}s: {' '.join(map(str, argv))}\n"
                        f"{self.diag()}", pytrace=False)
        r = subprocess.CompletedProcess(r.args, r.returncode, r.stdout.decode(errors="replace"),
                                        r.stderr.decode(errors="replace"))
        self.commands.append(([str(a) for a in argv], r.returncode, r.stdout, r.stderr))
        return r

    def stasis(self, *args, timeout=120, env_extra=None):
        return self.run([self.stasis_bin] + [str(a) for a in args], timeout=timeout,
                        env_extra=env_extra)

    def launch(self, program_argv, *opts, name="launch", ckptdir=None, env_extra=None):
        """`stasis launch --coord-port P -c CKPT OPTS... PROGRAM...` in the background."""
        argv = ([self.stasis_bin, "launch", "--coord-port", str(self.port),
                 "-c", str(ckptdir or self.ckpt)] + [str(o) for o in opts] + list(program_argv))
        return self.start(argv, name, env_extra)

    def restart(self, *paths_and_opts, name="restart", env_extra=None):
        argv = [self.stasis_bin, "restart"] + [str(a) for a in paths_and_opts]
        return self.start(argv, name, env_extra)

    def checkpoint(self, kill=False, timeout=120):
        """`stasis checkpoint [--kill]`; asserts success; returns (generation, manifest)."""
        args = ["checkpoint"] + (["--kill"] if kill else [])
        r = self.stasis(*args, timeout=timeout)
        assert r.returncode == 0, (f"stasis checkpoint failed (rc {r.returncode})\n"
                                   f"stdout: {r.stdout}\nstderr: {r.stderr}\n{self.diag()}")
        m = re.search(r"checkpoint (\d+) complete: (\S+)", r.stdout + r.stderr)
        assert m, f"no 'checkpoint N complete: <manifest>' in output: {r.stdout!r} {r.stderr!r}"
        gen, manifest = int(m.group(1)), m.group(2)
        assert os.path.isfile(manifest), f"reported manifest {manifest} does not exist"
        return gen, manifest

    # -- checkpoint directory ----------------------------------------------

    def manifests(self, d=None):
        """{generation: path} of the manifests in the checkpoint dir."""
        res = {}
        for p in pathlib.Path(d or self.ckpt).glob("stasis_manifest_*.json"):
            m = re.fullmatch(r"stasis_manifest_(\d+)\.json", p.name)
            if m:
                res[int(m.group(1))] = p
        return res

    def images(self, d=None):
        return sorted(pathlib.Path(d or self.ckpt).glob("ckpt_*.stasis"))

    def manifest_images(self, manifest):
        m = json.loads(pathlib.Path(manifest).read_text())
        return [pathlib.Path(manifest).parent / p["image"] for p in m["processes"]]

    # -- jobs ----------------------------------------------------------------

    def job_processes(self):
        """Processes of this test's job other than the coordinator."""
        return port_processes(self.port, include_coordinator=False)

    def kill_all(self):
        """kill -9 of everything: launch/restart process groups, the job, the
        coordinator (as a node crash would)."""
        for p in self.procs:
            if p.running():
                try:
                    os.killpg(p.popen.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        kill_port_processes(self.port)
        for p in self.procs:
            try:
                p.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def assert_no_job_processes(self, timeout=5):
        """After a failed command: no process of the job remains (allows a
        coordinator to linger; it exits on its own)."""
        deadline = time.monotonic() + timeout
        while True:
            procs = self.job_processes()
            if not procs:
                return
            if time.monotonic() > deadline:
                pytest.fail(f"processes still running: {procs}\n{self.diag()}", pytrace=False)
            time.sleep(0.05)

    # -- diagnostics, cleanup -----------------------------------------------

    def diag(self):
        parts = [f"--- harness: user={self.user} port={self.port} dir={self.dir}"]
        try:
            parts.append("ckpt dir: " + " ".join(sorted(p.name for p in self.ckpt.iterdir())))
        except OSError as e:
            parts.append(f"ckpt dir: {e}")
        for p in self.procs:
            rc = p.popen.poll()
            parts.append(f"--- {p.name} (pid {p.pid}, rc {rc}): {' '.join(p.argv)}")
            parts.append("stdout:\n" + tail(p.text()))
            parts.append("stderr:\n" + tail(p.err_text()))
        for argv, rc, out, err in self.commands[-8:]:
            parts.append(f"--- ran (rc {rc}): {' '.join(map(str, argv))}")
            if out:
                parts.append("stdout:\n" + tail(str(out), 20))
            if err:
                parts.append("stderr:\n" + tail(str(err), 20))
        procs = port_processes(self.port)
        parts.append(f"--- live processes of port {self.port}: {procs}")
        return "\n".join(parts)

    def cleanup(self):
        try:
            argv, env = self.wrap([self.stasis_bin, "quit"])
            subprocess.run(argv, env=env, capture_output=True, timeout=10,
                           stdin=subprocess.DEVNULL)
        except (subprocess.TimeoutExpired, OSError):
            pass
        for p in self.procs:
            if p.running():
                p.kill_group()
        kill_port_processes(self.port)
        for p in self.procs:
            try:
                p.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for root, dirs, _ in os.walk(self.dir):
            for d in dirs:
                try:
                    os.chmod(os.path.join(root, d), 0o755)
                except OSError:
                    pass
        if os.environ.get("STASIS_E2E_KEEP"):
            print(f"keeping {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def h(build, user, request):
    harness = Harness(build, user, request)
    yield harness
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(harness.diag())
    harness.cleanup()


# --------------------------------------------------------------------------
# reference (uninterrupted) runs and comparisons
# --------------------------------------------------------------------------

_reference_cache = {}


@pytest.fixture(scope="session")
def reference(build):
    """reference(argv) -> stdout lines of an uninterrupted run of argv (no
    Stasis), cached per session.  Pass delay 0 where the output does not
    depend on it."""
    def run(argv, timeout=300):
        key = tuple(str(a) for a in argv)
        if key not in _reference_cache:
            env = {"PATH": SYS_PATH, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
                   "OPENBLAS_NUM_THREADS": "2", "PYTHONDONTWRITEBYTECODE": "1",
                   "HOME": "/tmp", "TMPDIR": "/tmp"}
            r = subprocess.run(list(key), capture_output=True, env=env, timeout=timeout,
                               stdin=subprocess.DEVNULL)
            assert r.returncode == 0, f"reference run failed: {key}: {r.stderr!r}"
            _reference_cache[key] = r.stdout.decode().split("\n")[:-1]
        return list(_reference_cache[key])
    return run


def assert_concatenation(parts, ref, what="output"):
    """The outputs in `parts` (lists of lines), concatenated, equal ref."""
    got = [l for part in parts for l in part]
    if got != ref:
        sizes = [len(p) for p in parts]
        first = next((i for i, (a, b) in enumerate(zip(got, ref)) if a != b), min(len(got), len(ref)))
        pytest.fail(f"concatenated {what} differs from the uninterrupted run "
                    f"(parts of {sizes} lines, expected {len(ref)} lines; first difference at "
                    f"line {first + 1}: got {got[first:first + 3]!r}, expected "
                    f"{ref[first:first + 3]!r})\nparts: {parts!r}", pytrace=False)


def assert_suffix(post, ref, what="restart output"):
    """post is ref[k:] for some k (a contiguous continuation to the end);
    returns k."""
    if not post:
        pytest.fail(f"{what} is empty", pytrace=False)
    candidates = [k for k in range(len(ref)) if ref[k] == post[0]]
    for k in candidates:
        if ref[k:] == post:
            return k
    pytest.fail(f"{what} is not a continuation of the uninterrupted run to its end:\n"
                f"got {post!r}\nreference {ref!r}", pytrace=False)
