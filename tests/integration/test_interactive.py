"""Interactive stdio end to end: `run -it/-i`, `attach` with detach keys, resize, `exec`, signal proxy.

The CLI runs under a real pseudo-terminal (os.openpty) where a TTY matters; every wait is bounded and
every process started here is killed on the way out.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import subprocess
import termios
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO, Engine
from teu.client import Client, ContainerOptions
from teu.errors import InvalidArgument, NotFound
from teu.testing import wait_until
from teu_api.types.v1 import types_pb2

TEU = str(REPO / ".venv" / "bin" / "teu")
RUNNING = types_pb2.CONTAINER_STATE_RUNNING
PROMPT = b"# "
CTRL_P, CTRL_Q = b"\x10", b"\x11"
TIMEOUT = 30


class Terminal:
    """The CLI with a pseudo-terminal as stdin, stdout and stderr, driven from the master side."""

    def __init__(self, engine: Engine, *args: str, rows: int = 24, cols: int = 80) -> None:
        self.master, self.slave = os.openpty()
        self.set_size(rows, cols)
        self.cooked = termios.tcgetattr(self.slave)
        self.proc = subprocess.Popen([TEU, *args], stdin=self.slave, stdout=self.slave, stderr=self.slave,
                                     env=engine.env(), start_new_session=True)  # fmt: skip
        self.seen = b""

    def set_size(self, rows: int, cols: int) -> None:
        """Sets the terminal's size from the master side (as a terminal emulator does)."""
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def resize(self, rows: int, cols: int) -> None:
        """Resizes, then sends the SIGWINCH the kernel would send to a foreground CLI."""
        self.set_size(rows, cols)
        self.proc.send_signal(signal.SIGWINCH)

    def read(self, timeout: float) -> bytes:
        """What the CLI wrote within ``timeout`` seconds (b"" if nothing)."""
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return b""
        data = os.read(self.master, 65536)
        self.seen += data
        return data

    def expect(self, wanted: bytes, timeout: float = TIMEOUT) -> None:
        """Reads until ``wanted`` appears after what earlier expects consumed."""
        deadline = time.monotonic() + timeout
        while wanted not in self.seen:
            if time.monotonic() > deadline or (self.proc.poll() is not None and not self.read(0.2)):
                raise AssertionError(f"{wanted!r} not seen; output: {self.seen!r}")
            self.read(0.2)
        self.seen = self.seen[self.seen.index(wanted) + len(wanted) :]

    def type(self, keys: bytes) -> None:
        """Types ``keys`` as a user would."""
        os.write(self.master, keys)

    def wait(self, timeout: float = TIMEOUT) -> int:
        """The CLI's exit code, reading its output meanwhile so it never blocks on a full terminal."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"the CLI did not exit; output: {self.seen!r}")
            self.read(0.1)
        return self.proc.returncode

    def is_raw(self) -> bool:
        """Whether the terminal has echo and line editing off."""
        return not termios.tcgetattr(self.slave)[3] & (termios.ECHO | termios.ICANON)

    def restored(self) -> bool:
        """Whether the terminal's modes are back to what they were before the CLI ran."""
        return termios.tcgetattr(self.slave) == self.cooked

    def close(self) -> None:
        """Kills the CLI if it still runs and closes the terminal."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=TIMEOUT)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture()
def terminals() -> Iterator[list[Terminal]]:
    """Terminals a test opens, all closed (their CLIs killed) afterwards."""
    opened: list[Terminal] = []
    yield opened
    for t in opened:
        t.close()


def term(terminals: list[Terminal], engine: Engine, *args: str, **size: int) -> Terminal:
    """Starts ``teu args`` under a new terminal that the fixture cleans up."""
    t = Terminal(engine, *args, **size)
    terminals.append(t)
    return t


def teu(engine: Engine, *args: str, input: bytes | None = None, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[bytes]:
    """Runs the CLI with pipes; bounded."""
    return subprocess.run([TEU, *args], input=input, capture_output=True, env=engine.env(), timeout=timeout)


def unique(prefix: str) -> str:
    """A container name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def gone(client: Client, name: str, timeout: float = 10) -> bool:
    """Whether container ``name`` disappears within ``timeout`` seconds (--rm is done by the engine)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client.inspect(name)
        except NotFound:
            return True
        time.sleep(0.1)
    return False


@pytest.fixture()
def worker(client: Client) -> Iterator[str]:
    """A running busybox to exec into (its name), removed afterwards."""
    name = unique("w")
    client.run_detached(ContainerOptions(image="busybox", cmd=["sleep", "600"], name=name))
    yield name
    client.remove(name, force=True)


def test_run_it_shell_prompt_echo_exit_code_rm(engine: Engine, client: Client, terminals: list[Terminal]) -> None:
    """`run -it --rm busybox sh`: a prompt, typed input echoes, `exit 5` exits 5, terminal restored, container gone."""
    name = unique("it")
    t = term(terminals, engine, "run", "-it", "--rm", "--name", name, "busybox", "sh")
    t.expect(PROMPT)
    assert t.is_raw()
    t.type(b"echo hi\r")
    t.expect(b"echo hi\r\n")  # the container's terminal echoes what was typed
    t.expect(b"hi\r\n")
    t.expect(PROMPT)
    t.type(b"exit 5\r")
    assert t.wait() == 5
    assert t.restored()
    assert gone(client, name)


def test_run_it_ctrl_c_and_ctrl_backslash_are_keys(engine: Engine, terminals: list[Terminal]) -> None:
    """In raw mode Ctrl-C and Ctrl-\\ go to the container's shell, which survives them; the CLI stays."""
    t = term(terminals, engine, "run", "-it", "--rm", "busybox", "sh")
    t.expect(PROMPT)
    # the child says when it runs: a Ctrl-C typed while the shell still edits the line (its terminal
    # raw) is a plain byte, for a container as for any terminal
    t.type(b"sh -c 'echo run''ning; sleep 30'\r")
    t.expect(b"running\r\n")
    t.type(b"\x03")  # interrupts the sleep inside, not the CLI
    t.expect(PROMPT)
    t.type(b"\x1c")
    t.type(b"echo alive\r")
    t.expect(b"alive\r\n")
    assert t.proc.poll() is None
    t.type(b"exit\r")
    assert t.wait() == 0
    assert t.restored()


