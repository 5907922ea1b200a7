"""Jobs on terminals (src/state/tty.h, src/state/files.h).

A job launched on a pseudo-terminal is checkpointed, killed and restarted
on a *new* pseudo-terminal, or with no terminal at all; a job launched
without a terminal is restarted on one.  The workload
(tests/workloads/ttyecho.c) reads lines from its terminal and answers each
with a counter; its answers across launch and restart are compared with an
uninterrupted run on a terminal fed the same lines.  Programs that turned
echo off or switched to raw mode find the new terminal set the same way; a
program whose window size changed gets SIGWINCH; an interactive bash that
runs a command in the foreground gets the new terminal's foreground back for
that command, then for itself.

Terminals are created by the test (os.openpty); the command that runs on one
is a session leader with it as controlling terminal (setsid + TIOCSCTTY), as
a login shell, `script` or tmux would make it.  One case runs under
`script -qfec` itself.
"""

import fcntl
import os
import pathlib
import re
import struct
import subprocess
import termios
import threading
import time
import weakref

import pytest

from conftest import (NOBODY_GID, NOBODY_UID, Proc, assert_concatenation, both_users,
                      wait_until)

ANSWER = re.compile(r"^\d+: ")


class PtyProc(Proc):
    """A command running on a new pseudo-terminal of ROWS x COLS, as its
    session leader with the terminal as controlling terminal.  Everything the
    terminal shows (program output and the terminal's echo of typed input) is
    appended to <dir>/<name>.out; lines() drops the carriage returns."""

    def __init__(self, h, argv, name, rows=24, cols=80, env_extra=None):
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        if h.user == "nobody":
            os.fchown(slave, NOBODY_UID, NOBODY_GID)  # a login gives the user its terminal
        out = h.dir / f"{name}.out"
        err = h.dir / f"{name}.err"
        err.touch()
        wargv, env = h.wrap(argv, env_extra)
        # setsid --ctty: setsid(2), then TIOCSCTTY on stdin (util-linux);
        # it does not fork, as the child is no group leader, so the pid is
        # the new session's and process group's.
        popen = subprocess.Popen(["setsid", "--ctty"] + wargv, stdin=slave, stdout=slave,
                                 stderr=slave, env=env, cwd=h.dir, close_fds=True)
        os.close(slave)
        super().__init__(h, name, [str(a) for a in argv], out, err, popen)
        self.master = master
        weakref.finalize(self, os.close, master)
        self._reader = threading.Thread(target=self._read_terminal, daemon=True)
        self._reader.start()
        h.procs.append(self)

    def _read_terminal(self):
        with open(self.out, "ab") as f:
            while True:
                try:
                    data = os.read(self.master, 4096)
                except OSError:  # EIO: every slave descriptor is closed
                    break
                if not data:
                    break
                f.write(data)
                f.flush()
        # The master stays open (closed when this object goes): the terminal's
        # settings can still be read after every process on it has exited.

    def running(self):
        # Until the terminal's last output has been read, too.
        return self.popen.poll() is None or self._reader.is_alive()

    def lines(self):
        return [l.replace("\r", "") for l in super().lines()]

    def answers(self):
        return [l for l in self.lines() if ANSWER.match(l)]

    def type(self, line, end="\n"):
        os.write(self.master, (line + end).encode())

    def attrs(self):
        """The terminal's termios, as tcgetattr(3) list (the master reports
        the slave's settings)."""
        return termios.tcgetattr(self.master)


def on_pty(h, argv, name, **kw):
    return PtyProc(h, argv, name, **kw)


def launch_on_pty(h, program_argv, name="launch", **kw):
    argv = [h.stasis_bin, "launch", "--coord-port", str(h.port), "-c", str(h.ckpt)]
    return on_pty(h, argv + list(program_argv), name, **kw)


def restart_on_pty(h, name="restart", **kw):
    return on_pty(h, [h.stasis_bin, "restart", str(h.ckpt)], name, **kw)


