"""The user's resident client: ``python -m teu.cli.resident SOCKET``, started by the launcher
(launch.py) when it finds none. It imports the CLI (grpc, the stubs) once, then forks a child per
command that takes the launcher's stdin, stdout and stderr, arguments, environment and working
directory, and runs the command exactly as the plain ``teu`` would. It tells the launcher the
child's pid (the launcher signals it directly) and, once it is reaped, its exit status.

It serves its own user only (the socket sits in a 0700 folder of that user, and each peer's uid is
checked), only launchers of the very code it imported (their identity must match), and leaves after
IDLE seconds without a command. The resident itself opens no gRPC channel and starts no thread, so
its forks are safe.
"""

from __future__ import annotations

import argparse
import array
import fcntl
import io
import os
import select
import signal
import socket
import struct
import sys

from teu.cli import launch
from teu.cli import main as cli

#: Seconds without a command after which the resident leaves.
IDLE = 600.0


def serve(path: str) -> None:
    ident = launch.identity()
    parser = cli.build_parser()  # once: a fraction of a command's time otherwise
    lock = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return  # another resident serves (or is starting)
    if os.path.exists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    old = os.umask(0o177)
    try:
        listener.bind(path)
    finally:
        os.umask(old)
    listener.listen(64)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    waiting: dict[int, socket.socket] = {}  # child pid -> its launcher's connection
    try:
        while True:
            ready, _, _ = select.select([listener.fileno(), wake_r], [], [], IDLE)
            if not ready and not waiting:
                return
            if wake_r in ready:
                os.read(wake_r, 4096)
            _reap(waiting)
            if listener.fileno() in ready and not _accept(listener, ident, waiting, parser):
                return  # a launcher of other code: this resident is stale
    finally:
        listener.close()
        if os.path.exists(path):
            os.unlink(path)


def _reap(waiting: dict[int, socket.socket]) -> None:
    while waiting:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = waiting.pop(pid, None)
        if conn is not None:
            code = os.waitstatus_to_exitcode(status)
            try:
                conn.send(f"exit {code}".encode() if code >= 0 else f"signal {-code}".encode())
            except OSError:
                pass
            conn.close()


def _accept(listener: socket.socket, ident: str, waiting: dict[int, socket.socket], parser: argparse.ArgumentParser) -> bool:
    conn, _ = listener.accept()
    fds: list[int] = []
    try:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        uid = int(struct.unpack("3i", creds)[1])
        msg, ancdata, _, _ = conn.recvmsg(launch.MAX_REQUEST + 1, socket.CMSG_SPACE(3 * 4))
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.extend(array.array("i", data[: len(data) - len(data) % 4]))
        parts = msg.split(b"\0")
        if uid != os.getuid() or len(fds) != 3 or not parts or parts[0].decode(errors="replace") != ident:
            conn.send(b"stale")
            conn.close()
            return uid != os.getuid()  # another user is refused; other code means this resident is stale
    except OSError:
        conn.close()
        for fd in fds:
            os.close(fd)
        return True
    pid = os.fork()
    if pid == 0:
        _child(conn, parts, fds, parser)
    for fd in fds:
        os.close(fd)
    waiting[pid] = conn
    try:
        conn.send(f"pid {pid}".encode())
    except OSError:
        pass
    return True


def _child(conn: socket.socket, parts: list[bytes], fds: list[int], parser: argparse.ArgumentParser) -> None:
    """Becomes the command: the launcher's files, arguments, environment and folder; never returns."""
    try:
        conn.close()
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGTSTP, signal.SIGCONT):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.closerange(3, 1 << 16)
        cwd, umask, argc = os.fsdecode(parts[1]), int(parts[2]), int(parts[3])
        argv = [os.fsdecode(a) for a in parts[4 : 4 + argc]]
        env = dict(os.fsdecode(p).partition("=")[::2] for p in parts[4 + argc :])
        os.chdir(cwd)
        os.umask(umask)
        os.environ.clear()
        os.environ.update(env)
        sys.argv = argv
        _reopen_std()
        cli.main(argv[1:], parser)
    except SystemExit as exc:  # argparse's errors and --help
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
        cli.exit_now(code)
    except BaseException:  # a command never gets back into the resident's loop
        import traceback

        traceback.print_exc()
        cli.exit_now(1)
    cli.exit_now(0)


def _reopen_std() -> None:
    """stdin, stdout and stderr over the launcher's files, buffered as Python buffers them at start
    (line by line on a terminal)."""
    for name, fd, mode in (("stdin", 0, "r"), ("stdout", 1, "w"), ("stderr", 2, "w")):
        old = getattr(sys, name)
        raw = io.FileIO(fd, mode, closefd=False)
        tty = raw.isatty()
        buffered = io.BufferedReader(raw) if mode == "r" else io.BufferedWriter(raw)
        setattr(sys, name, io.TextIOWrapper(buffered, encoding=old.encoding, errors=old.errors,
                                            line_buffering=tty or name == "stderr"))  # fmt: skip


if __name__ == "__main__":
    os.chdir("/")
    serve(sys.argv[1])
