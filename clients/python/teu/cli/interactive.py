"""Interactive stdio of the CLI: ``run -i/-t``, ``attach`` and ``exec`` over an SDK Session.

The main thread writes the session's output; a daemon thread forwards stdin (watching for the detach
keys when there is a terminal). Signals never interrupt the main thread with exceptions while the
terminal is raw: handlers only queue work, so the terminal is always restored on the way out.
"""

from __future__ import annotations

import argparse
import os
import queue
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from types import FrameType, TracebackType
from typing import BinaryIO

from teu.cli import parse
from teu.cli.terminal import DEFAULT_DETACH_KEYS, DetachScanner, parse_detach_keys, raw_mode, window_size
from teu.client import Client, ContainerOptions, Session
from teu.errors import TeuError
from teu_api.types.v1 import types_pb2

__all__ = [
    "PROXIED_SIGNALS",
    "DetachKeysError",
    "SignalProxy",
    "add_attach_flags",
    "cmd_attach",
    "cmd_exec",
    "detach_keys",
    "pump",
    "run_attached",
]

ENGINE_ERROR = 125
READ_SIZE = 64 << 10
# Docker's --sig-proxy forwards every signal; these are the ones a user sends on purpose.
PROXIED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
# With a raw terminal, these end the CLI (by detaching) instead of killing it with the terminal still raw.
ENDING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
Handler = Callable[[int, FrameType | None], None]


class DetachKeysError(ValueError):
    """The --detach-keys value is not valid."""


def detach_keys(spec: str) -> bytes:
    """The detach sequence of a --detach-keys value; DetachKeysError with Docker's wording if invalid."""
    try:
        return parse_detach_keys(spec)
    except ValueError as exc:
        raise DetachKeysError(f"Invalid detach keys ({spec}) provided: {exc}") from None


def add_attach_flags(p: argparse.ArgumentParser, sig_proxy: bool = True) -> None:
    """--detach-keys, and --sig-proxy[=true|false] (Docker's boolean flag syntax)."""
    p.add_argument("--detach-keys", default=DEFAULT_DETACH_KEYS, help="key sequence for detaching (default ctrl-p,ctrl-q)")
    if sig_proxy:
        # Literal "=value" option strings: argparse matches a whole argument before splitting at "=",
        # so a bare --sig-proxy never swallows the next word.
        p.add_argument("--sig-proxy", "--sig-proxy=true", "--sig-proxy=1", dest="sig_proxy", action="store_true",
                       default=True, help="proxy received signals to the process (non-TTY only; default true)")  # fmt: skip
        p.add_argument("--sig-proxy=false", "--sig-proxy=0", dest="sig_proxy", action="store_false", help=argparse.SUPPRESS)