def converse(p, lines, end="\n", first=1):
    """Types each line and waits for its numbered answer."""
    for i, text in enumerate(lines, start=first):
        p.type(text, end)
        p.wait_match(rf"^{i}: {re.escape(text)}")


def reference_answers(h, mode, lines, end="\n"):
    """Answers of an uninterrupted run of ttyecho on a terminal (no Stasis)."""
    ref = on_pty(h, h.wl("ttyecho", mode), f"reference-{mode}")
    ref.wait_line(f"ready {mode}")
    converse(ref, lines, end)
    assert ref.wait(30) == 0, h.diag()
    return ref.answers()


def normalize_mode(answers):
    """'N: mode tty=... echo=...' -> 'N: mode', 'N: size RxC' -> 'N: size': the
    terminal's details differ between runs by design (checked separately)."""
    return [re.sub(r"^(\d+: (mode|size)).*", r"\1", a) for a in answers]


def checkpoint_and_kill(h, launch):
    h.checkpoint(kill=True)
    assert launch.wait(30) == 0, h.diag()


@both_users
def test_line_echo_restarts_on_new_terminal(h):
    """Launched on one terminal, restarted on a new, larger one: the
    counter continues, the program is in the new terminal's foreground and
    gets SIGWINCH for the new size."""
    before, after = ["alpha", "beta", "gamma"], ["delta", "mode", "size", "quit"]
    ref = reference_answers(h, "cooked", before + after)
    launch = launch_on_pty(h, h.wl("ttyecho", "cooked"))
    launch.wait_line("ready cooked")
    converse(launch, before)
    checkpoint_and_kill(h, launch)

    r = restart_on_pty(h, rows=30, cols=100)
    converse(r, after, first=len(before) + 1)
    assert r.wait(60) == 0, h.diag()
    assert_concatenation([normalize_mode(launch.answers()), normalize_mode(r.answers())], normalize_mode(ref))
    assert "5: mode tty=yes echo=on icanon=on fg=yes" in r.answers(), h.diag()
    assert "6: size 30x100" in r.answers(), h.diag()
    assert "winch 30x100" in r.lines(), f"no SIGWINCH after the size changed\n{h.diag()}"
    assert "warning" not in r.text(), h.diag()


@both_users
def test_restart_without_terminal_then_on_another(h):
    """The same checkpoint restarted twice: first with stdin from a file and
    stdout to a file (no terminal at all), then on a new terminal of the
    checkpoint's size (no SIGWINCH)."""
    before, after = ["one", "two"], ["three", "mode", "quit"]
    ref = normalize_mode(reference_answers(h, "cooked", before + after))
    launch = launch_on_pty(h, h.wl("ttyecho", "cooked"))
    launch.wait_line("ready cooked")
    converse(launch, before)
    checkpoint_and_kill(h, launch)

    script = h.path("input.txt")
    script.write_text("".join(l + "\n" for l in after))
    with open(script, "rb") as stdin:
        r1 = h.start([h.stasis_bin, "restart", h.ckpt], "restart-noterm", stdin=stdin)
    assert r1.wait(60) == 0, h.diag()
    answers1 = [l for l in r1.lines() if ANSWER.match(l)]
    assert_concatenation([normalize_mode(launch.answers()), normalize_mode(answers1)], ref)
    assert "4: mode tty=no" in answers1, h.diag()

    r2 = restart_on_pty(h, name="restart-pty")
    converse(r2, after, first=len(before) + 1)
    assert r2.wait(60) == 0, h.diag()
    assert_concatenation([normalize_mode(launch.answers()), normalize_mode(r2.answers())], ref)
    assert not any(l.startswith("winch") for l in r2.lines()), \
        f"SIGWINCH although the size did not change\n{h.diag()}"