def test_run_it_sigterm_restores_terminal(engine: Engine, client: Client, terminals: list[Terminal]) -> None:
    """SIGTERM to a raw-mode CLI detaches and exits 143 with the terminal restored; the container runs on."""
    name = unique("term")
    t = term(terminals, engine, "run", "-it", "--name", name, "busybox", "sh")
    try:
        t.expect(PROMPT)
        assert t.is_raw()
        t.proc.send_signal(signal.SIGTERM)
        assert t.wait() == 128 + signal.SIGTERM
        assert t.restored()
        assert client.inspect(name).summary.state == RUNNING
    finally:
        client.remove(name, force=True)


def test_attach_detach_keys_leave_it_running_and_reattach(engine: Engine, client: Client, terminals: list[Terminal]) -> None:
    """Ctrl-P Ctrl-Q in `attach` detaches with 0, the container keeps running, and a second attach works."""
    name = unique("d")
    assert teu(engine, "run", "-d", "-it", "--name", name, "busybox", "sh").returncode == 0
    try:
        t = term(terminals, engine, "attach", name)
        t.type(b"echo $((20+3))\r")  # the shell echoes the line; only the output has 23
        t.expect(b"23\r\n")
        t.type(b'read -r v; printf %s "$v" | od -An -tx1\r')
        t.expect(b"od -An -tx1\r\n")
        t.type(CTRL_P + b"x\r")  # a partial sequence then another key: both reach the container
        t.expect(b" 10 78\r\n")
        t.type(CTRL_P + CTRL_Q)
        assert t.wait() == 0
        assert t.restored()
        assert client.inspect(name).summary.state == RUNNING
        again = term(terminals, engine, "attach", "--detach-keys", "ctrl-x,x", name)
        again.type(b"echo $((30+3))\r")
        again.expect(b"33\r\n")
        again.type(b"\x18x")
        assert again.wait() == 0
        assert client.inspect(name).summary.state == RUNNING
        last = term(terminals, engine, "attach", name)
        last.type(b"exit 3\r")
        assert last.wait() == 3
    finally:
        client.remove(name, force=True)


