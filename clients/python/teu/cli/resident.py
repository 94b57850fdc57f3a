"""The user's resident client: ``python -m teu.cli.resident SOCKET``, started by the launcher
(launch.py) when it finds none. It imports the CLI (grpc, the stubs) and builds its parser once, and
keeps a spare child forked, with gRPC started, waiting for the next command. That child takes the
launcher's stdin, stdout and stderr, arguments, environment, folder and umask, and runs the command
exactly as the plain ``teu`` would; the resident tells the launcher its pid (the launcher signals it
directly) and, once it is reaped, its exit status, and forks the next spare.

It serves its own user only (the socket sits in a 0700 folder of that user, and each peer's uid is
checked), only launchers of the very code it imported (their identity must match), and leaves after
IDLE seconds without a command. The resident itself opens no gRPC channel and starts no thread, so
its forks are safe.
"""

from __future__ import annotations

import argparse
import array
import contextlib
import fcntl
import gc
import io
import os
import select
import signal
import socket
import struct
import sys

import grpc

from teu.cli import launch
from teu.cli import main as cli
from teu.cli.warm import WarmClient
from teu.client import default_target

#: Seconds without a command after which the resident leaves.
IDLE = 600.0


class Resident:
    """The accept loop, the children it waits for, and the spare child it keeps ready."""

    def __init__(self, listener: socket.socket, ident: str) -> None:
        self.listener, self.ident = listener, ident
        self.parser = cli.build_parser()  # once: a fraction of a command's time otherwise
        # Everything imported and built so far is shared with the children copy-on-write: out of the
        # collector's sight, which would otherwise touch (and so copy) every object in each child.
        gc.freeze()
        self.waiting: dict[int, socket.socket] = {}  # child pid -> its launcher's connection
        self.spare: tuple[int, socket.socket] | None = None
        self.target = default_target()  # the gateway the spare connects to: the last command's

    def run(self, wake: int) -> None:
        """Serves until IDLE seconds pass with no command and none running, or a stale launcher comes."""
        self._new_spare()
        while True:
            ready, _, _ = select.select([self.listener.fileno(), wake], [], [], IDLE)
            if not ready and not self.waiting:
                return
            if wake in ready:
                os.read(wake, 4096)
            self._reap()
            if self.listener.fileno() in ready and not self._accept():
                return

    def close(self) -> None:
        if self.spare is not None:
            self.spare[1].close()  # the spare reads the end and leaves
            self.spare = None

    def _new_spare(self) -> None:
        """Forks the child that will run the next command, ready before it comes (the fork, the copy
        of the resident's pages it touches and gRPC's start are then off the command's path)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            ours.close()
            _spare(theirs, self.parser, self.target)
        theirs.close()
        self.spare = (pid, ours)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.spare is not None and self.spare[0] == pid:  # the spare died unused
                self.spare[1].close()
                self.spare = None
            conn = self.waiting.pop(pid, None)
            if conn is not None:
                code = os.waitstatus_to_exitcode(status)
                with contextlib.suppress(OSError):
                    conn.send(f"exit {code}".encode() if code >= 0 else f"signal {-code}".encode())
                conn.close()

    def _accept(self) -> bool:
        """Takes one command; False if its launcher runs other code (this resident is stale)."""
        conn, _ = self.listener.accept()
        fds: list[int] = []
        try:
            uid = int(struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))[1])
            msg, ancdata, _, _ = conn.recvmsg(launch.MAX_REQUEST + 1, socket.CMSG_SPACE(3 * 4))
            for level, kind, data in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.extend(array.array("i", data[: len(data) - len(data) % 4]))
            if uid != os.getuid() or len(fds) != 3 or msg.split(b"\0", 1)[0].decode(errors="replace") != self.ident:
                conn.send(b"stale")
                conn.close()
                return uid != os.getuid()  # another user is refused; other code means this resident is stale
            pid = self._hand_over(msg, fds)
            with contextlib.suppress(ValueError, IndexError):  # a malformed request fails in its child, not here
                self.target = default_target(_environment(msg.split(b"\0")))  # its -H aside: the command may differ
            self.waiting[pid] = conn
            conn.send(f"pid {pid}".encode())
        except OSError:
            conn.close()
        finally:
            for fd in fds:
                os.close(fd)
        if self.spare is None:
            self._new_spare()
        return True

    def _hand_over(self, msg: bytes, fds: list[int]) -> int:
        """The pid of the child that runs the command: the spare, or one forked now if it is gone."""
        if self.spare is not None:
            pid, ours = self.spare
            self.spare = None
            try:
                ours.sendmsg([msg], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())])
                ours.close()
                return pid
            except OSError:
                ours.close()
        pid = os.fork()
        if pid == 0:
            keep = max(fds)
            for fd in range(3, keep):  # the resident's files (its socket, the other launchers'), not gRPC's: it has none
                if fd not in fds:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            os.closerange(keep + 1, 1 << 16)
            _run(msg.split(b"\0"), fds, self.parser)
        return pid


def serve(path: str) -> None:
    """Takes ``path``'s lock (one resident per socket), binds the socket (0600) and serves."""
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
    resident = Resident(listener, launch.identity())
    try:
        resident.run(wake_r)
    finally:
        resident.close()
        listener.close()
        if os.path.exists(path):
            os.unlink(path)


def _environment(parts: list[bytes]) -> dict[str, str]:
    """A request's environment: what follows its identity, folder, umask, argument count and arguments."""
    return dict(os.fsdecode(p).partition("=")[::2] for p in parts[4 + int(parts[3]) :])


def _spare(sock: socket.socket, parser: argparse.ArgumentParser, target: str) -> None:
    """A child waiting for its command: gRPC started first, and a connection to ``target`` (a unix
    socket's) begun; never returns."""
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        keep = sock.fileno()
        os.closerange(3, keep)
        os.closerange(keep + 1, 1 << 16)
        grpc.insecure_channel("unix:/nonexistent").close()  # gRPC's core and threads, before the command
        warm = WarmClient(target) if target.startswith("unix:") else None
        msg, ancdata, _, _ = sock.recvmsg(launch.MAX_REQUEST + 1, socket.CMSG_SPACE(3 * 4))
        fds = [fd for level, kind, data in ancdata if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS
               for fd in array.array("i", data[: len(data) - len(data) % 4])]  # fmt: skip
        if not msg or len(fds) != 3:
            os._exit(0)  # the resident left
        sock.close()
    except BaseException:
        os._exit(0)
    _run(msg.split(b"\0"), fds, parser, warm)


def _run(parts: list[bytes], fds: list[int], parser: argparse.ArgumentParser, warm: WarmClient | None = None) -> None:
    """Becomes the command: the launcher's files, arguments, environment and folder; never returns."""
    try:
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGTSTP, signal.SIGCONT):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in set(fds) - {0, 1, 2}:
            os.close(fd)
        cwd, umask, argc = os.fsdecode(parts[1]), int(parts[2]), int(parts[3])
        argv = [os.fsdecode(a) for a in parts[4 : 4 + argc]]
        env = _environment(parts)
        os.chdir(cwd)
        os.umask(umask)
        os.environ.clear()
        os.environ.update(env)
        sys.argv = argv
        _reopen_std()
        cli.main(argv[1:], parser, warm)
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