@both_users
@pytest.mark.parametrize("mode", ["noecho", "raw"])
def test_terminal_settings_restored(h, mode):
    """A program that turned echo off (or switched to raw mode) finds the
    new terminal set the same way before it reads again: typed text is not
    echoed, and its own tcgetattr agrees."""
    end = "\r" if mode == "raw" else "\n"
    before, after = ["first", "mode"], ["secret", "mode", "quit"]
    ref = normalize_mode(reference_answers(h, mode, before + after, end))
    launch = launch_on_pty(h, h.wl("ttyecho", mode))
    launch.wait_line(f"ready {mode}")
    converse(launch, before, end)
    checkpoint_and_kill(h, launch)

    r = restart_on_pty(h)
    assert r.attrs()[3] & termios.ECHO, "a new terminal starts with echo on"
    wait_until(lambda: not (r.attrs()[3] & termios.ECHO), 60,
               "echo turned off on the new terminal", h.diag, alive=r.running)
    lflag = r.attrs()[3]
    assert bool(lflag & termios.ICANON) == (mode != "raw"), h.diag()
    converse(r, after, end, first=len(before) + 1)
    assert r.wait(60) == 0, h.diag()
    assert_concatenation([normalize_mode(launch.answers()), normalize_mode(r.answers())], ref)
    icanon = "off" if mode == "raw" else "on"
    assert f"4: mode tty=yes echo=off icanon={icanon} fg=yes" in r.answers(), h.diag()
    assert "secret" not in r.lines(), f"typed text was echoed\n{h.diag()}"


@both_users
def test_background_job_without_terminal(h, reference):
    """A job launched without any terminal (own session, stdin /dev/null,
    output to a file), restarted once in the background without a terminal
    and once on a terminal: the output continues either way."""
    progress = h.path("progress")
    argv = h.wl("count", 12, 0.2, progress)
    ref = reference(h.wl("count", 12, 0))
    launch = h.launch(argv)
    launch.wait_line("3")
    checkpoint_and_kill(h, launch)

    r1 = h.restart(h.ckpt, name="restart-bg")
    assert r1.wait(60) == 0, h.diag()
    assert_concatenation([launch.lines(), r1.lines()], ref)

    r2 = restart_on_pty(h, name="restart-pty")
    assert r2.wait(60) == 0, h.diag()
    assert_concatenation([launch.lines(), r2.lines()], ref)


@both_users
def test_interactive_bash_and_its_foreground_command(h):
    """`bash -i` on a terminal runs ttyecho in the foreground (its own
    process group, given the terminal by bash).  After the restart on a new
    terminal ttyecho still has the foreground (no SIGTTIN stop), and when it
    exits bash takes the terminal back and goes on with its variables."""
    env = {"PS1": "$ ", "HISTFILE": "/dev/null", "TERM": "dumb"}
    launch = launch_on_pty(h, ["/bin/bash", "--norc", "--noprofile", "-i"], env_extra=env)
    launch.type("n=41; echo \"n is $n\"")
    launch.wait_line("n is 41")
    launch.type(" ".join(h.wl("ttyecho", "noecho")))
    launch.wait_line("ready noecho")
    converse(launch, ["before"])
    checkpoint_and_kill(h, launch)

    r = restart_on_pty(h, rows=40, cols=132, env_extra=env)
    converse(r, ["mode", "quit"], first=2)
    assert "2: mode tty=yes echo=off icanon=on fg=yes" in r.answers(), h.diag()
    assert "winch 40x132" in r.lines(), h.diag()
    # ttyecho left echo off, as it does without Stasis: bash's line editor
    # then does not echo either, so the answer follows the prompt.
    r.type("n=$((n+1)); echo \"n is $n\"")
    r.wait_match(r"n is 42$")
    r.type("exit 7")
    assert r.wait(60) == 7, h.diag()
    assert not any("Stopped" in l for l in r.lines()), h.diag()