def test_run_it_detach_keys(engine: Engine, client: Client, terminals: list[Terminal]) -> None:
    """`run -it --detach-keys` detaches from the new container with the chosen keys, leaving it running."""
    name = unique("rd")
    t = term(terminals, engine, "run", "-it", "--detach-keys", "ctrl-a,d", "--name", name, "busybox", "sh")
    try:
        t.expect(PROMPT)
        t.type(b"\x01d")
        assert t.wait() == 0
        assert t.restored()
        assert client.inspect(name).summary.state == RUNNING
    finally:
        client.remove(name, force=True)


def test_window_size_initial_and_resize(engine: Engine, terminals: list[Terminal]) -> None:
    """The container's terminal starts at the CLI's size and follows a resize (TIOCSWINSZ + SIGWINCH)."""
    t = term(terminals, engine, "run", "-it", "--rm", "busybox", "sh", rows=24, cols=80)
    t.expect(PROMPT)
    t.type(b"stty size\r")
    t.expect(b"\r\n24 80\r\n")
    t.resize(40, 123)
    deadline = time.monotonic() + TIMEOUT
    while True:  # the resize frame races the next command: ask until the new size shows
        t.type(b"stty size\r")
        try:
            t.expect(b"\r\n40 123\r\n", timeout=1)
            break
        except AssertionError:
            assert time.monotonic() < deadline, t.seen
    t.type(b"exit\r")
    assert t.wait() == 0


def test_run_i_binary_stdin_round_trip(engine: Engine, tmp_path: Path) -> None:
    """`run -i --rm busybox cat < 10 MB of random bytes` gives back exactly those bytes."""
    data = os.urandom(10 << 20)
    src = tmp_path / "random.bin"
    src.write_bytes(data)
    with src.open("rb") as f:
        p = subprocess.run([TEU, "run", "-i", "--rm", "busybox", "cat"], stdin=f, capture_output=True,
                           env=engine.env(), timeout=120)  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert len(p.stdout) == len(data) and p.stdout == data


def test_run_i_streams_apart_and_eof(engine: Engine) -> None:
    """Without -t, stdout and stderr stay apart, and stdin's end is the container's EOF."""
    p = teu(engine, "run", "-i", "--rm", "busybox", "sh", "-c", "cat; echo done >&2; exit 4", input=b"in\n")
    assert (p.returncode, p.stdout, p.stderr) == (4, b"in\n", b"done\n")


def test_start_ai_streams_and_exits_with_the_containers_code(engine: Engine, client: Client) -> None:
    """`start -ai` of a created `-i` container: stdin in, stdout and stderr apart, its exit code;
    `start -a` of two containers is refused."""
    name = unique("sa")
    assert teu(engine, "create", "-i", "--name", name, "busybox", "sh", "-c", "cat; echo err >&2; exit 3").returncode == 0
    try:
        p = teu(engine, "start", "-ai", name, input=b"in\n")
        assert (p.returncode, p.stdout, p.stderr) == (3, b"in\n", b"err\n")
        refused = teu(engine, "start", "-a", name, name)
        assert refused.returncode == 1 and b"multiple containers" in refused.stderr
    finally:
        client.remove(name, force=True)