@contextmanager
def _signals(handlers: dict[int, Handler]) -> Iterator[None]:
    """Installs signal handlers for the block (main thread only; elsewhere Python forbids it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)


class SignalProxy:
    """Forwards the signals the CLI receives to a container with Kill (Docker's --sig-proxy).

    Handlers only queue the signal; a thread sends it once the container's id is known.
    """

    def __init__(self, client: Client, container: str = "", signals: tuple[int, ...] = PROXIED_SIGNALS) -> None:
        self._client = client
        self._signals = signals
        self._queue: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self._container = container
        self._known = threading.Event()
        if container:
            self._known.set()
        self._installed: AbstractContextManager[None] = nullcontext()

    def target(self, container: str) -> None:
        """Sets the container to signal (run learns its id from the first frame)."""
        self._container = container
        self._known.set()

    def _forward(self) -> None:
        while (signum := self._queue.get()) is not None:
            self._known.wait()
            try:
                self._client.kill(self._container, signal.Signals(signum).name)
            except TeuError:
                pass  # the container may have just exited: nothing to signal

    def __enter__(self) -> SignalProxy:
        threading.Thread(target=self._forward, name="teu-sig-proxy", daemon=True).start()
        self._installed = _signals({sig: lambda signum, _frame: self._queue.put(signum) for sig in self._signals})
        self._installed.__enter__()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self._installed.__exit__(t, e, tb)
        self._queue.put(None)


def _forward_input(session: Session, fd: int, scanner: DetachScanner, close_on_eof: bool) -> None:
    """Copies ``fd`` into the session until EOF (then maybe closes stdin) or the detach keys."""
    while True:
        try:
            data = os.read(fd, READ_SIZE)
        except OSError:
            data = b""  # EIO once a pseudo-terminal's other side is gone: that is an end of input
        if not data:
            if close_on_eof:
                session.close_stdin()
            return
        data, detach = scanner.feed(data)
        session.send(data)
        if detach:
            session.detach()
            return


def pump(
    session: Session,
    *,
    tty: bool,
    stdin: bool,
    close_on_eof: bool,
    keys: bytes,
    engine_error: int = ENGINE_ERROR,
    stdin_fd: int = 0,
    out: BinaryIO | None = None,
    err: BinaryIO | None = None,
) -> int:
    """Runs a session to its end; returns the CLI's exit code.

    That is the process's exit code; 0 after the detach keys; 128+signal if a signal ended a TTY
    session (which detaches); ``engine_error`` if the stream ended without an exit.
    """
    out = out or sys.stdout.buffer
    err = err or sys.stderr.buffer
    raw = tty and stdin and os.isatty(stdin_fd)
    ended_by: list[int] = []
    handlers: dict[int, Handler] = {}
    if tty:

        def on_resize(_signum: int, _frame: FrameType | None) -> None:
            if size := window_size(1, stdin_fd):
                session.resize(*size)

        def on_end(signum: int, _frame: FrameType | None) -> None:
            ended_by.append(signum)
            session.detach()

        handlers[signal.SIGWINCH] = on_resize
        if raw:
            handlers.update(dict.fromkeys(ENDING_SIGNALS, on_end))
    with _signals(handlers), raw_mode(stdin_fd) if raw else nullcontext():
        if stdin:
            scanner = DetachScanner(keys if tty else b"")  # without a TTY input is data: never scan it
            threading.Thread(target=_forward_input, args=(session, stdin_fd, scanner, close_on_eof),
                             name="teu-stdin", daemon=True).start()  # fmt: skip
        for stream, data in session:
            target = err if stream == types_pb2.STREAM_STDERR and not tty else out
            target.write(data)
            target.flush()
    if ended_by:
        return 128 + ended_by[0]
    if session.detached:
        return 0
    status = session.exit_status
    if status is None:
        print("Error: the engine ended the stream without an exit status", file=sys.stderr)
        return engine_error
    if status.error:
        print(f"Error: {status.error}", file=sys.stderr)
    return int(status.exit_code)


def _size(tty: bool) -> tuple[int, int] | None:
    return window_size(1, 0) if tty else None


def run_attached(c: Client, a: argparse.Namespace, options: ContainerOptions, created: Callable[[str], None]) -> int:
    """``run -i``/``-t`` without -d: create, attach with start, stream until it exits (``created``
    learns the id first)."""
    keys = detach_keys(a.detach_keys)
    cid = c.create(options).id
    created(cid)
    # With --rm the engine removes the container once it exits, or at once if its start fails.
    session = c.attach(cid, stdin=options.interactive, start=True, size=_size(options.tty))
    with SignalProxy(c, cid) if a.sig_proxy and not options.tty else nullcontext():
        return pump(session, tty=options.tty, stdin=options.interactive, close_on_eof=True, keys=keys)


def start_attached(c: Client, a: argparse.Namespace, container: str) -> int:
    """``start -a``/``-i``: attach (stdin too with -i, if the container keeps it open), start,
    stream until it exits; signals are proxied without a TTY, as docker's start does."""
    keys = detach_keys(a.detach_keys)
    d = c.inspect(container)
    tty, stdin = d.config.tty, a.interactive and d.config.open_stdin
    session = c.attach(d.summary.id, stdin=stdin, start=True, size=_size(tty))
    with SignalProxy(c, d.summary.id) if not tty else nullcontext():
        return pump(session, tty=tty, stdin=stdin, close_on_eof=True, keys=keys)


def cmd_attach(c: Client, a: argparse.Namespace) -> int:
    """Attaches the terminal to a running container's stdio."""
    keys = detach_keys(a.detach_keys)
    d = c.inspect(a.container)
    tty, stdin = d.config.tty, d.config.open_stdin and not a.no_stdin
    session = c.attach(d.summary.id, stdin=stdin, size=_size(tty))
    with SignalProxy(c, d.summary.id) if a.sig_proxy and not tty else nullcontext():
        # Like Docker's attach to a -d container: the end of our input does not end the container's.
        return pump(session, tty=tty, stdin=stdin, close_on_eof=False, keys=keys, engine_error=1)


def cmd_exec(c: Client, a: argparse.Namespace) -> int:
    """Runs a command in a running container; exits with its exit code."""
    keys = detach_keys(a.detach_keys)
    session = c.exec(a.container, list(a.command), env=parse.env(a.env), user=a.user, workdir=a.workdir,
                     tty=a.tty, stdin=a.interactive, size=_size(a.tty))  # fmt: skip
    if a.detach:
        # Once the engine names the session it has started: leave it running (errors still surface).
        session.wait_exec_id()
        session.detach()
        return 0
    return pump(session, tty=a.tty, stdin=a.interactive, close_on_eof=True, keys=keys)