def test_under_script(h):
    """Launched and restarted under `script -qfec` (util-linux), which makes
    the pseudo-terminal; input comes through script's stdin."""
    before, after = ["uno", "dos"], ["tres", "quit"]
    ref = reference_answers(h, "cooked", before + after)

    def under_script(argv, name):
        read_end, write_end = os.pipe()
        cmd = " ".join(str(a) for a in argv)
        p = h.start(["script", "-qfec", cmd, "/dev/null"], name, stdin=read_end)
        os.close(read_end)
        return p, write_end

    launch, to_launch = under_script(
        [h.stasis_bin, "launch", "--coord-port", h.port, "-c", h.ckpt] + h.wl("ttyecho"), "launch")
    launch.wait_match(r"ready cooked")
    for i, text in enumerate(before, start=1):
        os.write(to_launch, (text + "\n").encode())
        launch.wait_match(rf"^{i}: {text}")
    h.checkpoint(kill=True)
    assert launch.wait(30) == 0, h.diag()
    os.close(to_launch)

    r, to_restart = under_script([h.stasis_bin, "restart", h.ckpt], "restart")
    for i, text in enumerate(after, start=len(before) + 1):
        os.write(to_restart, (text + "\n").encode())
        r.wait_match(rf"^{i}: {text}")
    assert r.wait(60) == 0, h.diag()
    os.close(to_restart)

    def answers(p):
        return [l.replace("\r", "") for l in p.lines() if ANSWER.match(l.replace("\r", ""))]
    assert_concatenation([answers(launch), answers(r)], ref)


def test_restart_in_background_leaves_terminal_alone(h):
    """`stasis restart &` under a job-control shell: the restart runs in the
    background of its terminal, so the job must not change the terminal's
    settings (a warning says why), as a background job may not."""
    launch = launch_on_pty(h, h.wl("ttyecho", "noecho"))
    launch.wait_line("ready noecho")
    converse(launch, ["first"])
    checkpoint_and_kill(h, launch)

    # set -m: the background command gets its own process group, and the
    # shell (the session leader) keeps the terminal's foreground.
    shell = on_pty(h, ["/bin/sh", "-c", f"set -m; {h.stasis_bin} restart {h.ckpt} & wait"],
                   "restart-bg")
    shell.wait_match(r"settings .* are not applied: `stasis restart` runs in the background")
    assert shell.attrs()[3] & termios.ECHO, f"echo was turned off from the background\n{h.diag()}"


@both_users
def test_terminal_opened_as_dev_tty(h):
    """A program that reads /dev/tty (stdin is /dev/null), as password
    prompts do: the descriptor is not stdio, so it is reopened as /dev/tty
    of the restart -- the new terminal -- with the program's settings."""
    before, after = ["user", "mode"], ["hunter2", "mode", "quit"]
    ref = normalize_mode(reference_answers(h, "noecho", before + after))
    program = " ".join(h.wl("ttyecho", "noecho", "devtty"))
    launch = launch_on_pty(h, ["/bin/sh", "-c", f"exec {program} < /dev/null"])
    launch.wait_line("ready noecho")
    converse(launch, before)
    checkpoint_and_kill(h, launch)

    r = restart_on_pty(h)
    wait_until(lambda: not (r.attrs()[3] & termios.ECHO), 60,
               "echo turned off on the new terminal", h.diag, alive=r.running)
    converse(r, after, first=len(before) + 1)
    assert r.wait(60) == 0, h.diag()
    assert_concatenation([normalize_mode(launch.answers()), normalize_mode(r.answers())], ref)
    assert "4: mode tty=yes echo=off icanon=on fg=yes" in r.answers(), h.diag()
    assert "hunter2" not in r.lines(), f"typed text was echoed\n{h.diag()}"


def test_ctrl_c_reaches_restarted_job(h):
    """^C on the new terminal interrupts the restarted program: it is in
    the terminal's foreground process group."""
    launch = launch_on_pty(h, h.wl("ttyecho", "cooked"))
    launch.wait_line("ready cooked")
    converse(launch, ["a"])
    checkpoint_and_kill(h, launch)
    r = restart_on_pty(h)
    converse(r, ["b"], first=2)
    r.type("\x03", end="")
    assert r.wait(60) == 128 + 2, h.diag()