def test_start_ai_of_a_tty_container(engine: Engine, client: Client, terminals: list[Terminal]) -> None:
    """`start -ai` of a `create -it` shell: a prompt in raw mode, its exit code, the terminal restored."""
    name = unique("sat")
    assert teu(engine, "create", "-it", "--name", name, "busybox", "sh").returncode == 0
    try:
        t = term(terminals, engine, "start", "-ai", name)
        t.expect(PROMPT)
        assert t.is_raw()
        t.type(b"exit 6\r")
        assert t.wait() == 6
        assert t.restored()
    finally:
        client.remove(name, force=True)


def test_exec_exit_code(engine: Engine, worker: str) -> None:
    """`teu exec w sh -c 'exit 7'` exits 7."""
    assert teu(engine, "exec", worker, "sh", "-c", "exit 7").returncode == 7


def test_exec_env_user_workdir(engine: Engine, worker: str) -> None:
    """-e, -u and -w reach the exec'd process."""
    p = teu(engine, "exec", "-e", "K=V", "-u", "nobody", "-w", "/tmp", worker, "sh", "-c", "echo $K $(id -u) $(pwd)")
    assert (p.returncode, p.stdout) == (0, b"V 65534 /tmp\n")


def test_exec_streams_and_stdin(engine: Engine, worker: str) -> None:
    """exec -i forwards stdin (binary-safe) and keeps stdout and stderr apart."""
    data = bytes(range(256)) * 64
    p = teu(engine, "exec", "-i", worker, "sh", "-c", "cat; echo err >&2", input=data)
    assert (p.returncode, p.stdout, p.stderr) == (0, data, b"err\n")


def test_exec_missing_command_is_127(engine: Engine, worker: str) -> None:
    """A command missing from the image gives 127, with the reason on stderr."""
    p = teu(engine, "exec", worker, "nope-not-here")
    assert p.returncode == 127
    assert b"nope-not-here" in p.stderr


def test_exec_unknown_user_is_engine_error(engine: Engine, worker: str) -> None:
    """exec -u ghost is refused: one error line, exit 125."""
    p = teu(engine, "exec", "-u", "ghost", worker, "id")
    assert p.returncode == 125
    assert p.stderr.decode().count("\n") == 1 and "ghost" in p.stderr.decode()


def test_exec_into_stopped_container_is_engine_error(engine: Engine, client: Client) -> None:
    """exec into a container that is not running: one error line, exit 125."""
    name = unique("stopped")
    client.run(ContainerOptions(image="busybox", cmd=["true"], name=name))
    try:
        p = teu(engine, "exec", name, "ls")
        assert p.returncode == 125
        assert p.stderr.decode().startswith("Error: ") and p.stderr.decode().count("\n") == 1
    finally:
        client.remove(name)


def test_exec_it_has_a_terminal(engine: Engine, worker: str, terminals: list[Terminal]) -> None:
    """`exec -it` gets a terminal of the CLI's size; its exit code is the CLI's."""
    t = term(terminals, engine, "exec", "-it", worker, "sh", rows=30, cols=100)
    t.expect(PROMPT)
    t.type(b"tty; stty size\r")
    t.expect(b"/dev/pts/")
    t.expect(b"30 100\r\n")
    t.type(b"exit 6\r")
    assert t.wait() == 6
    assert t.restored()


def test_exec_detached_returns_at_once(engine: Engine, client: Client, worker: str) -> None:
    """exec -d returns as soon as the engine has started the command, which keeps running."""
    started = time.monotonic()
    p = teu(engine, "exec", "-d", worker, "sh", "-c", "sleep 3; touch /tmp/exec-d-done")
    assert p.returncode == 0, p.stderr
    assert time.monotonic() - started < 2.5, "exec -d waited for the command"
    # The file is looked for through cp (storage), not a second exec: an exec started right after
    # an exec -d into the same container can hang until conmon's 30 s handshake timeout (a known
    # defect of the exec path, reproduced on older code too; see the closing notes).
    wait_until(lambda: any(n.endswith("exec-d-done") for n in client.copy_from(worker, "/tmp")), timeout=TIMEOUT, what="the file")


def test_attach_to_exited_container_is_an_error(engine: Engine, client: Client) -> None:
    """attach to a container that has exited: one error line, exit 1."""
    name = unique("exited")
    client.run(ContainerOptions(image="busybox", cmd=["true"], name=name))
    try:
        p = teu(engine, "attach", name)
        assert p.returncode == 1
        assert p.stderr.decode().startswith("Error: ") and p.stderr.decode().count("\n") == 1
    finally:
        client.remove(name)


def test_attach_unknown_container_is_an_error(engine: Engine) -> None:
    """attach to a name that does not exist: one error line, exit 1."""
    p = teu(engine, "attach", unique("ghost"))
    assert p.returncode == 1 and b"Error: " in p.stderr


def test_invalid_detach_keys(engine: Engine) -> None:
    """A bad --detach-keys value is one error line and exit 1, and nothing is created."""
    name = unique("bad-keys")
    p = teu(engine, "run", "-it", "--detach-keys", "ctrl-", "--name", name, "busybox", "sh")
    assert p.returncode == 1 and p.stderr.decode().count("\n") == 1
    assert teu(engine, "inspect", name).returncode == 1


def _sig_script(name: str) -> list[str]:
    """A container that reports the signal it gets, then exits 9."""
    trap = f"trap 'echo got {name}; exit 9' {name}; echo ready; while true; do sleep 0.1; done"
    return ["busybox", "sh", "-c", trap]


@pytest.mark.parametrize(("flags", "sig"), [((), "TERM"), (("-i",), "USR1"), ((), "HUP")])
def test_sig_proxy_forwards_signals(engine: Engine, flags: tuple[str, ...], sig: str) -> None:
    """Attached without a TTY, a signal sent to the CLI goes to the container, not to the CLI."""
    proc = subprocess.Popen([TEU, "run", *flags, "--rm", *_sig_script(sig)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=engine.env())  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        proc.send_signal(getattr(signal, f"SIG{sig}"))
        out, _ = proc.communicate(timeout=TIMEOUT)
        assert (proc.returncode, out) == (9, f"got {sig}\n".encode())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=TIMEOUT)


def test_sig_proxy_false_leaves_signals_to_the_cli(engine: Engine, client: Client) -> None:
    """With --sig-proxy=false, SIGTERM ends the CLI; the container keeps running."""
    name = unique("noproxy")
    proc = subprocess.Popen([TEU, "run", "--sig-proxy=false", "--name", name, *_sig_script("TERM")],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=engine.env())  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=TIMEOUT)
        assert proc.returncode == -signal.SIGTERM
        assert client.inspect(name).summary.state == RUNNING
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=TIMEOUT)
        client.remove(name, force=True)


def test_a_signal_frame_reaches_the_exec_process(client: Client, worker: str) -> None:
    """A signal sent on an exec's stream reaches its process (how a CRI ExecSync kills one past its
    timeout); a bad one ends the stream with INVALID_ARGUMENT."""
    with client.exec(worker, ["sh", "-c", "trap 'echo got TERM; exit 5' TERM; echo ready; while :; do sleep 0.1; done"]) as s:
        out = iter(s)
        assert next(out) == (types_pb2.STREAM_STDOUT, b"ready\n")
        s.send_signal("TERM")
        assert b"".join(data for _, data in out) == b"got TERM\n"
        status = s.wait()
    assert status is not None and status.exit_code == 5
    with client.exec(worker, ["sleep", "30"]) as s, pytest.raises(InvalidArgument, match="invalid signal"):
        s.send_signal("NOPE")
        list(s)