def test_under_tmux(h):
    """Launched in one tmux session and restarted in another (tmux makes the
    pseudo-terminals; keys go in with send-keys, the screen comes out with
    capture-pane)."""
    sock = f"stasis-{h.port}"
    tmux = ["tmux", "-L", sock, "-f", "/dev/null"]
    env = {"TERM": "screen"}

    def screen(target):
        r = h.run(tmux + ["capture-pane", "-p", "-t", target], env_extra=env)
        return r.stdout.split("\n")

    def wait_screen(target, line):
        wait_until(lambda: line in screen(target), 30, f"{line!r} on the tmux screen of {target}",
                   h.diag)

    def start(session, argv):
        cmd = " ".join(str(a) for a in argv) + f"; echo exit=$?; sleep 600"
        r = h.run(tmux + ["new-session", "-d", "-s", session, "-x", "90", "-y", "20", cmd],
                  env_extra=env)
        assert r.returncode == 0, h.diag()

    def send(session, text):
        assert h.run(tmux + ["send-keys", "-t", session, "-l", text], env_extra=env).returncode == 0
        assert h.run(tmux + ["send-keys", "-t", session, "Enter"], env_extra=env).returncode == 0

    try:
        start("one", [h.stasis_bin, "launch", "--coord-port", h.port, "-c", h.ckpt]
              + h.wl("ttyecho", "noecho"))
        wait_screen("one", "ready noecho")
        send("one", "first")
        wait_screen("one", "1: first")
        h.checkpoint(kill=True)
        wait_screen("one", "exit=0")

        start("two", [h.stasis_bin, "restart", h.ckpt])
        pane_tty = h.run(tmux + ["display-message", "-p", "-t", "two", "#{pane_tty}"],
                         env_extra=env).stdout.strip()
        fd = os.open(pane_tty, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            wait_until(lambda: not (termios.tcgetattr(fd)[3] & termios.ECHO), 60,
                       f"echo turned off on {pane_tty}", h.diag)
        finally:
            os.close(fd)
        send("two", "mode")
        wait_screen("two", "2: mode tty=yes echo=off icanon=on fg=yes")
        send("two", "size")
        wait_screen("two", "3: size 20x90")
        send("two", "quit")
        wait_screen("two", "exit=0")
        assert "mode" not in screen("two"), f"typed text was echoed\n{h.diag()}"
    finally:
        h.run(tmux + ["kill-server"], env_extra=env)


def test_stopped_job_fails_checkpoint_clearly(h):
    """A job stopped with ^Z (or by SIGTTIN as a background reader) cannot
    run the checkpoint handler: the checkpoint fails at once, naming the
    process, and the job is untouched; after `fg` it checkpoints and
    restarts normally."""
    env = {"PS1": "$ ", "HISTFILE": "/dev/null", "TERM": "dumb"}
    launch = launch_on_pty(h, ["/bin/bash", "--norc", "--noprofile", "-i"], env_extra=env)
    launch.type(" ".join(h.wl("ttyecho", "cooked")))
    launch.wait_line("ready cooked")
    converse(launch, ["a"])
    launch.type("\x1a", end="")  # ^Z
    launch.wait_match(r"Stopped")
    t0 = time.monotonic()
    r = h.stasis("checkpoint")
    took = time.monotonic() - t0
    assert r.returncode != 0, h.diag()
    assert re.search(r"pid \d+ \(ttyecho\) is stopped", r.stdout + r.stderr), h.diag()
    assert took < 10, f"the failure took {took:.1f} s\n{h.diag()}"
    assert not h.manifests(), h.diag()

    launch.type("fg")
    converse(launch, ["b"], first=2)
    checkpoint_and_kill(h, launch)
    restart = restart_on_pty(h, env_extra=env)
    converse(restart, ["c", "quit"], first=3)
    restart.type("exit")
    assert restart.wait(60) == 0, h.diag()
